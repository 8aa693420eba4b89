"""``/x/webhook``: where the X Activity API pushes ``dm.received`` events (``ingest.activity`` does the work).

* ``GET ?crc_token=…`` -> ``{"response_token": "sha256=…"}``: X's Challenge-Response Check (at registration,
  hourly, on demand; docs.x.com/x-api/webhooks/quickstart).
* ``POST`` (X's signed delivery) -> ``200 {"published", "duplicates", "skipped", "dead_letters"}``; a missing or
  wrong ``x-twitter-webhooks-signature`` -> 403 JSON and nothing is kept; Kafka not acknowledging -> 503 JSON
  (X sends it again).
* Without ``TWEETDESK_X_WEBHOOK_SECRET`` the route answers 404 JSON saying it is not configured.

No sign-in: X is the caller and the HMAC is its credential. Deliveries may be larger than the API's 16 KiB
(a DM holds up to 10,000 characters, plus the users): up to ``MAX_DELIVERY_BYTES``. The input layer's control
character check (``api.refuse_control_characters``) leaves the body alone: a DM's text is validated as a record
(a bad one is a dead letter), never refused with a 400 that X would keep retrying.
"""

from __future__ import annotations

import logging

from flask import Blueprint, g, jsonify, request

from tweetdesk.ingest.activity import ActivityReceiver, ActivityUnavailable
from tweetdesk.web.api import ApiError
from tweetdesk.web.context import ctx

log = logging.getLogger(__name__)

MAX_DELIVERY_BYTES = 512 * 1024
SIGNATURE_HEADER = "x-twitter-webhooks-signature"

x_webhook = Blueprint("x_webhook", __name__)


def _receiver() -> ActivityReceiver:
    receiver = ctx().x_webhook
    if receiver is None:
        raise ApiError(404, "the X webhook is not configured: set TWEETDESK_X_WEBHOOK_SECRET to the app's consumer "
                       "secret", kind="not_configured")
    return receiver


@x_webhook.url_value_preprocessor  # runs before the app's before_request checks, which read the body
def _take_deliveries_as_sent(endpoint, values) -> None:
    request.max_content_length = MAX_DELIVERY_BYTES
    g.raw_body = True  # the signature covers the raw body: checked here, records validated in ingest.activity


@x_webhook.get("/x/webhook")
def crc():
    receiver = _receiver()
    token = request.args.get("crc_token")
    if not token:
        raise ApiError(400, "crc_token: X's challenge is missing", kind="bad_request")
    return jsonify({"response_token": receiver.crc_response(token)})


@x_webhook.post("/x/webhook")
def deliver():
    receiver = _receiver()
    body = request.get_data(cache=False)
    if not receiver.signed(body, request.headers.get(SIGNATURE_HEADER)):
        log.warning("X webhook: a delivery without a valid signature from %s refused", request.remote_addr)
        raise ApiError(403, f"{SIGNATURE_HEADER}: missing or not X's signature of this body", kind="bad_signature")
    try:
        got = receiver.receive(body)
    except ActivityUnavailable as e:
        raise ApiError(503, str(e), kind="unavailable", retry_after=30) from None
    return jsonify(got.as_dict())
