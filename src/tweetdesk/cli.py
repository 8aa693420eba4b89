"""The single command line: ``tweetdesk demo | train | evaluate | lda | classify | broker | ingest | x-login
| stream | serve | bench | users``. Each command is a thin shell over its stage's module, imported lazily so that
``tweetdesk --help`` is instant. Errors a user can act on print as one line (``tweetdesk: error: …``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from tweetdesk.errors import TweetdeskError, need_extra

PathArg = click.Path(path_type=Path)


def _settings(**overrides):
    from pydantic import ValidationError

    from tweetdesk.config import Settings
    from tweetdesk.records import problems

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        where, msg = problems(e)[0]
        raise TweetdeskError(f"bad setting TWEETDESK_{where.upper()}: {msg}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tweetdesk")
@click.option("--work-dir", type=PathArg, metavar="DIR",
              help="Parquet, checkpoints, logs, SQLite and the secret key live here (TWEETDESK_WORK_DIR; default "
              ".tweetdesk). The demo's: .tweetdesk/demo.")
@click.pass_context
def app(ctx: click.Context, work_dir: Path | None) -> None:
    """tweetdesk: customer tweets in, tracked support tickets out.

    After `make demo`: `.venv/bin/tweetdesk COMMAND` (or `source .venv/bin/activate` once, then `tweetdesk`)."""
    if work_dir is not None:
        # Through the environment, so that every command (and the Spark workers it starts) reads the same one.
        os.environ["TWEETDESK_WORK_DIR"] = str(work_dir)
    ctx.obj = _settings  # command groups defined in their stage's module (tweetdesk users) read settings with it


@app.command()
@click.argument("text", required=False)
@click.option("--file", "-f", "file", type=PathArg, help="CSV (data set format) or JSONL of tweets.")
@click.option("--json", "json_out", is_flag=True, help="One JSON object per line on stdout.")
@click.option("--handle", "handles", multiple=True, metavar="HANDLE",
              help="Our account(s) for the reply rule, instead of TWEETDESK_OUR_HANDLES (repeat it; --handle demo: "
              "the demo's airlines).")
def classify(text: str | None, file: Path | None, json_out: bool, handles: tuple[str, ...]) -> None:
    """Classify a tweet (or a file of tweets): sentiment, topic, entities and the ticket ID.

    Whether it would get an automatic reply depends on our accounts (TWEETDESK_OUR_HANDLES, default @tweetdesk;
    the demo answers for the sample's airlines): the output names the ones it checked."""
    from tweetdesk.config import SAMPLE_OUR_HANDLES
    from tweetdesk.models.classify import classify_command

    if handles:
        ours = [h for given in handles for h in (SAMPLE_OUR_HANDLES if given == "demo" else (given,))]
        settings = _settings(our_handles=ours)
    else:
        settings = _settings()
    classify_command(settings, text=text, file=file, json_out=json_out)


@app.command()
@click.option("--data", type=PathArg, help="Labelled CSV (airline data set format).")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True, help="Maximum epochs (early stopping).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--version", "version", help="Artifact folder name (default: date-based).")
@click.option("--teacher-epochs", type=click.IntRange(min=1), help="Most epochs for fine-tuning the teacher (default 2).")
@click.option("--copies", type=click.IntRange(min=0), help="Augmented copies per training tweet for the teacher to label (default 3).")
@click.option("--reuse-teacher", metavar="VERSION", help="Reuse this version's teacher lessons (work dir); retrain the LSTMs only.")
@click.option("--sentiment-from", metavar="VERSION", help="Keep this version's sentiment LSTM(s) as they are; train the topic LSTM only.")
@click.option("--corrections", is_flag=True, help="Add the agents' corrections from the ticket store to the training split.")
def train(data: Path | None, epochs: int, seed: int, version: str | None, teacher_epochs: int | None,
          copies: int | None, reuse_teacher: str | None, sentiment_from: str | None, corrections: bool) -> None:
    """Fine-tune the MiniLM teacher, distil the LSTMs from it; write artifacts and reports/ (needs the train extra)."""
    need_extra("tweetdesk train")
    from tweetdesk.models.train import train_command

    settings = _settings(data_path=data)
    extra = None
    if corrections:
        from tweetdesk.models.corrections import trainable_corrections

        extra, line = trainable_corrections(settings)  # never X content (X's rules)
        click.echo(line, err=True)
    train_command(settings, epochs=epochs, seed=seed, version=version, teacher_epochs=teacher_epochs,
                  copies=copies, reuse_teacher=reuse_teacher, sentiment_from=sentiment_from, corrections=extra)


@app.command()
@click.option("--data", type=PathArg, help="Labelled CSV (airline data set format).")
def evaluate(data: Path | None) -> None:
    """Evaluate the shipped models and a TF-IDF baseline on the test split, and their agreement with the agents'
    corrections; write reports/metrics.json, reports/corrections.json and plots."""
    need_extra("tweetdesk evaluate")
    from tweetdesk.models.corrections import agreement
    from tweetdesk.models.evaluate import evaluate_command

    settings = _settings(data_path=data)
    # The agents' corrections so far (reports/corrections.json), in the same JSON document as the metrics.
    evaluate_command(settings, also={"agreement_with_corrections": agreement(settings)})


@app.command()
@click.option("--data", type=PathArg, help="Labelled CSV (airline data set format).")
@click.option("--topics", type=click.IntRange(min=2), default=12, show_default=True, help="Number of LDA topics.")
def lda(data: Path | None, topics: int) -> None:
    """Fit LDA over the cleaned corpus and print each topic's top words (to review the mapping)."""
    need_extra("tweetdesk lda")
    from tweetdesk.models.lda import lda_command

    lda_command(_settings(data_path=data), n_topics=topics)


@app.command()
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 = a free port.")
def broker(port: int) -> None:
    """Run the embedded Kafka-protocol broker (tansu) in the foreground."""
    from tweetdesk.kafka.broker import broker_command

    broker_command(_settings(), port=port)


@app.command()
@click.argument("source", type=click.Choice(["replay", "x", "mentions", "dms"]), default="replay")
@click.option("--path", type=PathArg, help="CSV or JSONL to replay (default: the shipped sample).")
@click.option("--rate", type=click.FloatRange(min=0), default=0.0, help="Tweets per second (0 = as fast as possible).")
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many tweets (mentions, dms: after that poll).")
@click.option("--loop", is_flag=True, help="Replay the file again and again (new ids each pass).")
@click.option("--interval", type=click.FloatRange(min=1),
              help="mentions, dms: seconds between polls [default: 30; dms: 60, X allows 15 DM lookups / 15 min].")
@click.option("--once", is_flag=True, help="mentions, dms: one poll (every page of it), then exit.")
@click.option("--backfill-hours", type=click.FloatRange(min=0),
              help="mentions, dms: on the first run, read this far back (0 = all X keeps) [default: 24].")
def ingest(source: str, path: Path | None, rate: float, limit: int | None, loop: bool, interval: float | None,
           once: bool, backfill_hours: float | None) -> None:
    """Publish tweets to Kafka from a replay file, the X filtered stream (listening), our mentions (replying) or our
    direct messages (dms)."""
    from tweetdesk.ingest import ingest_command

    ingest_command(_settings(), source=source, path=path, rate=rate, limit=limit, loop=loop, interval=interval,
                   once=once, backfill_hours=backfill_hours)


@app.command("x-login")
@click.option("--redirect-url", help="The address X sent the browser to (finishes a login started without it).")
def x_login(redirect_url: str | None) -> None:
    """Sign in to X as the brand's account (OAuth 2.0 with PKCE); the tokens go to a file only you can read."""
    from tweetdesk.x.auth import login_command

    login_command(_settings(), redirect_url=redirect_url)


@app.command()
@click.option("--master", help="Spark master (default local[2]).")
@click.option("--available-now", is_flag=True, help="Process what is in Kafka now, then stop.")
def stream(master: str | None, available_now: bool) -> None:
    """Run the Spark Structured Streaming job: Kafka -> enrich -> Parquet + tweets.enriched."""
    from tweetdesk.stream.job import stream_command

    stream_command(_settings(spark_master=master), available_now=available_now)


@app.command()
@click.option("--host", help="Address to listen on (TWEETDESK_HOST) [default: 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (TWEETDESK_PORT; 0 = a free one) [default: 8080].")
def serve(host: str | None, port: int | None) -> None:
    """Run the reply service + web dashboard (dry-run unless X user credentials are set).

    Its tickets, accounts and secret key are the work dir's: to look at the demo's tickets, `tweetdesk --work-dir
    .tweetdesk/demo serve` (first `tweetdesk --work-dir .tweetdesk/demo users add NAME --role agent`, which prints
    a one-time password to sign in with at /login)."""
    from tweetdesk.serve import serve_command

    serve_command(_settings(host=host, port=port))


@app.command()
@click.option("--limit", type=click.IntRange(min=1), help="Replay only this many sample tweets.")
@click.option("--keep-running", is_flag=True, help="Keep the services up after the summary (Ctrl-C stops).")
@click.option("--verbose", "-v", is_flag=True, help="Show Spark's warnings and the log lines a quiet run hides.")
def demo(limit: int | None, keep_running: bool, verbose: bool) -> None:
    """End-to-end demo on embedded defaults: broker, stream job, reply service, sample replay, summary.

    Works in <work dir>/demo. A rerun resets the demo's tweets, tickets, replies, dead letters and Parquet; it
    keeps the desk accounts and the secret key (so ticket IDs stay the same)."""
    from tweetdesk.demo import demo_command

    demo_command(_settings(), limit=limit, keep_running=keep_running, verbose=verbose)


@app.command(context_settings={"ignore_unknown_options": True})
@click.argument("which", type=click.Choice(["classify", "stream", "replies", "latency", "budget", "web", "desk"]))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(which: str, args: tuple[str, ...]) -> None:
    """Run one of the benchmarks under benchmarks/ and print its figures on stdout (progress on stderr).

    ARGS go to the script, e.g. `tweetdesk bench classify --n 2000` (`-- --help` lists them)."""
    import runpy

    from tweetdesk.config import REPO_ROOT

    script = REPO_ROOT / "benchmarks" / f"{which}.py"
    if not script.exists():
        raise TweetdeskError(f"benchmark script {script} is missing (benchmarks run from a source checkout)")
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")


from tweetdesk.desk.cli import users  # noqa: E402  (a click group; its commands import the store lazily)

app.add_command(users)

from tweetdesk.compliance import compliance, erase, x_records  # noqa: E402  (X's data rules)

for _command in (compliance, erase, x_records):
    app.add_command(_command)

for _cmd in app.commands.values():
    # `tweetdesk --help` lists each command's first paragraph in full (click would cut it with "...").
    if _cmd.help and not _cmd.short_help:
        _cmd.short_help = " ".join(_cmd.help.split("\n\n")[0].split())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; usage errors and TweetdeskErrors print one readable line, never a traceback."""
    try:
        app.main(args=argv, prog_name="tweetdesk", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help() if e.ctx else str(e))
        return 0
    except click.UsageError as e:
        click.echo(f"tweetdesk: error: {e.format_message()}", err=True)
        return 2
    except click.ClickException as e:
        click.echo(f"tweetdesk: error: {e.format_message()}", err=True)
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("tweetdesk: interrupted", err=True)
        return 130
    except TweetdeskError as e:
        click.echo(f"tweetdesk: error: {e}", err=True)
        return 1
    return 0


def run() -> None:  # console-script target
    sys.exit(main())


if __name__ == "__main__":
    run()
