"""Screenshots of the playground on a real bundle, for docs/ (the tests take their own on the sample bundle).

Starts ``neo serve``'s app on a free loopback port over ``--bundle`` (sessions in a temp file), drives
Debian's Chromium with Playwright through what a new user does (sign in, pick a catalog user, ask for
a list, ask for one with an explanation and open its "why" panel, steer to another type, a phone-width
view, a refused key) and saves one PNG per state in ``--out``.

Usage: python bench/playground_screenshots.py --bundle demo/bundle --user 196 --out docs/playground
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neo_sdk.server import ApiKeys, ServerConfig, create_app
from neo_sdk.session import Neo
from tests._serving import serving
from tests.test_playground import FLAGS

KEY = "sk-screenshots-1234"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("demo/bundle"))
    parser.add_argument("--user", default="196")
    parser.add_argument("--out", type=Path, default=Path("docs/playground"))
    parser.add_argument("--other-type", help="the type to steer to (default: the bundle's second type)")
    args = parser.parse_args()
    chromium = os.environ.get("NEO_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        parser.error("no Chromium: apt-get install chromium (or set NEO_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    print(f"playground_screenshots: serve {args.bundle}, drive Chromium as user {args.user}, PNGs to {args.out}")
    with tempfile.TemporaryDirectory() as tmp:
        neo = Neo.load(args.bundle, sessions=Path(tmp) / "sessions.db")
        types = neo.vocabulary()["types"]
        other = args.other_type or next(t["name"] for t in types if t["name"] != neo.steering.default_type)
        main_type = neo.prompts.plural(neo.steering.default_type)
        with serving(create_app(ServerConfig(keys=ApiKeys({"docs": KEY})), neo=neo)) as url, \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(url + "/")
            page.fill("#key", KEY)
            page.press("#key", "Enter")
            page.wait_for_selector("#signout:visible")
            page.fill("#user", args.user)
            page.press("#user", "Enter")
            page.wait_for_selector("#history .card.enriched")

            def ask(text: str) -> object:
                done = page.locator(".msg.assistant.done, .msg.assistant.failed")
                before = done.count()
                page.fill("#text", text)
                page.press("#text", "Enter")
                done.nth(before).wait_for()
                page.wait_for_timeout(500)  # the cards' details arrive just after the answer
                return page.locator(".msg.assistant").last

            ask(f"top 5 {main_type} for me")
            explained = ask(f"{main_type} like this, explain why")
            explained.locator(".why summary").click()  # type: ignore[attr-defined]
            page.screenshot(path=str(args.out / "user.png"), full_page=True)
            print(f"  {args.out / 'user.png'}")
            ask(f"now {neo.prompts.plural(other)} instead")
            page.screenshot(path=str(args.out / "steering.png"), full_page=True)
            print(f"  {args.out / 'steering.png'}")
            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
            phone.goto(url + "/")
            phone.fill("#key", "sk-wrong-key-000")
            phone.press("#key", "Enter")
            phone.wait_for_selector("#notice:visible")
            phone.screenshot(path=str(args.out / "phone-401.png"))
            print(f"  {args.out / 'phone-401.png'}")
            browser.close()
        neo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
