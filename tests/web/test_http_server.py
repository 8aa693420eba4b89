"""The HTTP server's limits (issue 25, item 8), through the real ``ReplyService`` (waitress) on loopback: half-open
connections (slowloris) neither shut /healthz out nor stay open past the channel timeout, an oversized body is
refused (413 JSON) from its headers without being read, and the limits are settings, validated."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
from pydantic import ValidationError

from tweetdesk.config import Settings
from tweetdesk.serve import ReplyService

HALF_OPEN = 120  # what the attack pass held: more than waitress's default connection limit (100)


def _settings(tmp_path, **over) -> Settings:
    return Settings(work_dir=tmp_path, kafka_bootstrap="127.0.0.1:9", **over)  # no consumer: never contacted


@pytest.fixture
def service(tmp_path):
    with ReplyService(_settings(tmp_path), consume=False, port=0) as svc:
        yield svc


def _half_open(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # the headers never end
    return s


def _read_response(s: socket.socket) -> tuple[int, bytes]:
    r = http.client.HTTPResponse(s)
    r.begin()
    return r.status, r.read()


def test_healthz_answers_a_fresh_client_while_120_connections_are_held_half_open(service):
    held = [_half_open(service.port) for _ in range(HALF_OPEN)]
    try:
        conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=20)
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        assert (r.status, json.loads(r.read())) == (200, {"status": "ok"})
        conn.close()
    finally:
        for s in held:
            s.close()


def test_a_half_open_connection_is_closed_after_the_channel_timeout(tmp_path):
    with ReplyService(_settings(tmp_path, http_channel_timeout=1), consume=False, port=0) as svc:
        s = _half_open(svc.port)
        s.settimeout(30)  # waitress's default (120 s) would leave it open far longer
        try:
            assert s.recv(1024) == b""  # closed by the server, nothing answered to an unfinished request
        finally:
            s.close()


def test_an_oversized_body_is_refused_from_its_headers_before_it_is_read(service):
    """A 300 MB unauthenticated POST: 413 JSON after the headers alone (not 401 after reading 300 MB)."""
    for path in ("/login", "/api/replies"):
        s = socket.create_connection(("127.0.0.1", service.port), timeout=20)
        try:
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {300 * 1024 * 1024}\r\n\r\n{{\"text\": ".encode())
            status, body = _read_response(s)  # only the headers and a few bytes were sent
        finally:
            s.close()
        assert status == 413
        got = json.loads(body)
        assert (got["status"], got["kind"]) == (413, "too_large") and str(1024 * 1024) in got["error"]


def test_a_body_within_the_server_limit_still_gets_the_apps_own_answer(service):
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=20)
    conn.request("POST", "/api/replies", body=b"x" * (64 * 1024), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status in (400, 401, 403) and r.getheader("Content-Type") == "application/json"
    conn.close()


def test_the_limits_are_settings_passed_to_waitress(tmp_path, monkeypatch):
    monkeypatch.setenv("TWEETDESK_HTTP_CONNECTION_LIMIT", "500")
    s = _settings(tmp_path, http_channel_timeout=12, http_max_request_body_size=65536, http_inbuf_overflow=8192)
    with ReplyService(s, consume=False, port=0) as svc:
        adj = svc.http.adjustments
        assert (adj.channel_timeout, adj.connection_limit, adj.max_request_body_size, adj.inbuf_overflow) == (
            12, 500, 65536, 8192)
        assert adj.cleanup_interval <= 6 and adj.asyncore_use_poll


def test_safe_defaults_and_bad_values_refused(tmp_path):
    web = _settings(tmp_path).web
    assert web.http_channel_timeout <= 60 and web.http_connection_limit > HALF_OPEN
    assert web.http_max_request_body_size <= 1024 * 1024 and web.http_inbuf_overflow <= 512 * 1024
    for bad in ({"http_channel_timeout": 0}, {"http_connection_limit": 0}, {"http_max_request_body_size": 10},
                {"http_max_request_body_size": 300 * 1024**3}, {"http_inbuf_overflow": -1},
                {"desk_export_concurrency": 0}):
        with pytest.raises(ValidationError):
            _settings(tmp_path, **bad)
