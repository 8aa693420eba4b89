"""Security: secrets come only from the environment or a private settings file, never reach a log line or an
HTTP answer; the admin key is compared in constant time; ``tweetdesk serve`` runs under waitress.

The "never logged" tests run the real commands (``tweetdesk serve``, ``tweetdesk ingest replay|x``) as
subprocesses with every secret set to a recognisable value and search everything they print, plus what
the API answers; one more runs the poster and the X stream client in-process with DEBUG logging on.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from tests.fixtures.store import enriched_tweet
from tests.fixtures.xstream import XStandIn, keepalive, tweet
from tweetdesk.config import Settings
from tweetdesk.errors import ConfigError

VENV_BIN = Path(sys.executable).parent

SECRETS = {
    "TWEETDESK_API_KEY": "adminkey-7f3Q-never-logged-32-chars-or-more",
    "TWEETDESK_SECRET_KEY": "secretkey-5Kp9-never-logged-32-chars-or-more",
    "TWEETDESK_X_BEARER_TOKEN": "bearer-9Zk2-never-logged",
    "TWEETDESK_X_CONSUMER_KEY": "ckey-4Hs8-never-logged",
    "TWEETDESK_X_CONSUMER_SECRET": "csecret-1Wq5-never-logged",
    "TWEETDESK_X_ACCESS_TOKEN": "atoken-6Vb3-never-logged",
    "TWEETDESK_X_ACCESS_TOKEN_SECRET": "asecret-2Lm7-never-logged",
}
KAFKA_PASSWORD = "kafkapw-8Rt1-never-logged"


def _leaks(text: str) -> list[str]:
    return [v for v in (*SECRETS.values(), KAFKA_PASSWORD) if v in text]


# --- where secrets may come from ---------------------------------------------------------------------------

def _toml(tmp_path: Path, body: str, mode: int) -> Path:
    p = tmp_path / "tweetdesk.toml"
    p.write_text(body)
    p.chmod(mode)
    return p


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o640])
def test_a_readable_settings_file_with_secrets_is_refused(tmp_path, monkeypatch, mode):
    p = _toml(tmp_path, 'api_key = "filekey-1"\nx_consumer_secret = "filesecret-2"\n', mode)
    monkeypatch.setenv("TWEETDESK_CONFIG", str(p))
    with pytest.raises(ConfigError) as e:
        Settings()
    msg = str(e.value)
    assert "api_key" in msg and "x_consumer_secret" in msg and "chmod 600" in msg and f"{mode:04o}" in msg
    assert "filekey-1" not in msg and "filesecret-2" not in msg  # names the settings, never their values


def test_the_refusal_is_one_line_from_the_cli(tmp_path):
    p = _toml(tmp_path, 'database_url = "postgresql://td:pgpass-3@db/td"\n', 0o644)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TWEETDESK_") or k == "TWEETDESK_OUR_HANDLES"}, "TWEETDESK_CONFIG": str(p)}
    r = subprocess.run([str(VENV_BIN / "tweetdesk"), "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("tweetdesk: error:")
    assert "database_url (password)" in r.stderr and "pgpass-3" not in r.stderr


def test_a_private_settings_file_may_hold_secrets(tmp_path, monkeypatch):
    p = _toml(tmp_path, 'api_key = "filekey-1"\n[kafka_config]\n"sasl.password" = "kpw"\n'
                        '"security.protocol" = "SASL_SSL"\n', 0o600)
    monkeypatch.setenv("TWEETDESK_CONFIG", str(p))
    s = Settings()
    assert s.api_key.get_secret_value() == "filekey-1" and s.kafka_config["sasl.password"] == "kpw"


def test_a_readable_settings_file_without_secrets_is_fine(tmp_path, monkeypatch):
    p = _toml(tmp_path, 'topic_partitions = 3\ndatabase_url = "postgresql://td@db/td"\n', 0o644)
    monkeypatch.setenv("TWEETDESK_CONFIG", str(p))
    assert Settings().topic_partitions == 3


def test_secrets_in_the_environment_are_used(monkeypatch, tmp_path):
    monkeypatch.setenv("TWEETDESK_CONFIG", str(tmp_path / "absent.toml"))
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    s = Settings()
    assert s.api_key.get_secret_value() == SECRETS["TWEETDESK_API_KEY"] and s.x.user_credentials


def test_settings_never_print_a_secret(tmp_path):
    s = Settings(
        work_dir=tmp_path,
        database_url="postgresql+psycopg://td:pgpass-3@db:5432/td",
        kafka_config={"security.protocol": "SASL_SSL", "sasl.password": KAFKA_PASSWORD},
        **{k.removeprefix("TWEETDESK_").lower(): v for k, v in SECRETS.items()},
    )
    for text in (repr(s), str(s), f"{s!r}"):
        assert _leaks(text) == [] and "pgpass-3" not in text
    # A dump is data for the code that connects (it must hold the URL and the Kafka password), but the
    # SecretStr fields stay masked there too.
    assert _leaks(str(s.model_dump())) == [KAFKA_PASSWORD]
    assert "postgresql+psycopg://td:***@db:5432/td" in repr(s)


# --- never logged: the real commands ------------------------------------------------------------------------

def _env(settings, tmp_path: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWEETDESK_") or k == "TWEETDESK_OUR_HANDLES"}
    env.update(
        SECRETS,
        TWEETDESK_CONFIG=str(tmp_path / "absent.toml"),
        TWEETDESK_WORK_DIR=str(tmp_path / "work"),
        TWEETDESK_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        # Accepted by librdkafka on a plaintext connection (unused there): proves it is not echoed either.
        TWEETDESK_KAFKA_CONFIG=json.dumps({"sasl.username": "td", "sasl.password": KAFKA_PASSWORD}),
        TWEETDESK_TOPIC_RAW=settings.topic_raw,
        TWEETDESK_TOPIC_ENRICHED=settings.topic_enriched,
        TWEETDESK_TOPIC_DEAD=settings.topic_dead,
        **extra,
    )
    return env



def test_serve_runs_under_waitress_and_never_logs_or_answers_a_secret(fresh_topics, xapi, tmp_path):
    from tweetdesk.kafka.client import make_producer
    from tweetdesk.tickets.store import TicketStore

    settings = fresh_topics
    tw = enriched_tweet("6601")
    p = make_producer(settings.kafka)
    p.produce(settings.topic_enriched, key=tw.id, value=tw.model_dump_json())
    p.produce(settings.topic_enriched, key=b"x", value=b"{not json")  # an error path logs too
    assert p.flush(15) == 0

    env = _env(settings, tmp_path, TWEETDESK_X_API_BASE=xapi.base_url)
    proc = subprocess.Popen([str(VENV_BIN / "tweetdesk"), "serve", "--port", "0"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    answers: list[str] = []
    try:
        first = proc.stdout.readline()
        while "reply service on" not in first:
            assert first, "serve exited before announcing its URL"
            answers.append(first)
            first = proc.stdout.readline()
        url = first.split("reply service on ")[1].split()[0]
        answers.append(first)
        assert xapi.wait_for(lambda x: len(x.posts) == 1, timeout=60), "no reply posted"
        key = SECRETS["TWEETDESK_API_KEY"]
        hdr = {"X-API-Key": key}
        r = requests.get(f"{url}/healthz", timeout=5)
        # waitress answers (ident "tweetdesk"), not the Werkzeug development server.
        assert r.headers.get("Server") == "tweetdesk", r.headers
        for path, kw in [("/healthz", {}), ("/api/openapi.json", {}), ("/", {}), (f"/t/{tw.ticket_id}", {}),
                         ("/api/tickets", {"headers": hdr}), (f"/api/tickets/{tw.ticket_id}", {"headers": hdr}),
                         (f"/tickets/{tw.ticket_id}", {"headers": hdr}), ("/web/api/summary", {}),
                         ("/api/tickets", {"headers": {"X-API-Key": key[:-1] + "X"}}), ("/login", {})]:
            resp = requests.get(url + path, timeout=10, **kw)
            answers.append(f"{path} {resp.status_code} {dict(resp.headers)} {resp.text}")
        assert requests.get(f"{url}/api/tickets", headers=hdr, timeout=5).status_code == 200
        # A manual reply through the admin API (logged when posted).
        r = requests.post(f"{url}/api/replies", headers=hdr, timeout=10,
                          json={"tweet_id": tw.id, "text": f"@jane_doe More news on {tw.ticket_id} soon."})
        answers.append(r.text)
        assert r.status_code in (200, 201, 202), r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    text = "".join(answers) + out
    assert proc.returncode == 0, out
    assert "WARNING: This is a development server" not in text
    assert "posted reply" in out  # it did log its work (INFO) ...
    assert _leaks(text) == []  # ... and no secret, in the log or any answer
    logs = [*(tmp_path / "work").rglob("*.log")]
    for f in logs:
        assert _leaks(f.read_text(errors="replace")) == [], f
    store = TicketStore(f"sqlite:///{tmp_path / 'work' / 'tickets.db'}", migrate=False)
    assert store.stats()["tickets"] == 1


def test_ingest_replay_and_x_never_log_a_secret(fresh_topics, tmp_path):
    settings = fresh_topics
    env = _env(settings, tmp_path)
    r = subprocess.run([str(VENV_BIN / "tweetdesk"), "ingest", "replay", "--limit", "20"], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "published 20 tweets" in r.stderr
    assert _leaks(r.stdout + r.stderr) == []

    standin = XStandIn(token=SECRETS["TWEETDESK_X_BEARER_TOKEN"]).start()
    try:
        rule = "@united OR to:united -is:retweet"
        standin.add_rule(rule, tag=rule)
        standin.script([keepalive(), tweet(standin.payload("1899000000000000777", "@united lost bag", "kay_b"))])
        env = _env(settings, tmp_path, TWEETDESK_X_API_BASE=standin.url, TWEETDESK_X_RULES=json.dumps([rule]))
        r = subprocess.run([str(VENV_BIN / "tweetdesk"), "ingest", "x", "--limit", "1"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "published 1 tweets" in r.stderr
        assert _leaks(r.stdout + r.stderr) == []
        # The stand-in answers 401 to any other token: the token did its job, and our output never showed it.
    finally:
        standin.stop()


def test_debug_logging_of_posting_and_streaming_shows_no_secret(fresh_topics, xapi, tmp_path, caplog):
    """Even at DEBUG (tweepy, requests, urllib3 included) no secret reaches a log record."""
    from tweetdesk.reply.poster import Poster
    from tweetdesk.tickets.store import TicketStore

    caplog.set_level(logging.DEBUG)
    settings = fresh_topics.model_copy(update={
        "work_dir": tmp_path, "x_api_base": xapi.base_url,
        **{k.removeprefix("TWEETDESK_").lower(): SecretStr(v) for k, v in SECRETS.items()},
    })
    from tweetdesk.ingest.xstream import XFilteredStream
    from tweetdesk.reply.templates import ReplyTemplates

    store = TicketStore(settings.store.db_url)
    try:
        tw = enriched_tweet("6602")
        ingest = store.add_tickets([tw], ReplyTemplates.from_settings(settings).render)
        poster = Poster(settings, store)
        assert poster.deliver(ingest.replies)["posted"] == 1
        assert poster.transport.find_reply(tw.id, store.replies_for(tw.ticket_id)[0].text)  # the verification call
    finally:
        store.close()
    standin = XStandIn(token=SECRETS["TWEETDESK_X_BEARER_TOKEN"]).start()
    try:
        x = XFilteredStream(settings.model_copy(update={"x_api_base": standin.url, "x_rules": ["@united"]}))
        try:
            x.sync_rules()
        finally:
            x.close()
    finally:
        standin.stop()
    messages = "\n".join(f"{r.name}: {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert xapi.requests, "nothing reached the X stand-in"
    assert _leaks(messages) == []


# --- the admin key check ---------------------------------------------------------------------------------

@pytest.fixture
def spy_compare(monkeypatch):
    calls: list[tuple[bytes | str, bytes | str]] = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


def test_admin_key_is_compared_in_constant_time(tmp_path, sqlite_store, spy_compare):
    from tweetdesk.app import create_app

    key = SECRETS["TWEETDESK_API_KEY"]
    # Six wrong keys below: room for all of them within the free tries (the throttle is tested elsewhere).
    app = create_app(Settings(work_dir=tmp_path, api_key=SecretStr(key), auth_free_failures=10), sqlite_store)
    c = app.test_client()
    for presented, status in [(key, 200), (key[:-1] + "Z", 401), ("short", 401), (key + "longer", 401),
                              ("ключ-é-🔑", 401), ("", 401)]:
        spy_compare.clear()
        r = c.get("/api/tickets", headers={"X-API-Key": presented.encode("utf-8").decode("latin-1")})
        assert r.status_code == status, (presented, r.get_json())
        if presented:
            assert spy_compare, f"{presented!r} was not compared with hmac.compare_digest"
    spy_compare.clear()
    assert c.get("/api/tickets", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert spy_compare
    # The agent pages check the same key the same way (header or the sign-in form).
    spy_compare.clear()
    assert c.get("/tickets/BAG-7KQ4M2XZ-H", headers={"X-API-Key": "wrong"}).status_code in (401, 404)
    assert spy_compare
    # The sign-in form: a wrong key is refused after a constant-time comparison.
    import re

    spy_compare.clear()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
    r = c.post("/login", data={"api_key": "wrong", "csrf_token": token})
    assert r.status_code == 401 and spy_compare


def test_without_a_configured_key_admin_routes_refuse(tmp_path, sqlite_store):
    from tweetdesk.app import create_app

    c = create_app(Settings(work_dir=tmp_path, api_key=None), sqlite_store).test_client()
    assert c.get("/api/tickets", headers={"X-API-Key": "anything"}).status_code == 403
    assert c.get("/api/tickets").status_code == 403


def test_the_stream_job_plan_never_shows_the_kafka_password(spark, fresh_topics):
    """The Python Kafka source gets the client settings as a Spark option; Spark's plan strings (explain, the
    query description in a failure message) redact it."""
    import contextlib
    import io

    from tweetdesk.stream.kafka_source import read_kafka_stream

    s = fresh_topics.model_copy(update={"kafka_config": {"sasl.username": "td", "sasl.password": KAFKA_PASSWORD}})
    df = read_kafka_stream(spark, s)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        df.explain(True)
    plan = df._jdf.queryExecution().toString()
    assert KAFKA_PASSWORD not in out.getvalue() and KAFKA_PASSWORD not in plan
    assert "redacted" in plan
