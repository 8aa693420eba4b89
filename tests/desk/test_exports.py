"""Exports in bounded memory (issue 25, item 9): the CSV and Parquet exports stream a page of tickets at a time
(a Parquet row group per page) with the same content as one whole-store export, and the exports built at once
are capped (429 JSON with Retry-After). Real app, real store on each backend, Flask's test client."""

from __future__ import annotations

import io
import math
from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from tests.fixtures.browser import seed_store
from tweetdesk.app import create_app
from tweetdesk.config import Settings
from tweetdesk.desk import inbox
from tweetdesk.desk.core import Desk
from tweetdesk.desk.inbox import InboxFilters, export_rows, to_csv, to_parquet
from tweetdesk.tickets.store import TicketStore

KEY = "an-admin-key-for-the-export-tests-0123456789"
ADMIN = {"X-API-Key": KEY}
N = 23
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def exporting(tmp_path, store_url):
    store = TicketStore(store_url, clock=lambda: NOW)  # every ticket opened at the same instant: pages tie on it
    seed_store(store, n=N)
    settings = Settings(work_dir=tmp_path, api_key=KEY, desk_export_concurrency=1)
    desk = Desk(store, settings)
    ann = desk.accounts.authenticate("ann", desk.accounts.add("ann", "agent", actor="test")[1])
    first = store.list_tickets(limit=3).items
    desk.add_note(first[0].ticket_id, "=phoned, said \"later\"\nsecond line", ann)
    desk.correct(first[1].ticket_id, ann, topic="Extra Charges")
    desk.correct(first[1].ticket_id, ann, sentiment="neutral")  # the latest correction is the one exported
    app = create_app(settings, store)
    app.config["TESTING"] = True
    try:
        yield app.test_client(), desk
    finally:
        store.close()


def _export(client, fmt: str):
    r = client.get(f"/api/export?format={fmt}&status=all", headers=ADMIN)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.is_streamed  # sent as it is built, not assembled in memory first
    body = r.get_data()
    r.close()
    return body


def test_exports_stream_a_page_at_a_time_with_the_content_of_a_whole_export(exporting, monkeypatch):
    client, desk = exporting
    whole = export_rows(desk, InboxFilters(status="all"))  # one page: what an export held at once before
    assert len(whole) == N and len({r["ticket_id"] for r in whole}) == N
    monkeypatch.setattr(inbox, "EXPORT_PAGE", 5)
    assert export_rows(desk, InboxFilters(status="all")) == whole  # no ticket lost or repeated across pages
    parquet = pq.ParquetFile(io.BytesIO(_export(client, "parquet")))
    assert parquet.metadata.num_row_groups == math.ceil(N / 5)
    assert parquet.read().equals(pq.read_table(io.BytesIO(to_parquet(whole))))
    assert _export(client, "csv") == to_csv(whole)  # byte for byte: one BOM, one header, formulas defused
    corrected = next(r for r in whole if r["corrected_by"])
    assert (corrected["topic"], corrected["sentiment"], corrected["corrected_by"]) == ("Extra Charges", "neutral", "ann")


def test_an_empty_export_is_a_valid_file(exporting):
    client, _ = exporting
    r = client.get("/api/export?format=parquet&topic=Online Booking&status=resolved&class=positive", headers=ADMIN)
    table = pq.read_table(io.BytesIO(r.get_data()))
    assert r.status_code == 200 and table.num_rows == 0 and "ticket_id" in table.column_names
    r = client.get("/api/export?format=csv&topic=Online Booking&status=resolved&class=positive", headers=ADMIN)
    assert r.get_data().decode("utf-8-sig").splitlines() == [",".join(inbox.EXPORT_COLUMNS)]


def test_exports_over_the_cap_are_refused_429_until_one_ends(exporting):
    client, _ = exporting
    running = client.get("/api/export?format=parquet", headers=ADMIN)  # its body not read yet: still running
    assert running.status_code == 200
    for fmt in ("csv", "parquet"):
        r = client.get(f"/api/export?format={fmt}", headers=ADMIN)
        assert r.status_code == 429 and r.headers["Retry-After"].isdigit()
        assert r.get_json()["kind"] == "busy" and r.get_json()["status"] == 429
    assert client.get("/api/export?format=xlsx", headers=ADMIN).status_code == 400  # a bad request is still 400
    running.get_data()  # sent in full: its slot is free
    running.close()
    assert client.get("/api/export?format=csv", headers=ADMIN).status_code == 200


def test_a_client_gone_mid_export_frees_its_slot(exporting):
    client, _ = exporting
    gone = client.get("/api/export?format=csv", headers=ADMIN)
    gone.close()  # what waitress does when the client hangs up before the body
    r = client.get("/api/export?format=csv", headers=ADMIN)
    assert r.status_code == 200 and len(r.get_data().splitlines()) == N + 1
