"""The OpenAPI 3.1 document of the reply service's JSON API, served at ``/api/openapi.json``.

Built in code so that the enumerations (statuses, topics, sentiments) cannot drift from records.py;
tests check that every API route of the app is documented here and the document is valid.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from tweetdesk.records import NOT_INFERRED, SENTIMENTS, TOPIC_CHOICES, UNCLASSIFIABLE, ReplyStatus
from tweetdesk.tickets.ids import ALPHABET
from tweetdesk.tickets.store import TicketStatus
from tweetdesk.web.desk_openapi import desk_paths

_TS = {"type": ["string", "null"], "format": "date-time"}
_STR_NULL = {"type": ["string", "null"]}


def _err(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


_ADMIN = [{"ApiKey": []}, {"Bearer": []}]
_TICKET_ID_PARAM = {
    "name": "ticket_id",
    "in": "path",
    "required": True,
    "description": "Ticket ID, e.g. BAG-7KQ4M2XZ-H (case, spaces and dashes are forgiven; the check character is not).",
    "schema": {"type": "string", "maxLength": 40},
}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    topics = list(TOPIC_CHOICES)
    sentiments = [*SENTIMENTS, UNCLASSIFIABLE, NOT_INFERRED]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tweetdesk reply service",
            "version": "1",
            "description": (
                "Tickets opened from customer tweets, and their replies. The ticket lookup is public and shows "
                "no personal data; everything else needs the admin API key (X-API-Key header or "
                "Authorization: Bearer). Errors are JSON objects {error, status, kind?}."
            ),
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness ({status}) for anyone; with the admin key also the store, consumers and poster",
                    "operationId": "healthz",
                    "security": [{}, *_ADMIN],
                    "responses": {
                        "200": _json("Health", "Service healthy"),
                        "503": _json("Health", "Ticket store unreachable"),
                        "401": _err("An API key was given and is wrong"),
                        "429": _err("Too many wrong API keys from this address: see Retry-After"),
                    },
                }
            },
            "/api/tickets/{ticket_id}": {
                "get": {
                    "summary": "Look up a ticket (public: status, topic, timestamps; admin: the full ticket)",
                    "operationId": "getTicket",
                    "parameters": [_TICKET_ID_PARAM],
                    "security": [{}, *_ADMIN],
                    "responses": {
                        "200": {
                            "description": "The ticket",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [
                                            {"$ref": "#/components/schemas/PublicTicket"},
                                            {"$ref": "#/components/schemas/Ticket"},
                                        ]
                                    }
                                }
                            },
                        },
                        "400": _err("Not a valid ticket ID; `kind` is format, prefix or check (a mistyped character)"),
                        "401": _err("An API key was given and is wrong"),
                        "429": _err("Too many wrong API keys from this address: see Retry-After"),
                        "404": _err("No such ticket"),
                    },
                }
            },
            "/api/tickets": {
                "get": {
                    "summary": "List tickets, newest first (admin)",
                    "operationId": "listTickets",
                    "security": _ADMIN,
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"type": "string", "enum": [s.value for s in TicketStatus]}},
                        {"name": "listening_only", "in": "query", "description": "true: only tickets nobody summoned "
                         "us for (no automatic reply); false: only the others.",
                         "schema": {"type": "string", "enum": ["true", "false"]}},
                        {"name": "topic", "in": "query", "schema": {"type": "string", "enum": topics}},
                        {"name": "sentiment", "in": "query", "schema": {"type": "string", "enum": sentiments}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                    ],
                    "responses": {
                        "200": _json("TicketPage", "One page of tickets"),
                        "400": _err("A filter or paging parameter is invalid"),
                        "401": _err("Missing or wrong API key"),
                        "429": _err("Too many wrong API keys from this address: see Retry-After"),
                        "403": _err("Admin API disabled (no key configured)"),
                    },
                }
            },
            "/api/tickets/{ticket_id}/resolve": {
                "post": {
                    "summary": "Resolve a ticket (admin); resolving twice changes nothing",
                    "operationId": "resolveTicket",
                    "security": _ADMIN,
                    "parameters": [_TICKET_ID_PARAM],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "properties": {"note": {"type": "string"}}}
                            }
                        },
                    },
                    "responses": {
                        "200": _json("PublicTicket", "The resolved ticket"),
                        "400": _err("Invalid ticket ID or malformed/oversized body"),
                        "401": _err("Missing or wrong API key"),
                        "429": _err("Too many wrong API keys from this address: see Retry-After"),
                        "403": _err("Admin API disabled"),
                        "404": _err("No such ticket"),
                    },
                }
            },
            "/api/erase": {
                "post": {
                    "summary": "Erase every post of an X author on request (admins only; X's data rules)",
                    "operationId": "eraseAuthor",
                    "security": _ADMIN,
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["author"],
                        "properties": {"author": {"type": "string", "pattern": "^@?[A-Za-z0-9_]{1,15}$"}}}}}},
                    "responses": {
                        "200": {"description": "Removed (tombstones kept; audited without the content)",
                                "content": {"application/json": {"schema": {"type": "object", "properties": {
                                    "posts_removed": {"type": "integer"}, "tickets_removed": {"type": "integer"}}}}}},
                        "400": _err("Not an X handle"),
                        "401": _err("No or wrong API key / token"),
                        "403": _err("Not an admin"),
                    },
                }
            },
            "/api/replies": {
                "post": {
                    "summary": "Queue a manual reply to a tweet that has a ticket (admin)",
                    "operationId": "postReply",
                    "security": _ADMIN,
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "Same key, same reply: a retried request never queues a second reply.",
                            "schema": {"type": "string", "minLength": 1, "maxLength": 100},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReplyRequest"}}},
                    },
                    "responses": {
                        "202": _json("ReplyQueued", "Queued for posting (or for the dry-run outbox)"),
                        "200": _json("ReplyQueued", "Already queued with this idempotency key"),
                        "400": _err(
                            "Malformed or oversized JSON, or a reply that breaks a rule (over 280 characters as X "
                            "counts them, contains a URL, mentions anyone but the customer)"
                        ),
                        "401": _err("Missing or wrong API key"),
                        "429": _err("Too many wrong API keys from this address: see Retry-After"),
                        "403": _err("Admin API disabled"),
                        "404": _err("No ticket holds this tweet"),
                        "409": _err(
                            "X would refuse it: the tweet is listening only (it did not mention, quote or reply to "
                            "our account), or its author opted out of our replies; or, with `seen`, the ticket "
                            "changed since that view (the answer lists what changed)"
                        ),
                    },
                }
            },
            "/api/opt-outs": {
                "get": {
                    "summary": "Customers who get no automatic reply: opted out, blocked us, or refused by X lately (admin)",
                    "operationId": "listOptOuts",
                    "security": _ADMIN,
                    "responses": {
                        "200": {"description": "The active opt-outs", "content": {"application/json": {"schema": {
                            "type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}}}}}}},
                        "401": _err("Missing or wrong API key"),
                        "403": _err("Admin API disabled"),
                    },
                }
            },
            "/api/opt-outs/{author}": {
                "delete": {
                    "summary": "Lift an opt-out (by handle, @handle or X user id) (admin only; audited)",
                    "operationId": "liftOptOut",
                    "security": _ADMIN,
                    "parameters": [{"name": "author", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "Lifted", "content": {"application/json": {"schema": {"type": "object"}}}},
                        "401": _err("Missing or wrong API key"),
                        "403": _err("Admin API disabled, or not an admin (agents and viewers cannot lift)"),
                        "404": _err("No opt-out for this author"),
                        "409": _err("The customer blocked us on X: a bar only they can lift"),
                    },
                }
            },
            "/api/budget": {
                "get": {
                    "summary": "Reply budget and intake: queue, expected wait, posts this window, spend today, flood guard (admin)",
                    "operationId": "getBudget",
                    "security": _ADMIN,
                    "parameters": [
                        {"name": "held_back", "in": "query", "description": "How many held-back tweets to list, newest first.",
                         "schema": {"type": "integer", "minimum": 0, "maximum": 200, "default": 20}},
                    ],
                    "responses": {
                        "200": _json("Budget", "The budget's figures"),
                        "400": _err("A parameter is invalid"),
                        "401": _err("Missing or wrong API key"),
                        "429": _err("Too many wrong API keys from this address: see Retry-After"),
                        "403": _err("Admin API disabled"),
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": {"description": "OpenAPI 3.1 document", "content": {"application/json": {}}}},
                }
            },
            **desk_paths(),  # the agents' desk (tweetdesk.web.desk_openapi)
        },
        "components": {
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "status"],
                    "properties": {
                        "error": {"type": "string"},
                        "status": {"type": "integer"},
                        "kind": {
                            "type": "string",
                            "description": "format | prefix | check (ticket IDs), unknown, too_large, malformed_json, bad_field, bad_reply, bad_parameter",
                        },
                    },
                },
                "TicketId": {
                    "type": "string",
                    "pattern": f"^[A-Z]{{3}}-[{ALPHABET}]{{8}}-[{ALPHABET}]$",
                    "examples": ["BAG-7KQ4M2XZ-H"],
                },
                "PublicTicket": {
                    "type": "object",
                    "required": ["ticket_id", "status", "topic", "created_at", "updated_at"],
                    "properties": {
                        "ticket_id": {"$ref": "#/components/schemas/TicketId"},
                        "status": {"type": "string", "enum": [s.value for s in TicketStatus]},
                        "topic": {"type": "string", "enum": topics},
                        "created_at": {"type": "string", "format": "date-time"},
                        "updated_at": {"type": "string", "format": "date-time"},
                        "replied_at": _TS,
                        "resolved_at": _TS,
                        "removed_reason": {"type": ["string", "null"],
                                           "description": "Set when X's data rules removed the content."},
                        "removed_at": _TS,
                    },
                },
                "Entity": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "label": {"type": "string"},
                        "start": {"type": "integer"},
                        "end": {"type": "integer"},
                        "norm": _STR_NULL,
                    },
                },
                "Reply": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "kind": {"type": "string", "enum": ["auto", "manual"]},
                        "text": {"type": "string"},
                        "status": {"type": "string", "enum": [s.value for s in ReplyStatus]},
                        "attempts": {"type": "integer"},
                        "posted_id": _STR_NULL,
                        "error": _STR_NULL,
                        "dry_run": {"type": "boolean"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "posted_at": _TS,
                    },
                },
                "Ticket": {
                    "type": "object",
                    "description": "The full ticket (admin only).",
                    "properties": {
                        "ticket_id": {"$ref": "#/components/schemas/TicketId"},
                        "tweet_id": {"type": "string"},
                        "author": {"type": "string"},
                        "author_id": _STR_NULL,
                        "text": {"type": "string"},
                        "lang": _STR_NULL,
                        "brand": _STR_NULL,
                        "rule": _STR_NULL,
                        "tweet_created_at": _TS,
                        "sentiment": {"type": "string", "enum": sentiments},
                        "sentiment_score": {"type": ["number", "null"]},
                        "topic": {"type": "string", "enum": topics},
                        "topic_score": {"type": ["number", "null"]},
                        "entities": {"type": "array", "items": {"$ref": "#/components/schemas/Entity"}},
                        "model_version": _STR_NULL,
                        "status": {"type": "string", "enum": [s.value for s in TicketStatus]},
                        "reply_text": _STR_NULL,
                        "posted_reply_id": _STR_NULL,
                        "attempts": {"type": "integer"},
                        "last_error": _STR_NULL,
                        "conversation_id": _STR_NULL,
                        "in_reply_to_tweet_id": _STR_NULL,
                        "in_reply_to_user_id": _STR_NULL,
                        "created_at": {"type": "string", "format": "date-time"},
                        "updated_at": {"type": "string", "format": "date-time"},
                        "replied_at": _TS,
                        "resolved_at": _TS,
                        "message_count": {"type": "integer", "description": "Customer tweets in the ticket's thread."},
                        "last_tweet_id": _STR_NULL,
                        "replies": {"type": "array", "items": {"$ref": "#/components/schemas/Reply"}},
                        "conversation": {
                            "type": "array",
                            "description": "The thread in order: the customer's tweets, our own tweets seen on the stream, our replies.",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "kind": {"type": "string", "enum": ["customer", "own", "reply"]},
                                    "tweet_id": _STR_NULL,
                                    "author": _STR_NULL,
                                    "text": {"type": "string"},
                                    "at": _TS,
                                    "in_reply_to_tweet_id": _STR_NULL,
                                    "status": {"type": ["string", "null"], "description": "A reply's outbox status."},
                                },
                            },
                        },
                    },
                },
                "TicketPage": {
                    "type": "object",
                    "required": ["items", "total", "limit", "offset"],
                    "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Ticket"}},
                        "total": {"type": "integer"},
                        "limit": {"type": "integer"},
                        "offset": {"type": "integer"},
                        "next_offset": {"type": ["integer", "null"]},
                    },
                },
                "ReplyRequest": {
                    "type": "object",
                    "required": ["tweet_id", "text"],
                    "properties": {
                        "tweet_id": {"type": "string", "pattern": "^[0-9]{1,32}$", "description": "A string: X ids exceed JSON's safe integers."},
                        "text": {"type": "string", "description": "≤ 280 characters as X counts them; no URL; no @mention but the customer's."},
                        "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 100},
                        "seen": {"type": "string", "description": "The ticket's view stamp (`seen` of GET "
                                 "/api/tickets/{id}): if the ticket changed since, 409 with what changed."},
                    },
                },
                "ReplyQueued": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "ticket_id": {"$ref": "#/components/schemas/TicketId"},
                        "tweet_id": {"type": "string"},
                        "text": {"type": "string"},
                        "status": {"type": "string", "enum": [s.value for s in ReplyStatus]},
                        "created": {"type": "boolean"},
                    },
                },
                "Budget": {
                    "type": "object",
                    "properties": {
                        "queue_length": {"type": "integer", "description": "Replies queued."},
                        "expected_wait_seconds": {"type": "number", "description": "Until a reply queued now at the back goes out."},
                        "expected_wait_by_class_seconds": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
                        "queue_by_class": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "replies_this_window": {"type": "integer"},
                        "reply_limit": {"type": "integer"},
                        "window_seconds": {"type": "integer"},
                        "spend_today_usd": {"type": "number", "description": "What X charged for today's posts (UTC day)."},
                        "next_post_in_seconds": {"type": "number"},
                        "posts_allowed_now": {"type": "integer"},
                        "enforced": {"type": "boolean", "description": "False in dry-run unless the budget is rehearsed."},
                        "intake": {"type": "object", "description": "Tweets taken in: opened, threaded, own, capped."},
                        "flood_reasons": {
                            "type": "array",
                            "items": {"type": "object", "properties": {"reason": {"type": "string"}, "count": {"type": "integer"}}},
                        },
                        "held_back": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "Health": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ok", "degraded"]},
                        "store": {"type": "object"},
                        "poster": {"type": "object"},
                        "consumer": {"type": "object"},
                    },
                },
            },
        },
    }
