"""The agents' desk in a real browser (Debian's chromium, headless, Playwright) against the real app and a
SQLite store: sign-in per role, take and assign, the collision 409, an overdue timer, a canned reply sent
through the reply rules, a note, a correction, a viewer who can change nothing; axe-core on every page."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from tests.fixtures.browser import axe_violations, make_tweet
from tweetdesk.app import create_app
from tweetdesk.config import Settings
from tweetdesk.desk.core import Desk
from tweetdesk.tickets.intake import Intake
from tweetdesk.tickets.store import TicketStore

pytestmark = pytest.mark.browser

KEY = "browser-desk-test-key-long-enough-for-the-rules"
ROLES = {"ada": "admin", "ann": "agent", "bob": "agent", "vic": "viewer"}


class Desk_Site:
    def __init__(self, url, store, desk, passwords, tickets):
        self.url, self.store, self.desk, self.passwords, self.tickets = url, store, desk, passwords, tickets


@pytest.fixture(scope="module")
def desk_db(tmp_path_factory):
    """The desk's SQLite store, made once per module and copied for each test: three tickets and four agents who
    have chosen their own passwords (16 argon2id hashes and checks at ~0.13 s each: 2 s a test otherwise)."""
    work = tmp_path_factory.mktemp("desk-db")
    settings = Settings(work_dir=work, api_key=KEY, auth_free_failures=3)
    store = TicketStore(f"sqlite:///{work / 'tickets.db'}")
    intake = Intake.from_settings(settings)
    now = store.clock()
    # An urgent ticket opened two hours ago and never answered (overdue), a fresh one, a listening-only one.
    store.clock = lambda: now - timedelta(hours=2)
    old = make_tweet(1, sentiment="negative", topic="Baggage Issue", text="@united my bag never arrived in Denver, flight UA 1234. Where is it?")
    store.add_tickets([old], intake=intake)
    store.clock = lambda: now
    fresh = make_tweet(2, sentiment="neutral", topic="Online Booking", text="@united is the app down? cannot check in")
    quiet = make_tweet(3, sentiment="negative", topic="Baggage Issue", text="united lost my bag again, typical")
    store.add_tickets([fresh, quiet], intake=intake)
    store.clock = type(store).__init__.__kwdefaults__["clock"]  # the real clock again
    desk = Desk(store, settings)
    passwords = {}
    for n, r in ROLES.items():  # each agent has chosen their own password (one-time ones must be changed first)
        once = desk.accounts.add(n, r, actor="setup")[1]
        passwords[n] = f"quiet-river-stone-{r}-7"
        desk.accounts.change_password(desk.accounts.authenticate(n, once), once, passwords[n], passwords[n])
    store.close()  # the last connection closed: SQLite folds its WAL into the file
    return work, passwords, {"old": old.ticket_id, "fresh": fresh.ticket_id, "quiet": quiet.ticket_id}


@pytest.fixture
def desk_site(tmp_path, desk_db, live_server_for, chromium):
    work, passwords, ticket_ids = desk_db
    for f in work.glob("tickets.db*"):
        shutil.copy(f, tmp_path / f.name)
    settings = Settings(work_dir=tmp_path, api_key=KEY, auth_free_failures=3)
    store = TicketStore(f"sqlite:///{tmp_path / 'tickets.db'}")
    desk = Desk(store, settings)
    app = create_app(settings, store)
    app.config["TWEETDESK_DESK_POLL_SECONDS"] = 0.5  # poll fast so the presence test is quick
    site = Desk_Site(live_server_for(app).url, store, desk, dict(passwords), ticket_ids)
    yield site
    store.close()


def _sign_in(page, site, name, next_path="/inbox", password=None):
    page.goto(f"{site.url}/login?next={next_path}")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(password or site.passwords[name])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def _new_page(chromium):
    ctx = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB", timezone_id="UTC")
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    return ctx, page


def test_sign_in_per_role_and_pages_pass_axe(desk_site, browser_page):
    page = browser_page
    # Unknown user and wrong password: the same answer, no account named; then throttled like keys.
    _sign_in(page, desk_site, "nobody", password="guess")
    assert "do not match an active account" in page.get_by_role("alert").inner_text()
    assert axe_violations(page) == []
    for _ in range(3):  # 3 free failures, the fourth makes the address wait
        _sign_in(page, desk_site, "ann", password="guess")
    resp = page.goto(f"{desk_site.url}/login")
    page.get_by_label("Name", exact=True).fill("ann")
    page.get_by_label("Password", exact=True).fill(desk_site.passwords["ann"])
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as got:
        page.get_by_role("button", name="Sign in").click()
    assert got.value.status == 429  # even the right password waits its turn after 3 wrong ones
    assert resp.status == 200
    page.wait_for_timeout(1100)  # the first wait is 1 s

    for name, role in ROLES.items():
        ctx, p = _new_page(page.context.browser)
        try:
            _sign_in(p, desk_site, name)
            assert p.url == f"{desk_site.url}/inbox", name
            assert f"Signed in as {name} ({role})" in p.get_by_role("status").first.inner_text()
            assert p.locator(".inbox-list > li").count() == 3
            assert (p.get_by_role("link", name="Users").count() == 1) == (role == "admin")
            pages = ["/inbox", f"/tickets/{desk_site.tickets['old']}", "/canned", "/report", "/"]
            pages += ["/users"] if role == "admin" else []
            for path in pages:
                p.goto(desk_site.url + path)
                if path == "/":
                    p.wait_for_function("() => window.Chart && Chart.getChart('chart-topic')")
                    # The dashboard's first-response panel (today, UTC: the overdue ticket may be yesterday's).
                    assert p.locator('[data-kpi="desk.tickets"]').inner_text() in ("2", "3")
                    assert p.locator('[data-kpi="desk.breaches"]').inner_text().isdigit()
                assert axe_violations(p) == [], (name, path)
            if role != "admin":
                assert p.goto(desk_site.url + "/users").status == 403
            p.shot = None
        finally:
            ctx.close()


def test_take_assign_note_and_correction(desk_site, browser_page):
    page = browser_page
    old = desk_site.tickets["old"]
    _sign_in(page, desk_site, "ann")
    # Most urgent first: the overdue urgent ticket heads the inbox.
    first = page.locator(".inbox-list > li").first
    assert first.get_attribute("data-ticket") == old
    first.get_by_role("button", name=f"Take {old}").click()
    page.wait_for_load_state()
    assert f"You took {old}" in page.get_by_role("status").first.inner_text()
    page.goto(f"{desk_site.url}/inbox?assignee=me")
    assert [li.get_attribute("data-ticket") for li in page.locator(".inbox-list > li").all()] == [old]

    page.goto(f"{desk_site.url}/tickets/{old}")
    assert page.locator("#assignee").inner_text() == "ann"
    page.get_by_label("Assign to").select_option("bob")
    page.get_by_role("button", name="Assign", exact=True).click()
    page.wait_for_load_state()
    assert page.locator("#assignee").inner_text() == "bob"
    page.get_by_label("New note (never posted)").fill("Bag located at DEN, courier booked")
    page.get_by_role("button", name="Add note").click()
    page.wait_for_load_state()
    assert "Bag located at DEN" in page.locator("#notes").inner_text()
    page.get_by_label("Right topic").select_option("Reservation Issue")
    page.get_by_label("Right sentiment").select_option("neutral")
    page.get_by_role("button", name="Save correction").click()
    page.wait_for_load_state()
    assert "Correction saved" in page.get_by_role("status").first.inner_text()
    # Each line's first span is what happened; its second holds the time, left out here (any date, any day).
    history = page.locator("#history li > span:first-child").all_inner_texts()
    assert [h.strip() for h in history] == [
        "ann assigned the ticket to ann", "ann assigned the ticket to bob (was ann)", "ann added a note",
        "ann corrected topic Baggage Issue → Reservation Issue, sentiment negative → neutral"]
    page.shot("desk-ticket")
    assert axe_violations(page) == []
    t = desk_site.store.get_ticket(old)
    assert (t.topic, t.sentiment) == ("Reservation Issue", "neutral")
    (c,) = desk_site.desk.corrections()
    assert c["by"] == "ann" and c["model_topic"] == "Baggage Issue"
    # The note is never posted: the only reply of the ticket is the automatic one.
    assert all("courier" not in r.text for r in desk_site.store.replies_for(old))


def test_collision_shows_who_else_and_refuses_a_stale_resolve(desk_site, browser_page, chromium):
    ann = browser_page
    fresh = desk_site.tickets["fresh"]
    _sign_in(ann, desk_site, "ann", next_path=f"/tickets/{fresh}")
    ctx, bob = _new_page(chromium)
    try:
        _sign_in(bob, desk_site, "bob", next_path=f"/tickets/{fresh}")
        assert "Also open by ann" in bob.locator("#presence").inner_text()  # ann's page has polled already
        ann.wait_for_function("() => document.querySelector('#presence-others').textContent.includes('bob')")
        bob.get_by_role("button", name="Resolve ticket").click()
        bob.wait_for_load_state()
        assert bob.locator("#ticket-status").get_attribute("data-status") == "resolved"
        # ann's page learns of it by polling, and her resolve from the stale page is refused with what changed.
        ann.wait_for_function("() => document.querySelector('#presence-changed').textContent.includes('bob resolved')")
        with ann.expect_response(lambda r: r.request.method == "POST") as got:
            ann.get_by_role("button", name="Resolve ticket").click()
        assert got.value.status == 409
        alert = ann.locator("#stale")
        assert "changed since you opened it" in alert.inner_text() and "bob resolved the ticket" in alert.inner_text()
        ann.shot("desk-collision")
        assert axe_violations(ann) == []
        audit = desk_site.desk.audit(fresh)
        assert [(e["actor"], e["action"]) for e in audit] == [("bob", "resolved")]  # nothing applied for ann
    finally:
        ctx.close()


def test_overdue_timer(desk_site, browser_page):
    page = browser_page
    _sign_in(page, desk_site, "vic")
    row = page.locator(f'.inbox-list > li[data-ticket="{desk_site.tickets["old"]}"]')
    timer = row.locator(".timer")
    assert "overdue" in timer.get_attribute("class") and timer.inner_text().startswith("overdue by 1")
    assert "is-overdue" in (row.get_attribute("class") or "") or "overdue-row" in (row.get_attribute("class") or "")
    fresh = page.locator(f'.inbox-list > li[data-ticket="{desk_site.tickets["fresh"]}"] .timer')
    assert fresh.inner_text().startswith("due in") and "overdue" not in fresh.get_attribute("class")
    # The countdown runs in the page: the text is rewritten from the due time every second.
    page.evaluate("() => { const t = document.querySelector('[data-due]'); t.textContent = 'x'; }")
    page.wait_for_function("() => document.querySelector('[data-due]').textContent !== 'x'")
    page.shot("desk-inbox")
    assert axe_violations(page) == []


def test_timers_follow_the_services_clock_not_the_agents_computer(desk_site, browser_page):
    """An agent's computer three hours ahead (or a test that moves the service's clock) still counts down from the
    service's time: a fresh ticket is "due in", the old one overdue."""
    import datetime as dt

    page = browser_page
    page.clock.install(time=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=3))
    _sign_in(page, desk_site, "vic")
    fresh = page.locator(f'.inbox-list > li[data-ticket="{desk_site.tickets["fresh"]}"] .timer')
    page.clock.run_for(2000)  # a tick of the page's countdown
    assert fresh.inner_text().startswith("due in") and "overdue" not in fresh.get_attribute("class")
    old = page.locator(f'.inbox-list > li[data-ticket="{desk_site.tickets["old"]}"] .timer')
    assert old.inner_text().startswith("overdue by 1")


def test_canned_reply_is_checked_then_sent_through_the_reply_rules(desk_site, browser_page):
    page = browser_page
    old, quiet = desk_site.tickets["old"], desk_site.tickets["quiet"]
    _sign_in(page, desk_site, "ada", next_path="/canned")
    page.get_by_label("Title").fill("Bag traced")
    page.get_by_label("Topic").select_option("Baggage Issue")
    page.get_by_label("Text").fill("{mention} more at united.com/bags {ticket_id}")
    page.get_by_role("button", name="Save canned reply").click()
    assert "breaks a reply rule" in page.get_by_role("alert").inner_text()
    assert desk_site.desk.canned.list() == []
    page.get_by_label("Text").fill("{mention} we traced your bag: it reaches you today. Ticket {ticket_id}")
    page.get_by_role("button", name="Save canned reply").click()
    page.wait_for_load_state()
    assert page.locator("tr[data-canned]").count() == 1
    assert axe_violations(page) == []

    page.goto(f"{desk_site.url}/tickets/{old}")
    page.get_by_role("button", name="Use “Bag traced”").click()
    box = page.get_by_label("Reply", exact=True)
    assert box.input_value() == f"@customer1 we traced your bag: it reaches you today. Ticket {old}"
    box.fill(box.input_value().replace("today", "by 6 pm"))
    page.get_by_role("button", name="Send reply").click()
    page.wait_for_load_state()
    assert "Reply queued" in page.get_by_role("status").first.inner_text()
    manual = [r for r in desk_site.store.replies_for(old) if r.kind.value == "manual"]
    assert [r.text for r in manual] == [f"@customer1 we traced your bag: it reaches you by 6 pm. Ticket {old}"]
    assert "queued a reply" in page.locator("#history").inner_text()
    # The listening-only ticket: X refuses replies to it; the page says why instead of offering a reply box.
    page.goto(f"{desk_site.url}/tickets/{quiet}")
    assert "listening only" in page.locator("#reply-blocked").inner_text()
    assert page.get_by_role("button", name="Send reply").count() == 0
    assert page.get_by_role("button", name="Use “Bag traced”").count() == 0
    assert desk_site.store.replies_for(quiet) == []
    page.shot("desk-canned-refused")


def test_a_refused_reply_keeps_its_text_and_shows_why_in_view(desk_site, browser_page):
    """The first hour (issue 28, item 8): a reply X's rules refuse comes back with the reason on screen, beside
    the reply box, and the typed text still in it."""
    page = browser_page
    fresh = desk_site.tickets["fresh"]
    _sign_in(page, desk_site, "ann", next_path=f"/tickets/{fresh}")
    typed = f"@customer2 the app is back, see https://united.example/status. Ticket {fresh}"
    page.get_by_label("Reply", exact=True).fill(typed)
    page.get_by_role("button", name="Send reply").click()
    page.wait_for_load_state()
    error = page.locator("#reply-error")
    assert error.get_attribute("role") == "alert" and "Reply not sent" in error.inner_text()
    assert page.evaluate(
        """() => { const r = document.getElementById("reply-error").getBoundingClientRect();
           return r.top >= 0 && r.bottom <= window.innerHeight; }""")
    assert page.get_by_label("Reply", exact=True).input_value() == typed
    assert [r for r in desk_site.store.replies_for(fresh) if r.kind.value == "manual"] == []
    assert axe_violations(page) == []
    page.shot("desk-reply-refused")
    # Fixed and sent again from the same box: queued.
    page.get_by_label("Reply", exact=True).fill(f"@customer2 the app is back now. Ticket {fresh}")
    page.get_by_role("button", name="Send reply").click()
    page.wait_for_load_state()
    assert "Reply queued" in page.get_by_role("status").first.inner_text()


def test_a_viewer_cannot_change_anything(desk_site, browser_page):
    page = browser_page
    old = desk_site.tickets["old"]
    _sign_in(page, desk_site, "vic", next_path=f"/tickets/{old}")
    assert page.locator("#tweet-text").count() == 1
    for name in ("Resolve ticket", "Take", "Assign", "Send reply", "Add note", "Save correction"):
        assert page.get_by_role("button", name=name, exact=True).count() == 0, name
    page.goto(f"{desk_site.url}/inbox")
    assert page.get_by_role("button", name="Take").count() == 0
    page.goto(f"{desk_site.url}/canned")
    assert page.get_by_role("button", name="Save canned reply").count() == 0
    # Posting anyway (with a valid form token) is refused.
    page.goto(f"{desk_site.url}/tickets/{old}")
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    for action in ("resolve", "take", "notes", "correct", "reply", "assign"):
        status = page.evaluate(
            """async ([url, token]) => (await fetch(url, {method: 'POST', body: new URLSearchParams(
                {csrf_token: token, text: 'hello', topic: 'Extra Charges', assignee: 'ann'})})).status""",
            [f"{desk_site.url}/tickets/{old}/{action}", token],
        )
        assert status == 403, action
    assert desk_site.desk.audit(old) == [] and desk_site.store.get_ticket(old).status.value == "open"


def test_desk_pages_fit_a_phone(desk_site, chromium):
    ctx = chromium.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True,
                               device_scale_factor=2)
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    try:
        _sign_in(page, desk_site, "ada")
        for path in ["/inbox", f"/tickets/{desk_site.tickets['old']}", "/canned", "/report", "/users"]:
            page.goto(desk_site.url + path)
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= page.evaluate("() => window.innerWidth"), f"{path}: {width}px wide"
            assert axe_violations(page) == [], path
    finally:
        ctx.close()


def test_an_agent_changes_her_own_password(desk_site, browser_page):
    page = browser_page
    old = desk_site.passwords["bob"]
    new = "correct horse battery staple"
    _sign_in(page, desk_site, "bob")
    page.get_by_role("link", name="Password").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Change your password").is_visible()
    assert axe_violations(page) == []
    # A short one is refused with the reason, nothing changed.
    page.get_by_label("Current password").fill(old)
    page.get_by_label("New password", exact=True).fill("bob12345678x")
    page.get_by_label("New password again").fill("bob12345678x")
    page.get_by_role("button", name="Change password").click()
    page.wait_for_load_state()
    assert "at least 12 characters" in page.get_by_role("alert").first.inner_text()
    page.get_by_label("Current password").fill(old)
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("New password again").fill(new)
    page.get_by_role("button", name="Change password").click()
    page.wait_for_load_state()
    assert "Password changed" in page.get_by_role("status").first.inner_text()
    assert page.goto(f"{desk_site.url}/inbox").status == 200  # this session goes on
    assert [e["action"] for e in desk_site.desk.audit() if e["actor"] == "bob"][-1] == "password_changed"
    ctx, other = _new_page(page.context.browser)
    try:
        _sign_in(other, desk_site, "bob", password=old)
        assert "do not match an active account" in other.get_by_role("alert").inner_text()
        _sign_in(other, desk_site, "bob", password=new)
        assert other.url == f"{desk_site.url}/inbox"
    finally:
        ctx.close()


def test_a_one_time_password_must_be_changed_at_first_sign_in(desk_site, browser_page):
    page = browser_page
    once = desk_site.desk.accounts.reset("ann", actor="ada")
    _sign_in(page, desk_site, "ann", password=once)
    assert page.url == f"{desk_site.url}/password"
    assert "one-time password" in page.locator("#one-time").inner_text()
    assert axe_violations(page) == []
    page.goto(f"{desk_site.url}/tickets/{desk_site.tickets['old']}")
    assert page.url == f"{desk_site.url}/password"  # nothing else until it is changed
    page.get_by_label("Current password").fill(once)
    page.get_by_label("New password", exact=True).fill("my own long passphrase")
    page.get_by_label("New password again").fill("my own long passphrase")
    page.get_by_role("button", name="Change password").click()
    page.wait_for_load_state()
    assert page.locator("#one-time").count() == 0
    assert page.goto(f"{desk_site.url}/inbox").status == 200 and page.url == f"{desk_site.url}/inbox"
