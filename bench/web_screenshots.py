"""Screenshots of the web chat (`rag serve`) in Chromium, for the README: a written answer and an
extractive one, each with its sources and a cited passage opened.

usage: python bench/web_screenshots.py --index-dir DIR --index NAME [--base-url URL] [--model NAME]
           [--question TEXT] [--out-dir assets]

Without --base-url only the extractive screenshot is taken. The server runs in this process on a
free 127.0.0.1 port; Chromium is Debian's (tests/browser.py), driven by Playwright. Prints the
files it wrote.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from rag.config import load_settings  # noqa: E402

WAIT_MS = 900_000  # a small local model on a busy machine may take minutes


def serve(settings):
    from rag.servers.http import bound_port, create_app, make_server, warm_up

    app = create_app(settings)
    warm_up(app)
    server = make_server(app, "127.0.0.1", 0, access_log=False)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{bound_port(server)}/"


def shoot(browser, url: str, question: str, out: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(url)
    page.wait_for_selector("#index option", state="attached")
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_selector(".turn[data-done='true']", timeout=WAIT_MS)
    cite = page.query_selector(".turn .answer .cite") or page.query_selector(".turn .sources .cite")
    if cite is not None:
        cite.click()
    page.screenshot(path=str(out), full_page=True)
    page.close()
    print(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--index", required=True)
    parser.add_argument("--base-url", help="an OpenAI-compatible server for the written answer")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--question", default="How do I check out a second branch in another folder without cloning "
                                              "the repository again?")
    parser.add_argument("--out-dir", type=Path, default=HERE.parent / "assets")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.browser import LAUNCH_ARGS, chromium_path

    runs = [("extractive", {})]
    if args.base_url:
        runs.insert(0, ("llm", {"base_url": args.base_url, "llm_model": args.model, "api_key": "no-key",
                                "timeout": 900.0}))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=LAUNCH_ARGS, headless=True)
        for name, llm in runs:
            settings = load_settings({"index_dir": args.index_dir, "index": args.index, **llm}, environ={},
                                     dotenv_path=args.index_dir / "no.env")
            server, url = serve(settings)
            try:
                shoot(browser, url, args.question, args.out_dir / f"web-{name}-answer.png")
            finally:
                server.should_exit = True
        browser.close()


if __name__ == "__main__":
    main()
