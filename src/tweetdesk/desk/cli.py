"""``tweetdesk users add|list|disable|enable|reset|token``: the desk's accounts from the command line (the
service need not run; they act on the store of ``TWEETDESK_DATABASE_URL`` / the work dir)."""

from __future__ import annotations

import getpass

import click

from tweetdesk.desk import ROLES


def _desk():
    from tweetdesk.config import Settings
    from tweetdesk.desk.core import Desk
    from tweetdesk.tickets.store import TicketStore

    # The root command's settings reader (its bad-setting errors are one line); plain Settings when run alone.
    load = click.get_current_context().find_root().obj
    settings = load() if callable(load) else Settings()
    return Desk(TicketStore.from_settings(settings), settings)


def _actor() -> str:
    try:
        return f"cli ({getpass.getuser()})"[:40]
    except (KeyError, OSError):
        return "cli"


@click.group()
def users() -> None:
    """Desk accounts: admins manage users and canned replies, agents work tickets, viewers read."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(list(ROLES)), default="agent", show_default=True)
def add(name: str, role: str) -> None:
    """Create an account; prints its one-time password (shown once)."""
    d = _desk()
    user, password = d.accounts.add(name, role, actor=_actor())
    click.echo(f"user {user['name']} ({user['role']}) added; one-time password: {password}")
    click.echo("sign in at /login with the name and this password (tweetdesk users reset NAME makes a new one)", err=True)


@users.command("list")
def list_() -> None:
    """Every account, its role and whether it is enabled."""
    rows = _desk().accounts.list()
    if not rows:
        click.echo("no users yet: tweetdesk users add NAME --role admin")
        return
    click.echo(f"{'name':<20} {'role':<8} {'state':<9} created (UTC)")
    for u in rows:
        click.echo(f"{u['name']:<20} {u['role']:<8} {'disabled' if u['disabled'] else 'active':<9} "
                   f"{u['created_at']:%Y-%m-%d %H:%M}")


@users.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Disable an account: its sessions and API tokens stop working, its tickets are unassigned."""
    u = _desk().accounts.disable(name, actor=_actor())
    click.echo(f"user {u['name']} disabled")


@users.command("enable")
@click.argument("name")
def enable(name: str) -> None:
    """Enable a disabled account again."""
    u = _desk().accounts.disable(name, actor=_actor(), enable=True)
    click.echo(f"user {u['name']} enabled")


@users.command("reset")
@click.argument("name")
def reset(name: str) -> None:
    """A new one-time password (the old one and every session of the account stop working)."""
    password = _desk().accounts.reset(name, actor=_actor())
    click.echo(f"user {name.lower()}: new one-time password: {password}")


@users.command("token")
@click.argument("name")
@click.option("--label", default="cli", show_default=True, help="What the token is for (shown in lists).")
def token(name: str, label: str) -> None:
    """A personal API token for the admin API (Authorization: Bearer …); shown once."""
    info, tok = _desk().accounts.create_token(name, label, actor=_actor())
    click.echo(tok)
    click.echo(f"token {info['id']} for {info['user']} ({info['label']}): revoke with DELETE /api/tokens/{info['id']}",
               err=True)
