"""``tweetdesk users …`` against a real SQLite store in a temp work dir: one-time passwords that sign in,
one-line errors for bad input, disable and reset taking effect."""

from __future__ import annotations

import pytest

from tweetdesk.cli import main
from tweetdesk.config import Settings
from tweetdesk.desk.core import Desk
from tweetdesk.tickets.store import TicketStore


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.setenv("TWEETDESK_WORK_DIR", str(tmp_path))
    monkeypatch.delenv("TWEETDESK_DATABASE_URL", raising=False)
    return tmp_path


def _desk(work):
    s = Settings(work_dir=work)
    return Desk(TicketStore.from_settings(s), s)


def test_users_add_list_reset_disable_token(work, capsys):
    assert main(["users", "add", "Ann", "--role", "admin"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("user ann (admin) added; one-time password: ")
    password = out.strip().rsplit(" ", 1)[1]
    d = _desk(work)
    assert d.accounts.authenticate("ann", password).role == "admin"
    assert main(["users", "list"]) == 0
    assert "ann                  admin    active" in capsys.readouterr().out
    assert main(["users", "reset", "ann"]) == 0
    new = capsys.readouterr().out.strip().rsplit(" ", 1)[1]
    assert d.accounts.authenticate("ann", password) is None and d.accounts.authenticate("ann", new)
    assert main(["users", "token", "ann"]) == 0
    token = capsys.readouterr().out.strip()
    assert d.accounts.token_principal(token).name == "ann"
    assert main(["users", "disable", "ann"]) == 0
    assert d.accounts.authenticate("ann", new) is None and d.accounts.token_principal(token) is None
    assert [e["actor"].startswith("cli") for e in d.audit()] == [True] * 4
    d.store.close()


@pytest.mark.parametrize("args, message", [
    (["users", "add", "ann"], "user 'ann' exists already"),
    (["users", "reset", "zed"], "no user 'zed'"),
    (["users", "disable", "zed"], "no user 'zed'"),
    (["users", "add", "a b"], "bad user name 'a b'"),
    (["users", "add", "x", "--role", "boss"], "Invalid value for '--role'"),
])
def test_bad_input_is_one_line(work, capsys, args, message):
    assert main(["users", "add", "ann"]) == 0
    capsys.readouterr()
    assert main(args) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("tweetdesk: error: ") and message in err and "\n" not in err
