"""The playground (``GET /``) in a real browser: Debian's Chromium driven by Playwright, against
``neo serve``'s app on loopback HTTP with a trained bundle (issue 27).

Each test signs in, asks through the page and checks what a person sees: item cards with real
catalog titles of the requested type, text that grows while it streams, follow-ups and steering,
errors in words, and a page that asks nothing of another origin and logs no console error. A
screenshot of each state is saved under the test's temporary folder (``NEO_SCREENSHOTS=DIR`` saves
them there instead).

Chromium is found as ``$NEO_CHROMIUM`` or ``chromium`` on the PATH; without it the tests skip,
unless ``NEO_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from neo_sdk.server import ApiKeys, Limits, ServerConfig
from neo_sdk.session import Neo
from tests._serving import serving_bundle

KEY = "sk-playground-1234"
CHROMIUM = os.environ.get("NEO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("NEO_REQUIRE_BROWSER") == "1":
    raise RuntimeError("NEO_REQUIRE_BROWSER=1 but no Chromium: apt-get install chromium (or set NEO_CHROMIUM)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install chromium)")
# what a closed network needs (no background fetches to the browser vendor), as root in a container
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-quic"]
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def served(trained_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Neo, str]]:
    config = ServerConfig(keys=ApiKeys({"playground": KEY}), limits=Limits(max_tokens=64))
    with serving_bundle(trained_bundle, tmp_path_factory.mktemp("pg"), config, max_new_tokens=24) as both:
        yield both


@pytest.fixture(scope="module")
def neo(served: tuple[Neo, str]) -> Neo:
    return served[0]


@pytest.fixture(scope="module")
def base_url(served: tuple[Neo, str]) -> str:
    return served[1]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def user(neo: Neo) -> str:
    return max(neo.catalog.histories().items(), key=lambda kv: (len(kv[1]), kv[0]))[0]


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ["NEO_SCREENSHOTS"]) if os.environ.get("NEO_SCREENSHOTS") else tmp_path_factory.mktemp("shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Watched:
    """A page, with every request it made and every console error and page error it logged."""

    def __init__(self, page: Any) -> None:
        self.page, self.requests, self.errors = page, [], []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def foreign(self, base_url: str) -> list[str]:
        return [u for u in self.requests if not u.startswith(base_url + "/")]


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watched = Watched(context.new_page())
    watched.page.set_default_timeout(WAIT_MS)
    watched.page.goto(base_url + "/")
    yield watched
    context.close()


def sign_in(page: Any, key: str = KEY) -> None:
    page.fill("#key", key)
    page.press("#key", "Enter")  # by keyboard: the form submits


def signed_in(page: Any) -> None:
    sign_in(page)
    page.wait_for_selector("#signout:visible")
    page.wait_for_selector("#s-type option:nth-child(2)", state="attached")


def choose_user(page: Any, user: str) -> None:
    page.fill("#user", user)
    page.press("#user", "Enter")
    page.wait_for_selector("#history .card")


def ask(page: Any, text: str) -> Any:
    """Send ``text`` from the composer (Enter) and wait for its answer; the answer's element."""
    done = page.locator(".msg.assistant.done, .msg.assistant.failed")
    before = done.count()
    page.fill("#text", text)
    page.press("#text", "Enter")
    done.nth(before).wait_for()  # (selectors, not wait_for_function: the page's policy forbids eval)
    message = page.locator(".msg.assistant").last
    assert "failed" not in (message.get_attribute("class") or ""), message.inner_text()
    return message


def card_items(message: Any) -> list[dict[str, str]]:
    return message.locator(".card.answer").evaluate_all(
        "cards => cards.map(c => ({id: c.dataset.itemId, type: c.dataset.type,"
        " title: c.querySelector('.title').textContent.replace(/^\\d+\\./, '').trim()}))")


def assert_clean(page: Watched, base_url: str) -> None:
    assert page.foreign(base_url) == [], "the page asked another origin"
    assert page.errors == [], page.errors


# ----------------------------------------------------------------------------- the tests
def test_the_page_is_served_with_a_policy_that_allows_no_other_origin(base_url: str) -> None:
    import httpx

    response = httpx.get(base_url + "/")
    policy = response.headers["content-security-policy"]
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
    assert httpx.get(base_url + "/playground/playground.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(base_url + "/playground/../_app.py").status_code == 404
    assert "/" not in httpx.get(base_url + "/openapi.json").json()["paths"]  # the page is not part of the API


def test_a_wrong_key_shows_the_401_message(page: Watched, base_url: str, shots: Path) -> None:
    sign_in(page.page, "sk-not-a-key-0000")
    notice = page.page.wait_for_selector("#notice:visible")
    assert "API key was not accepted" in notice.inner_text()
    assert page.page.is_visible("#signin") and not page.page.is_visible("#signout")
    page.page.screenshot(path=str(shots / "401.png"))
    assert page.foreign(base_url) == []
    # the browser reports the refused request itself; nothing else may be logged
    assert all("401" in e for e in page.errors), page.errors


def test_a_catalog_user_gets_cards_of_real_items_of_the_requested_type(page: Watched, base_url: str, neo: Neo,
                                                                       user: str, shots: Path) -> None:
    signed_in(page.page)
    choose_user(page.page, user)
    history = page.page.locator("#history .card").evaluate_all("cs => cs.map(c => c.dataset.itemId)")
    assert history == [i.id for i in neo.recent(user, 8)]
    message = ask(page.page, "top 3 books for me")
    cards = card_items(message)
    assert len(cards) == 3
    for shown in cards:
        assert neo.catalog.get(shown["id"]).title == shown["title"] and shown["type"] == "book"
    page.page.wait_for_selector(".msg.assistant.done .card.enriched")
    category = neo.card(cards[0]["id"]).categories
    assert message.locator(".card.answer").first.locator(".cats").inner_text() == ", ".join(category)
    message.locator(".why summary").click()
    why = message.locator(".why").inner_text()
    assert "next_item" in why and "book" in why and "prompt" in why
    page.page.screenshot(path=str(shots / "user-answer.png"), full_page=True)
    assert_clean(page, base_url)


def test_streamed_text_grows_before_the_answer_ends(page: Watched, base_url: str, user: str, shots: Path) -> None:
    signed_in(page.page)
    choose_user(page.page, user)
    # the test watches the page's own DOM: the latest answer's text length at every change, and when it ended
    page.page.evaluate("""() => {
      window.seen = [];
      new MutationObserver(() => {
        const m = [...document.querySelectorAll('.msg.assistant')].pop();
        if (m) window.seen.push([m.querySelector('.text').textContent.length, m.classList.contains('done')]);
      }).observe(document.querySelector('#log'), {subtree: true, childList: true, characterData: true,
                                                  attributes: true});
    }""")
    message = ask(page.page, "books like this, explain why")  # mixed: the item, then its checked explanation
    assert message.locator(".card.answer").count() == 1
    seen = page.page.evaluate("window.seen")
    growing = sorted({length for length, done in seen if not done and length > 0})
    assert len(growing) >= 2, seen  # text showed, then more text, before the answer was done
    page.page.screenshot(path=str(shots / "streamed-text.png"), full_page=True)
    assert_clean(page, base_url)


def test_a_follow_up_and_a_steering_change(page: Watched, base_url: str, neo: Neo, shots: Path) -> None:
    user = min(neo.catalog.histories().items(), key=lambda kv: (len(kv[1]), kv[0]))[0]  # most books left to offer
    signed_in(page.page)
    choose_user(page.page, user)
    first = card_items(ask(page.page, "top 2 books for me"))
    assert len(first) == 2
    follow = ask(page.page, "more like the second one")
    follow.locator(".why summary").click()
    assert neo.catalog.get(first[1]["id"]).title in follow.locator(".why").inner_text()  # focus: the second one
    assert follow.get_attribute("data-task") == "like_this"
    assert not {c["id"] for c in card_items(follow)} & {c["id"] for c in first}
    page.page.screenshot(path=str(shots / "follow-up.png"), full_page=True)

    words = ask(page.page, "now authors instead")  # steering by words...
    assert words.get_attribute("data-entity-type") == "author"
    assert {c["type"] for c in card_items(words)} == {"author"}
    page.page.click("#new-session")  # (this tiny catalog has few authors left to offer in the same session)
    page.page.click("#steer summary")  # ... and by the controls
    page.page.select_option("#s-type", "author")
    page.page.select_option("#s-format", "ids")
    page.page.fill("#s-k", "2")
    controlled = ask(page.page, "recommend")
    authors = card_items(controlled)
    assert len(authors) == 2 and {c["type"] for c in authors} == {"author"}
    for shown in authors:
        assert neo.catalog.get(shown["id"]).title == shown["title"]
    page.page.screenshot(path=str(shots / "steering.png"), full_page=True)
    assert_clean(page, base_url)


def test_a_visitor_is_answered_and_sessions_resume_and_delete(page: Watched, base_url: str, neo: Neo,
                                                              shots: Path) -> None:
    signed_in(page.page)
    page.page.click("#visitor")
    visitor = card_items(ask(page.page, "top 3 books"))
    assert len(visitor) == 3 and {c["type"] for c in visitor} == {"book"}
    entry = page.page.locator("#sessions li.current")
    entry.wait_for()
    assert "visitor · 1 turn" in entry.inner_text()
    session_id = entry.get_attribute("data-id")
    page.page.click("#new-session")
    assert page.page.locator("#log .msg").count() == 0
    page.page.click(f"#sessions li[data-id='{session_id}'] .resume")
    page.page.wait_for_selector("#log .msg.assistant.done")
    assert [c["id"] for c in card_items(page.page.locator(".msg.assistant").last)] == [c["id"] for c in visitor]
    page.page.screenshot(path=str(shots / "resumed.png"), full_page=True)
    page.page.click(f"#sessions li[data-id='{session_id}'] .delete")
    page.page.wait_for_selector(f"#sessions li[data-id='{session_id}']", state="detached")
    assert not neo.store.exists(session_id)
    assert_clean(page, base_url)


def test_the_page_fits_a_phone_and_works_by_keyboard(browser: Any, base_url: str, user: str, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = Watched(context.new_page())
    page.page.set_default_timeout(WAIT_MS)
    page.page.goto(base_url + "/")
    assert page.page.evaluate("document.activeElement.id") == "key"  # the key field has focus on arrival
    page.page.keyboard.type(KEY)
    page.page.keyboard.press("Enter")
    page.page.wait_for_selector("#signout:visible")
    page.page.focus("#text")
    page.page.keyboard.type("top 2 books")
    page.page.keyboard.press("Enter")
    page.page.wait_for_selector(".msg.assistant.done .card")
    overflow = page.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone"
    page.page.screenshot(path=str(shots / "phone.png"), full_page=True)
    assert_clean(page, base_url)
    context.close()
