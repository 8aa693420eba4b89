"""compose.yaml cannot run here (no container engine with networking): it is parsed, and every tweetdesk service's
command is checked against the real CLI and every TWEETDESK_* variable against Settings, so it cannot drift."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import click
import pytest
import yaml

from tests.fixtures.deploy import check_cli, check_settings_values, setting_names
from tweetdesk.config import REPO_ROOT

COMPOSE = REPO_ROOT / "compose.yaml"
# What a user's .env would hold (compose interpolates ${VAR}, ${VAR:-default}, ${VAR:?message}).
DOTENV = {"POSTGRES_PASSWORD": "pw-from-dotenv", "TWEETDESK_API_KEY": "k" * 32, "TWEETDESK_X_BEARER_TOKEN": "b"}
_VAR = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


def _interpolate(value, env: dict[str, str]):
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m):
        name, op, arg = m["name"], m["op"], m["arg"]
        if env.get(name):
            return env[name]
        if op == ":?":
            raise AssertionError(f"${{{name}}} is required: {arg}")
        return arg or ""

    return _VAR.sub(sub, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return _interpolate(yaml.safe_load(COMPOSE.read_text()), DOTENV)


def _tweetdesk_services(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in compose["services"].items() if "tweetdesk" in s.get("image", "")}


def test_roles_present(compose):
    assert set(compose["services"]) >= {"kafka", "postgres", "serve", "stream", "ingest"}
    assert set(_tweetdesk_services(compose)) == {"serve", "stream", "ingest", "compliance"}
    # X's data rules: compliance well inside 24 hours, and no topic keeps a record longer than that.
    assert compose["services"]["compliance"]["command"] == ["compliance", "--every", "6h"]
    assert int(compose["services"]["kafka"]["environment"]["KAFKA_LOG_RETENTION_HOURS"]) <= 24


def test_commands_parse_with_the_cli(compose):
    for name, svc in _tweetdesk_services(compose).items():
        check_cli(svc["command"])
    # The check itself rejects what the CLI rejects.
    for bad in (["ingest", "nowhere"], ["serve", "--port", "99999"], ["serv"], ["stream", "--no-such-flag"]):
        with pytest.raises(click.UsageError):
            check_cli(bad)


def test_settings_are_settings(compose, monkeypatch):
    for name, svc in _tweetdesk_services(compose).items():
        env = svc["environment"]
        setting_names(env)
        s = check_settings_values(env, monkeypatch)
        assert s.kafka_bootstrap == "kafka:9092", name
        assert s.store.db_url.startswith("postgresql+psycopg://tweetdesk:pw-from-dotenv@postgres:5432/"), name
    with pytest.raises(AssertionError, match="not a setting"):
        setting_names({"TWEETDESK_KAFKA_BOOTSTRAPS": "x"})


def test_wiring(compose):
    """Names and ports that must agree across services."""
    services = compose["services"]
    kafka = services["kafka"]["environment"]
    for name, svc in _tweetdesk_services(compose).items():
        env = svc["environment"]
        host, port = env["TWEETDESK_KAFKA_BOOTSTRAP"].split(":")
        assert host in services and f"PLAINTEXT://{host}:{port}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
        db = urlparse(env["TWEETDESK_DATABASE_URL"])
        pg = services["postgres"]["environment"]
        assert db.hostname in services and (db.username, db.password, db.path.lstrip("/")) == \
            (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])
        work = env["TWEETDESK_WORK_DIR"]
        assert any(v.split(":")[1] == work and v.split(":")[0] in compose["volumes"] for v in svc["volumes"]), name
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"
        if name != "serve":
            assert svc["healthcheck"] == {"disable": True}, f"{name} has no HTTP port for the image's healthcheck"
    serve = services["serve"]
    published = serve["ports"][0].rsplit(":", 1)[1]
    assert published == serve["environment"]["TWEETDESK_PORT"] and serve["environment"]["TWEETDESK_HOST"] == "0.0.0.0"
    assert "/healthz" in " ".join(serve["healthcheck"]["test"])
    # Behind a reverse proxy the throttle must see the forwarded client; without one, 0 (nothing to forge).
    assert "TWEETDESK_TRUSTED_PROXIES" in serve["environment"]


def test_secrets_are_required_not_defaulted():
    """Interpolating without a .env fails on the secrets, rather than starting with an empty password."""
    raw = yaml.safe_load(COMPOSE.read_text())
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        _interpolate(raw, {})
