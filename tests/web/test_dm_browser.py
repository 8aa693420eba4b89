"""Direct messages in a real browser (issue 29): the ticket's timeline marks public tweets and DMs, the agent
chooses "reply publicly" or "reply by DM" and the DM is queued with the privacy link; the customer's tracking
page and the dashboard never show a DM's text. axe-core on the pages."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fixtures.browser import axe_violations, make_tweet
from tweetdesk.app import create_app
from tweetdesk.config import Settings
from tweetdesk.tickets.intake import Intake
from tweetdesk.tickets.store import TicketStore

pytestmark = pytest.mark.browser

KEY = "browser-dm-test-key-long-enough-for-the-rules"
PRIVACY = "https://example.com/privacy"
SECRET = "my confirmation code is QX7RT2"


@pytest.fixture
def site(tmp_path, live_server_for):
    settings = Settings(work_dir=tmp_path, api_key=KEY, privacy_policy_url=PRIVACY)
    store = TicketStore(f"sqlite:///{tmp_path / 'tickets.db'}")
    public = make_tweet(1, sentiment="negative", topic="Reservation Issue",
                        text="@united my reservation vanished from the app").model_copy(update={"author_id": "4242"})
    dm = public.model_copy(update={
        "id": "1700000000000000001", "text": SECRET, "channel": "dm", "dm_conversation_id": "4242-1",
        "source": "dms", "created_at": public.created_at + timedelta(minutes=5), "mentions": [], "entities": []})
    intake = Intake.from_settings(settings)
    store.add_tickets([public], lambda t: f"@{t.author} sorry, please send us a DM with your code and {t.ticket_id}",
                      intake=intake)
    store.add_tickets([dm], intake=intake)
    app = create_app(settings, store)
    yield live_server_for(app).url, store, public.ticket_id
    store.close()


def test_mixed_timeline_and_reply_by_dm(site, browser_page):
    url, store, ticket = site
    page = browser_page
    page.goto(f"{url}/login?next=/tickets/{ticket}")
    page.locator("#api-key").fill(KEY)
    page.locator("#api-key").press("Enter")
    page.wait_for_url(f"**/tickets/{ticket}")
    # The timeline: the public tweet, our reply and the customer's DM, each marked.
    conv = page.locator("#conversation")
    assert conv.locator("li.conv-customer").count() == 2
    dm_item = conv.locator("li.conv-customer", has_text="QX7RT2")
    assert dm_item.locator(".badge.private").count() == 1
    assert conv.locator("li.conv-customer", has_text="vanished").locator(".badge.public").count() == 1
    assert page.locator("#dmed").is_visible()  # the customer took up the invitation
    # The choice: public by default on a public ticket; the agent picks DM.
    assert page.locator("#channel-public").is_checked() and page.locator("#channel-dm").is_enabled()
    assert axe_violations(page) == []
    page.locator("#channel-dm").check()
    page.locator("#reply-text").fill("Thanks, your booking is restored.")
    page.get_by_role("button", name="Send reply").click()
    page.wait_for_load_state()
    (dm_reply,) = [r for r in store.replies_for(ticket) if r.channel == "dm"]
    assert dm_reply.to_user_id == "4242" and dm_reply.text.endswith(f"Privacy: {PRIVACY}")
    assert page.locator("#conversation li", has_text="booking is restored").locator(".badge.private").count() == 1
    # The customer's tracking page and the dashboard show no DM text.
    page.goto(f"{url}/t/{ticket}")
    body = page.locator("body").inner_text()
    assert "QX7RT2" not in body and "restored" not in body
    assert axe_violations(page) == []


def test_a_ticket_opened_by_dm_is_private_on_the_dashboard(tmp_path, live_server_for, browser_page):
    settings = Settings(work_dir=tmp_path, privacy_policy_url=PRIVACY)  # no API key: the dashboard is open
    store = TicketStore(f"sqlite:///{tmp_path / 'tickets.db'}")
    dm = make_tweet(2, text=SECRET).model_copy(update={
        "author_id": "4343", "channel": "dm", "dm_conversation_id": "4343-1", "source": "dms", "mentions": []})
    store.add_tickets([dm], intake=Intake.from_settings(settings))
    url = live_server_for(create_app(settings, store)).url
    page = browser_page
    page.goto(f"{url}/")
    newest = page.locator("#newest")
    assert dm.ticket_id in newest.inner_text() and "direct message" in newest.inner_text()
    assert "QX7RT2" not in page.locator("body").inner_text()
    store.close()
