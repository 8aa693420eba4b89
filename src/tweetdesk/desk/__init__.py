"""The agents' desk: named accounts with roles, personal API tokens, an audit trail of every change to a
ticket, assignment and "who else has it open", first-response timers, canned replies, internal notes,
corrections of the models' labels, and exports.

Everything here lives in the ticket store's database (tables created by schema migration 5, see
``tickets.schema``) and is reached through ``Desk(store, settings)``; the pages and the JSON API are in
``tweetdesk.web.desk_views`` and ``tweetdesk.web.desk_api``, the ``tweetdesk users`` commands in
``tweetdesk.desk.cli``.
"""

from __future__ import annotations

ADMIN, AGENT, VIEWER = "admin", "agent", "viewer"
ROLES: tuple[str, ...] = (ADMIN, AGENT, VIEWER)

__all__ = ["ADMIN", "AGENT", "ROLES", "VIEWER"]
