"""How the pages show values: a tweet with its entities marked, money, durations, the time buckets' labels."""

from __future__ import annotations

from datetime import datetime

from markupsafe import Markup, escape

from tweetdesk.records import Entity


def highlight(text: str, entities: list[Entity]) -> Markup:
    """The tweet with its entities marked (offsets verified against the text; overlaps skipped)."""
    out, pos = [], 0
    for e in sorted(entities, key=lambda e: (e.start, -e.end)):
        if e.start < pos or e.end > len(text) or e.end <= e.start or text[e.start : e.end] != e.text:
            continue
        out.append(escape(text[pos : e.start]))
        out.append(
            # The label is drawn by CSS (::after): not part of the text when copied or read out.
            Markup('<mark class="ent" data-label="{label}" title="{label}">{t}</mark>').format(
                label=e.label, t=text[e.start : e.end]
            )
        )
        pos = e.end
    out.append(escape(text[pos:]))
    return Markup("").join(out)


BUCKET_TEXT = {60: "per minute", 300: "per 5 minutes", 900: "per 15 minutes", 3600: "per hour",
                10800: "per 3 hours", 21600: "per 6 hours", 86400: "per day", 604800: "per week",
                2592000: "per 30 days"}


def bucket_labels(starts: list[datetime], width: int) -> list[str]:
    if not starts:
        return []
    if width >= 86400:
        return [s.strftime("%Y-%m-%d") for s in starts]
    same_day = starts[0].date() == starts[-1].date()
    return [s.strftime("%H:%M" if same_day else "%d %b %H:%M") for s in starts]


def money(usd: float) -> str:
    # X charges $0.015 a post: keep the tenth of a cent when there is one ($0.045, not $0.04).
    usd = round(usd, 3)
    return f"${usd:,.2f}" if round(usd, 2) == usd else f"${usd:,.3f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return "under 1 min"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"
