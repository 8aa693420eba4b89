"""Tickets: IDs a customer can read out (ids.py) and the ticket store (store.py, with its schema.py,
outbox.py, reports.py and rows.py), whose intake decision is intake.py."""

from tweetdesk.tickets.ids import TicketIdError, parse_ticket_id, ticket_id_for

# The store pulls in SQLAlchemy: imported on first use only, so that Spark workers (which need
# ticket_id_for) stay light.
_STORE_NAMES = ("TicketStore", "Ticket", "TicketStatus", "StoredReply", "ReplyKind", "StoreError", "IngestResult", "PublicTicket")


def __getattr__(name):
    if name in _STORE_NAMES:
        from tweetdesk.tickets import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TicketIdError", "parse_ticket_id", "ticket_id_for", *_STORE_NAMES]
