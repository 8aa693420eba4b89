"""Tickets: IDs a customer can read out (ids.py) and the ticket store."""

from tweetdesk.tickets.ids import TicketIdError, parse_ticket_id, ticket_id_for

__all__ = ["TicketIdError", "parse_ticket_id", "ticket_id_for"]
