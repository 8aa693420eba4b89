"""``POST /api/erase`` (admins only): a customer's request to erase their X content, on the one removal path
(``tickets.erase.erase_author``); audited with the admin's name and a digest of the handle, never the content."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from tweetdesk.secret_key import derive, secret_key
from tweetdesk.tickets.erase import erase_author
from tweetdesk.web.api import ApiError, admin_required, json_body
from tweetdesk.web.context import ctx
from tweetdesk.x.rules import is_handle

compliance_api = Blueprint("compliance_api", __name__)


@compliance_api.post("/api/erase")
@admin_required
def erase():
    if not g.principal.is_admin:
        raise ApiError(403, f"{g.principal.name} is not an admin", kind="forbidden")
    author = json_body().get("author")
    if not isinstance(author, str) or not is_handle(author.lstrip("@")):
        raise ApiError(400, "author: give the X handle to erase (letters, digits, _; up to 15)")
    c = ctx()
    r = erase_author(c.store, author, actor=f"api:{g.principal.name}",
                     key=derive(secret_key(c.settings), "erase-digest"))
    return jsonify({"posts_removed": len(r.tweet_ids), "tickets_removed": r.tickets})
