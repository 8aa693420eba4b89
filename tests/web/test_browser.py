"""The web pages in a real browser: Debian's chromium, headless, driven by Playwright, against the
real app (tweetdesk.app.create_app) served over HTTP with a seeded SQLite ticket store.

Screenshots of every page go to the test's tmp_path (pytest prints it on failure; keep them with
``--basetemp``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fixtures.browser import axe_violations, make_tweet, seed_store
from tweetdesk.app import create_app
from tweetdesk.config import Settings
from tweetdesk.records import DeadLetter
from tweetdesk.tickets.ids import ALPHABET, ticket_id_for
from tweetdesk.tickets.intake import Intake
from tweetdesk.tickets.store import TicketStore

pytestmark = pytest.mark.browser

KEY = "browser-test-key-long-enough-for-the-rules"


class Site:
    def __init__(self, url, store, seeded):
        self.url, self.store, self.seeded = url, store, seeded

    def ticket(self, status: str):
        return next(t for t in self.seeded["tweets"] if self.seeded["statuses"][t.ticket_id] == status)


def _site(tmp_path, live_server_for, api_key):
    store = TicketStore(f"sqlite:///{tmp_path / 'tickets.db'}")
    seeded = seed_store(store, n=24)
    store.record_dead_letters([DeadLetter.of(b"{oops", "invalid JSON", "parse")])
    app = create_app(Settings(work_dir=tmp_path, api_key=api_key), store)
    app.config["TWEETDESK_WEB_REFRESH_SECONDS"] = 1.0  # poll fast so the live test is quick
    server = live_server_for(app)
    return Site(server.url, store, seeded)


@pytest.fixture
def site(tmp_path, live_server_for, chromium):
    s = _site(tmp_path, live_server_for, KEY)
    yield s
    s.store.close()


@pytest.fixture
def open_site(tmp_path, live_server_for, chromium):
    """No API key: the dry-run demo's configuration."""
    s = _site(tmp_path, live_server_for, None)
    yield s
    s.store.close()


def _sign_in(page, site, next_path="/"):
    page.goto(f"{site.url}/login?next={next_path}")
    page.get_by_label("API key", exact=True).fill(KEY)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def _kpi(page, name: str) -> str:
    return page.locator(f'[data-kpi="{name}"]').inner_text().strip()


def test_dashboard_shows_the_store_and_updates_live(site, browser_page):
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _sign_in(page, site)
    assert page.url == f"{site.url}/"
    counts = site.seeded["counts"]
    assert _kpi(page, "totals.tickets") == "24"
    assert _kpi(page, "totals.tweets") == "24"
    assert _kpi(page, "totals.dead_letters") == "1"
    for status in ("open", "replied", "resolved", "failed"):
        assert _kpi(page, f"status.{status}") == str(counts.get(status, 0))
    # The charts are drawn by Chart.js, with the store's figures.
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-topic')")
    topic_total = page.evaluate("() => Chart.getChart('chart-topic').data.datasets[0].data.reduce((a, b) => a + b, 0)")
    assert topic_total == 24
    status_data = page.evaluate(
        "() => { const c = Chart.getChart('chart-status'); return Object.fromEntries(c.data.labels.map((l, i) => [l, c.data.datasets[0].data[i]])); }"
    )
    assert status_data["Failed"] == counts["failed"] and status_data["Open"] == counts["open"]
    page.locator(".ticket-list > li").first.wait_for()
    assert page.locator(".ticket-list > li").count() == 10
    page.shot("dashboard")

    # A new ticket arrives: the page updates in place, without a reload.
    page.evaluate("() => { window.__noReload = true; }")
    later = site.store.clock() + timedelta(minutes=1)
    site.store.clock = lambda: later
    new = make_tweet(100, sentiment="negative", topic="Baggage Issue",
                     text="@united lost my bag again on the flight to Boston, third time this year")
    site.store.add_tickets([new], reply_text=lambda tw: f"@{tw.author} So sorry. Ticket {tw.ticket_id}")
    page.wait_for_function("() => document.querySelector('[data-kpi=\"totals.tickets\"]').textContent.trim() === '25'")
    page.wait_for_function(
        f"() => document.querySelector('.ticket-list > li')?.dataset.ticket === '{new.ticket_id}'"
    )
    assert _kpi(page, "status.open") == str(counts["open"] + 1)
    assert page.evaluate("() => window.__noReload") is True
    assert page.evaluate("() => Chart.getChart('chart-topic').data.datasets[0].data.reduce((a, b) => a + b, 0)") == 25
    assert "Live" in page.locator("#live-text").inner_text()
    page.shot("dashboard-updated")

    # Filters: only negative tickets, without a reload; the URL keeps the filter for a bookmark.
    page.get_by_label("Sentiment", exact=True).select_option("negative")
    negatives = sum(1 for t in site.seeded["tweets"] if t.sentiment == "negative") + 1
    page.wait_for_function(
        f"() => document.querySelector('[data-kpi=\"totals.tickets\"]').textContent.trim() === '{negatives}'"
    )
    assert "sentiment=negative" in page.url
    assert page.evaluate("() => window.__noReload") is True
    badges = page.locator(".ticket-list .badge[class*=sentiment-]").all_inner_texts()
    assert badges and set(badges) == {"negative"}
    page.shot("dashboard-filtered")
    assert errors == []


def test_tracking_page(open_site, browser_page):
    page = browser_page
    tw = open_site.ticket("replied")
    page.goto(f"{open_site.url}/t")
    page.get_by_label("Ticket ID", exact=True).fill(tw.ticket_id.lower().replace("-", " "))
    page.get_by_role("button", name="Track").click()
    page.wait_for_url(f"{open_site.url}/t/{tw.ticket_id}")
    assert page.locator("#ticket-status").get_attribute("data-status") == "replied"
    assert page.locator("#status-label").inner_text() == "Answered (test mode)"  # a dry-run reply
    assert page.locator("#ticket-topic").inner_text() == tw.topic
    assert tw.author not in page.content()
    page.shot("track-replied")

    # One mistyped character: the check character says so.
    c = tw.ticket_id[5]
    typo = tw.ticket_id[:5] + ALPHABET[(ALPHABET.index(c) + 1) % 32] + tw.ticket_id[6:]
    page.get_by_label("Ticket ID", exact=True).fill(typo)
    page.get_by_role("button", name="Track").click()
    alert = page.get_by_role("alert")
    assert "typo" in alert.inner_text() and "check character" in alert.inner_text()
    assert alert.get_attribute("data-kind") == "check"
    page.shot("track-typo")

    # A well-formed ID that we do not hold: not found, and not called a typo.
    unknown = ticket_id_for("7", "Online Booking", key=b"test")
    page.get_by_label("Ticket ID", exact=True).fill(unknown)
    page.get_by_role("button", name="Track").click()
    alert = page.get_by_role("alert")
    assert "No ticket with this ID" in alert.inner_text() and "typo" not in alert.inner_text()
    assert alert.get_attribute("data-kind") == "not_found"
    page.shot("track-unknown")


def test_resolve_in_agent_view(site, browser_page):
    page = browser_page
    tw = site.ticket("failed")
    _sign_in(page, site, next_path=f"/tickets/{tw.ticket_id}")
    assert page.url == f"{site.url}/tickets/{tw.ticket_id}"
    assert page.locator("#ticket-status").get_attribute("data-status") == "failed"
    assert tw.text in page.locator("#tweet-text").inner_text().replace("\n", "")
    assert page.locator("#replies .reply").count() == 1
    assert "503" in page.locator("#replies").inner_text()
    page.shot("agent-before")
    page.get_by_role("button", name="Resolve ticket").click()
    page.wait_for_load_state()
    assert "resolved" in page.get_by_role("status").first.inner_text()
    assert page.locator("#ticket-status").get_attribute("data-status") == "resolved"
    assert page.get_by_role("button", name="Resolve ticket").count() == 0
    assert site.store.get_ticket(tw.ticket_id).status.value == "resolved"
    page.shot("agent-resolved")


def test_phone_width_has_no_horizontal_scroll(site, chromium, tmp_path):
    context = chromium.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True,
                                   device_scale_factor=2)
    page = context.new_page()
    try:
        _sign_in(page, site)
        tw = site.ticket("replied")
        typo = tw.ticket_id[:-1] + ALPHABET[(ALPHABET.index(tw.ticket_id[-1]) + 1) % 32]
        pages = {
            "dashboard": "/",
            "track": f"/t/{tw.ticket_id}",
            "track-typo": f"/t/{typo}",
            "track-unknown": f"/t/{ticket_id_for('7', 'Online Booking', key=b'test')}",
            "agent": f"/tickets/{tw.ticket_id}",
            "dashboard-filtered": "/?topic=Delay+and+Customer+Service&sentiment=negative",
        }
        for name, path in pages.items():
            page.goto(site.url + path)
            if name.startswith("dashboard"):
                page.wait_for_function("() => window.Chart && Chart.getChart('chart-sentiment')")
            width = page.evaluate("() => document.documentElement.scrollWidth")
            inner = page.evaluate("() => window.innerWidth")
            page.screenshot(path=str(tmp_path / f"phone-{name}.png"), full_page=True)
            assert width <= inner, f"{path}: page is {width}px wide on a {inner}px screen"
            # Contrast and reflow at phone width too.
            assert axe_violations(page) == [], path
    finally:
        context.close()


def test_pages_pass_accessibility_checks(site, browser_page):
    """axe-core's WCAG rules (labels, landmarks, headings, contrast, ARIA) on every page."""
    page = browser_page
    tw = site.ticket("replied")
    typo = tw.ticket_id[:-1] + ALPHABET[(ALPHABET.index(tw.ticket_id[-1]) + 1) % 32]
    page.goto(f"{site.url}/login")
    assert axe_violations(page) == [], "/login"
    _sign_in(page, site)
    for path in ["/", "/?sentiment=positive", "/t", f"/t/{tw.ticket_id}", f"/t/{typo}",
                 f"/t/{ticket_id_for('7', 'Online Booking', key=b'test')}", f"/tickets/{tw.ticket_id}", f"/tickets/{typo}"]:
        page.goto(site.url + path)
        if path.startswith("/?") or path == "/":
            page.wait_for_function("() => window.Chart && Chart.getChart('chart-topic')")
            page.locator("details.data-table").first.evaluate("d => d.open = true")
        assert axe_violations(page) == [], path


def test_budget_panel_shows_queue_spend_and_flood_guard(tmp_path, live_server_for, browser_page):
    """The reply queue and budget panel (issue 7), with X credentials set (the budget's live rules):
    queued and posted replies and tweets the flood guard held back, drawn on load, refreshed live,
    and passing the accessibility checks."""
    settings = Settings(
        work_dir=tmp_path, api_key=KEY, x_api_base="http://127.0.0.1:9",  # no poster here: nothing is posted
        x_consumer_key="ck", x_consumer_secret="cs", x_access_token="at", x_access_token_secret="ats",
        flood_per_author=1,
    )
    store = TicketStore(f"sqlite:///{tmp_path / 'tickets.db'}")
    seeded = seed_store(store, n=24)  # four replies stay queued
    reply = lambda tw: f"@{tw.author} Sorry to hear that. Ticket {tw.ticket_id}"  # noqa: E731
    intake = Intake.from_settings(settings)

    def loud(i):
        return make_tweet(60 + i, text=f"@united why is nobody answering me? ({i})").model_copy(update={"author": "loud"})

    res = store.add_tickets([loud(0), loud(1), loud(2)], reply_text=reply, intake=intake)
    assert len(res.replies) == 1  # @loud's first tweet opens a ticket; the flood guard holds back two
    queued = seeded["open_replies"] + res.replies
    for rid in queued[:2]:  # X took two: $0.015 each
        store.claim(rid)
        store.record_posted(rid, f"9{rid}", cost_usd=0.015)
    app = create_app(settings, store)
    app.config["TWEETDESK_WEB_REFRESH_SECONDS"] = 1.0
    site = Site(live_server_for(app).url, store, seeded)
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _sign_in(page, site)
    panel = page.get_by_role("region", name="Reply queue and budget")
    panel.wait_for()
    assert _kpi(page, "budget.queue_length") == "3"
    assert _kpi(page, "budget.replies_this_window") == "2 / 100"
    assert _kpi(page, "budget.window_text") == "limit per 15 min"
    assert _kpi(page, "budget.spend_today") == "$0.03"
    assert _kpi(page, "budget.expected_wait") == "under 1 min"  # 3 replies at 100 per 15 min
    reason = "flood guard: @loud opened 1 tickets within 1 h (limit 1)"
    rows = panel.locator("#flood-reasons tbody tr")
    assert rows.count() == 1
    assert rows.first.locator("td").all_inner_texts() == [reason, "2"]
    page.shot("budget-panel")
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-topic')")
    assert axe_violations(page) == []

    # X takes another; @loud tweets again: the panel follows without a reload.
    page.evaluate("() => { window.__noReload = true; }")
    store.claim(queued[2])
    store.record_posted(queued[2], f"9{queued[2]}", cost_usd=0.015)
    assert store.add_tickets([loud(3)], reply_text=reply, intake=intake).replies == []
    page.wait_for_function("() => document.querySelector('[data-kpi=\"budget.queue_length\"]').textContent.trim() === '2'")
    page.wait_for_function(
        "() => document.querySelector('#flood-reasons tbody td.num')?.textContent.trim() === '3'"
    )
    assert _kpi(page, "budget.spend_today") == "$0.045"
    assert _kpi(page, "budget.replies_this_window") == "3 / 100"
    assert rows.first.locator("td").all_inner_texts() == [reason, "3"]
    assert page.evaluate("() => window.__noReload") is True
    page.shot("budget-panel-updated")
    assert axe_violations(page) == []
    assert errors == []
    store.close()


def test_dashboard_under_the_reply_service(tmp_path, browser_page):
    """As in ``tweetdesk serve`` / the demo: waitress, the dry-run poster, no API key. A ticket that
    arrives with a queued reply shows up, then turns "replied" when the poster records the reply."""
    from tweetdesk.serve import ReplyService

    settings = Settings(work_dir=tmp_path, api_key=None)
    store = TicketStore(settings.store.db_url)
    seeded = seed_store(store, n=8)
    svc = ReplyService(settings, store=store, consume=False, port=0)
    svc.app.config["TWEETDESK_WEB_REFRESH_SECONDS"] = 1.0
    with svc:
        page = browser_page
        page.goto(svc.url + "/")
        # The poster settles the seed's queued replies (dry run) as soon as it runs.
        replied = seeded["counts"].get("replied", 0) + seeded["counts"].get("open", 0)
        page.wait_for_function(
            f"() => document.querySelector('[data-kpi=\"status.replied\"]').textContent.trim() === '{replied}'"
        )
        new = make_tweet(200, sentiment="negative", topic="Delay and Customer Service",
                         text="@united flight UA 88 delayed 4 hours at SFO, no updates at all")
        store.add_tickets([new], reply_text=lambda tw: f"@{tw.author} We are sorry about the wait. Ticket {tw.ticket_id}")
        svc.poster.wake()
        page.wait_for_function("() => document.querySelector('[data-kpi=\"totals.tickets\"]').textContent.trim() === '9'")
        page.wait_for_function(
            f"() => document.querySelector('[data-kpi=\"status.replied\"]').textContent.trim() === '{replied + 1}'"
        )
        first = page.locator(".ticket-list > li").first
        assert first.get_attribute("data-ticket") == new.ticket_id
        first.locator(".reply").wait_for()
        assert "dry run" in first.locator(".reply-label").inner_text().lower()
        page.shot("service-dashboard")
        # Links go to the public page (no agent view without a key), which shows the new status.
        first.get_by_role("link", name=new.ticket_id).click()
        page.wait_for_url(f"{svc.url}/t/{new.ticket_id}")
        assert page.locator("#ticket-status").get_attribute("data-status") == "replied"
    store.close()


def test_pages_run_under_the_content_security_policy(site, browser_page):
    """No inline script or style is left for the CSP to block: the charts draw, the page refreshes live, and
    chromium reports no violation on any page (and the pages refuse to be framed)."""
    page = browser_page
    page.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation', "
        "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber));"
    )
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    _sign_in(page, site)
    tw = site.ticket("replied")
    for path in ["/", "/?sentiment=negative", f"/tickets/{tw.ticket_id}", f"/t/{tw.ticket_id}", "/t", "/login"]:
        resp = page.goto(site.url + path)
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
        if path.startswith("/?") or path == "/":
            page.wait_for_function("() => window.Chart && Chart.getChart('chart-topic')")
            page.wait_for_timeout(1500)  # one live refresh (every 1 s here)
        assert page.evaluate("() => window.__csp") == [], path
    assert console == []


@pytest.mark.parametrize("width", [1366, 390])
def test_dashboard_figures_do_not_break_mid_number_and_newest_shows_tweet_times(site, chromium, width):
    """The first hour (issue 28, item 7): "Reads this month" stays one number on one line, and the newest
    tickets, opened together by a replay, show each tweet's own time and say they are of every topic."""
    ctx = chromium.new_context(viewport={"width": width, "height": 900}, locale="en-GB", timezone_id="UTC")
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    try:
        _sign_in(page, site)
        for kpi in ("budget.reads_month", "budget.replies_this_window", "totals.tickets"):
            lines = page.evaluate(
                """name => { const el = document.querySelector(`[data-kpi="${name}"]`);
                   const r = document.createRange(); r.selectNodeContents(el);
                   return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }""", kpi)
            assert lines == 1, (kpi, width, _kpi(page, kpi))
        assert _kpi(page, "budget.reads_month") == "0"
        assert "3,000,000" in _kpi(page, "budget.reads_cap_text")
        assert "of every topic" in page.locator("#newest-h").inner_text()
        items = page.locator("#newest .ticket-list > li")
        assert items.count() == 10
        # All 24 tickets were opened by one add_tickets call; their tweets were 7 minutes apart.
        times = {items.nth(i).locator(".when time").get_attribute("datetime") for i in range(10)}
        assert len(times) == 10
        assert all(t.startswith("2026-11-25T") for t in times)
        assert "tweeted" in items.first.inner_text()
        # Item 10: the reply shown says how sure the model was of the reading it was chosen for.
        assert "(0.90)" in items.first.locator(".reply-label").inner_text()
    finally:
        ctx.close()


def test_tracking_page_says_only_what_is_true(open_site, browser_page, tmp_path):
    """Item 9: a listening-only ticket does not promise a reply, and a dry-run reply is not called posted."""
    page = browser_page
    quiet = make_tweet(90, text="united lost my bag again, typical")
    open_site.store.add_tickets([quiet], intake=Intake.from_settings(Settings(work_dir=tmp_path)))
    page.goto(f"{open_site.url}/t/{quiet.ticket_id}")
    explanation = page.locator("#status-explanation").inner_text()
    assert "on its way" not in explanation and "did not mention our account" in explanation
    assert "pending" not in page.locator("#reply-step").inner_text()
    assert "No reply on X" in page.locator("#reply-step").inner_text()

    tw = open_site.ticket("replied")  # seed_store records its reply as a dry run
    page.goto(f"{open_site.url}/t/{tw.ticket_id}")
    assert page.locator("#status-label").inner_text() == "Answered (test mode)"
    assert "We replied to you on X" not in page.content()
    assert "not posted" in page.locator("#status-explanation").inner_text()
    assert "Replied on X" not in page.locator("#reply-step").inner_text()
    assert axe_violations(page) == []
