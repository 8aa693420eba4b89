"""Passwords never reach an error line: every form of database URL, and the Kafka client settings.

The ticket store's errors are produced for real (a PostgreSQL URL pointing at a closed port, a URL SQLAlchemy
cannot read) and searched for the password; the settings' repr and the settings-file guard are checked on the
same forms."""

from __future__ import annotations

import re
import socket

import pytest

from tweetdesk.config import Settings
from tweetdesk.redact import redact_kafka_config, redact_url, scrub
from tweetdesk.tickets.store import StoreError, TicketStore


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = _closed_port()
# (URL, the secret it holds): every form the issue found leaking, and the plain one.
FORMS = [
    (f"postgresql://td:pw-plain-1@127.0.0.1:{PORT}/td", "pw-plain-1"),
    (f"postgresql://:pw-nouser-2@127.0.0.1:{PORT}/td", "pw-nouser-2"),  # empty user name
    (f"postgresql://td:p@ss-at-3@127.0.0.1:{PORT}/td", "p@ss-at-3"),  # unencoded '@' in the password
    (f"postgresql://td@127.0.0.1:{PORT}/td?password=pw-query-4", "pw-query-4"),
    (f"postgresql+psycopg://td@127.0.0.1:{PORT}/td?sslmode=disable&sslpassword=pw-ssl-5", "pw-ssl-5"),
    (f"postgresql://td:p%40ss%2Fenc-6@127.0.0.1:{PORT}/td", "p@ss/enc-6"),  # percent-encoded
    (f"postgres://td:pw-v6-7@[::1]:{PORT}/td", "pw-v6-7"),
    (f"postgresql://td:pw-multi-9@127.0.0.1:{PORT},127.0.0.2:{PORT}/td", "pw-multi-9"),  # libpq's multi-host form
    (f"postgresql://td:p@ss/sl-10@127.0.0.1:{PORT},[::1]:{PORT}/td", "p@ss/sl-10"),  # '@' and '/', multi-host
    (f"postgresql://td:p@ss/sl-11@127.0.0.1:{PORT}/td", "p@ss/sl-11"),  # '@' and '/' unencoded
]


def _parts(secret: str) -> list[str]:
    """The secret and its pieces around an '@' or '/' (half a password is still a leak)."""
    return [secret, *[p for p in re.split("[@/]", secret) if len(p) > 2]]


@pytest.mark.parametrize("url,secret", FORMS)
def test_redact_url_hides_every_form(url, secret):
    out = redact_url(url)
    assert not any(p in out for p in _parts(secret)), out
    assert "127.0.0.1" in out or "::1" in out  # still says which server


@pytest.mark.parametrize("url,secret", FORMS)
def test_store_errors_never_show_the_password(url, secret):
    with pytest.raises(StoreError) as e:
        TicketStore(url)
    msg = str(e.value)
    assert "cannot open" in msg or "unavailable" in msg
    assert not any(p in msg for p in _parts(secret)), msg


@pytest.mark.parametrize("url,secret", FORMS)
def test_settings_repr_and_file_guard_see_every_form(tmp_path, monkeypatch, url, secret):
    s = Settings(work_dir=tmp_path, database_url=url)
    assert not any(p in repr(s) for p in _parts(secret)), repr(s)
    toml = tmp_path / "tweetdesk.toml"
    toml.write_text(f'database_url = "{url}"\n')
    toml.chmod(0o644)
    monkeypatch.setenv("TWEETDESK_CONFIG", str(toml))
    from tweetdesk.errors import ConfigError

    with pytest.raises(ConfigError, match="database_url"):
        Settings()


def test_an_unreadable_url_is_redacted_too():
    url = "postgresql://td:pw-bad-8@db:notaport/td"
    with pytest.raises(StoreError) as e:
        TicketStore(url)
    assert "pw-bad-8" not in str(e.value)
    assert "pw-bad-8" not in redact_url(url)


def test_urls_without_secrets_are_unchanged():
    for url in ("sqlite:////tmp/tickets.db", "sqlite:////tmp/a@b.db", "postgresql+psycopg://td@db:5432/td",
                "postgresql+psycopg://td@db/td?application_name=a@b&sslmode=require"):
        assert redact_url(url) == url


def test_scrub_masks_the_secret_wherever_a_driver_echoes_it():
    url = "postgresql://td:p@ss-at-3@db/td"
    text = f"could not parse {url}; password p@ss-at-3 (p%40ss-at-3) rejected"
    out = scrub(text, url=url)
    assert "ss-at-3" not in out and "db/td" in out


KAFKA = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "OAUTHBEARER",
    "sasl.username": "td",
    "sasl.password": "kafka-pw-1",
    "ssl.key.password": "kafka-pw-2",
    "ssl.keystore.password": "kafka-pw-3",
    "sasl.oauthbearer.client.secret": "kafka-pw-4",
    "sasl.oauthbearer.config": "clientId=td clientSecret=kafka-pw-5",
    "ssl.key.pem": "-----BEGIN PRIVATE KEY-----kafka-pw-6",
}


def test_kafka_settings_never_print_a_secret(tmp_path):
    red = redact_kafka_config(KAFKA)
    assert red["security.protocol"] == "SASL_SSL" and red["sasl.username"] == "td"
    s = Settings(work_dir=tmp_path, kafka_config=KAFKA)
    for text in (str(red), repr(s), str(s)):
        assert "kafka-pw" not in text, text


def test_a_readable_settings_file_with_any_kafka_secret_is_refused(tmp_path, monkeypatch):
    from tweetdesk.errors import ConfigError

    toml = tmp_path / "tweetdesk.toml"
    toml.write_text('[kafka_config]\n"sasl.oauthbearer.config" = "clientId=td clientSecret=kafka-pw-5"\n')
    toml.chmod(0o644)
    monkeypatch.setenv("TWEETDESK_CONFIG", str(toml))
    with pytest.raises(ConfigError, match="sasl.oauthbearer.config") as e:
        Settings()
    assert "kafka-pw-5" not in str(e.value)


@pytest.mark.parametrize("url,secret", FORMS[-3:])
def test_users_list_error_line_never_shows_the_password(tmp_path, url, secret):
    """The error line of `tweetdesk users list` with a multi-host URL printed the password in clear."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("TWEETDESK_")}
    env.update(TWEETDESK_CONFIG=str(tmp_path / "absent.toml"), TWEETDESK_WORK_DIR=str(tmp_path),
               TWEETDESK_DATABASE_URL=url)
    out = subprocess.run([str(Path(sys.executable).parent / "tweetdesk"), "users", "list"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "Traceback" not in text and text.strip(), text
    assert not any(p in text for p in _parts(secret)), text


def test_any_url_with_credentials_in_the_settings_file_is_a_secret(tmp_path, monkeypatch):
    from tweetdesk.errors import ConfigError

    toml = tmp_path / "tweetdesk.toml"
    toml.write_text('[kafka]\nschema_registry = "https://td:pw-any-12@registry.example:8081"\n')
    toml.chmod(0o644)
    monkeypatch.setenv("TWEETDESK_CONFIG", str(toml))
    with pytest.raises(ConfigError, match="schema_registry"):
        Settings()
