"""``tweetdesk compliance | erase | x-records``: X's data rules from the command line (a click module of its own
so that cli.py only registers it)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import click

from tweetdesk.errors import TweetdeskError

_EVERY = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def _seconds(every: str) -> float:
    m = _EVERY.match(every.strip())
    if not m or float(m.group(1)) <= 0:
        raise TweetdeskError(f"--every {every!r}: give a duration such as 30m, 6h or 1d")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def parquet_rewriter(settings):
    """Removed post IDs -> the Spark rewrite of the Parquet partitions holding them (a session only when needed)."""
    def rewrite_parquet(ids: set[str]) -> None:
        from tweetdesk.stream.rewrite import rewrite
        from tweetdesk.stream.spark import build_spark

        root = settings.parquet_uri or settings.stream.parquet_dir
        if "://" not in str(root) and not any(Path(root).glob("day=*")):
            return  # no Parquet here (the stream runs elsewhere or not yet)
        r = rewrite(build_spark(settings, app_name="tweetdesk-compliance"), root, ids)
        click.echo(f"parquet: {r.rows_blanked} rows blanked in {len(r.partitions)} partitions")

    return rewrite_parquet


def _store(settings):
    from tweetdesk.tickets.store import TicketStore

    return TicketStore.from_settings(settings)


@click.command()
@click.option("--every", metavar="DURATION", help="Run again and again (e.g. 6h; X's 24-hour deadline needs < 24h).")
@click.pass_obj
def compliance(settings_of, every: str | None) -> None:
    """Send the stored post and author IDs through X's batch compliance and remove what X says must go."""
    pause = _seconds(every) if every else None
    settings = settings_of()
    store = _store(settings)
    try:
        while True:
            try:
                _cycle(settings, store)
            except TweetdeskError as e:
                if pause is None:
                    raise
                # A scheduled run keeps going: the next cycle retries (X down, a job still open, …).
                click.echo(f"tweetdesk: error: {e} (next cycle in {every})", err=True)
            if pause is None:
                return
            time.sleep(pause)
    finally:
        store.close()


def _cycle(settings, store) -> None:
    from tweetdesk.tickets.compliance import run_cycle
    from tweetdesk.tickets.erase import purge_older_than

    rewrite_parquet = parquet_rewriter(settings)
    if settings.retention_days:  # first: what retention purges need not go through X's jobs
        r = purge_older_than(store, settings.retention_days, rewrite_parquet=rewrite_parquet)
        click.echo(f"retention: {len(r.tweet_ids)} posts older than {settings.retention_days:g} days purged")
    click.echo(run_cycle(settings, store, rewrite_parquet=rewrite_parquet).line())


@click.command()
@click.option("--author", "handle", required=True, metavar="HANDLE", help="The X handle whose content to erase.")
@click.pass_obj
def erase(settings_of, handle: str) -> None:
    """Erase every post of an author (a customer's request) from the store, on the same path as compliance."""
    from tweetdesk.tickets.erase import erase_author

    settings = settings_of()
    store = _store(settings)
    try:
        r = erase_author(store, handle, actor="cli", key=settings_key(settings),
                         rewrite_parquet=parquet_rewriter(settings))
    finally:
        store.close()
    click.echo(f"erase: {len(r.tweet_ids)} posts and {r.tickets} tickets of that author removed (audited)")


def settings_key(settings) -> bytes:
    from tweetdesk.secret_key import derive, secret_key

    return derive(secret_key(settings), "erase-digest")


@click.command("x-records")
@click.option("--out", type=click.Path(path_type=Path), help="Write the JSON here (default: stdout).")
@click.pass_obj
def x_records(settings_of, out: Path | None) -> None:
    """Export the record of X data use for an audit: x_usage figures per day and the compliance log."""
    from tweetdesk.tickets.erase import record_of_use

    store = _store(settings_of())
    try:
        doc = json.dumps(record_of_use(store), indent=1, default=str)
    finally:
        store.close()
    if out:
        out.write_text(doc + "\n")
        click.echo(f"x-records: written to {out}")
    else:
        click.echo(doc)
