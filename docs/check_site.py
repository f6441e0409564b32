"""Checks the built site: its internal links, and three pages in a real (headless) Chromium.

    python docs/check_site.py [SITE_DIR] [--screenshots DIR] [--chromium PATH]

1. Links, without a browser: every ``href``/``src`` of every HTML page of ``SITE_DIR`` that
   points inside the site must name an existing file and, with a ``#fragment``, an ``id`` in it.
2. In Chromium, driven by Playwright through the system's browser (Debian's ``chromium``
   package; Playwright's own browser download is not needed): the site is served on
   127.0.0.1 (a port the system picks), and the home page, the API reference of the estimators
   and the Gumbel-Softmax guide are loaded. A page fails on a console error, an uncaught
   exception, a failed or 4xx/5xx request, a request leaving 127.0.0.1 (the site must work
   offline), maths MathJax did not typeset (an arithmatex element without output, a TeX error,
   or reST maths that was never converted). A full-page screenshot of each is saved.

Exit status 0 when everything passes, 1 with the reasons otherwise.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import shutil
import sys
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

PAGES = {
    "home": "index.html",
    "reference": "reference/gumbel_softmax.estimators.html",
    "guide": "guides/concrete.html",
}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if k in ("id", "name") and v:
                self.ids.add(v)
            if k in ("href", "src") and v and tag in ("a", "img", "link", "script"):
                self.links.append(v)


def broken_links(site: Path) -> list[str]:
    """Internal links of every page that miss their file or their anchor."""
    parsed: dict[Path, _Links] = {}

    def parse(path: Path) -> _Links:
        if path not in parsed:
            p = _Links()
            p.feed(path.read_text(encoding="utf-8", errors="replace"))
            parsed[path] = p
        return parsed[path]

    problems = []
    for page in sorted(site.rglob("*.html")):
        for link in parse(page).links:
            url, fragment = urldefrag(link)
            if (
                urlparse(url).scheme
                or url.startswith("//")
                or link.startswith(("mailto:", "data:"))
            ):
                continue  # external: checked in the browser (nothing may be fetched from it)
            if url.startswith("/"):  # root-relative (the 404 page's)
                target = site / unquote(url).lstrip("/")
            else:
                target = (page.parent / unquote(url)).resolve() if url else page
            if target.is_dir():
                target = target / "index.html"
            rel = page.relative_to(site)
            if not target.is_file():
                problems.append(f"{rel}: link to a missing file: {link}")
            elif (
                fragment and target.suffix == ".html" and unquote(fragment) not in parse(target).ids
            ):
                problems.append(f"{rel}: link to a missing anchor: {link}")
    return problems


def serve(site: Path) -> tuple[ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


# Run in the page once MathJax has finished: what was not typeset.
_MATH_CHECK = """async () => {
  if (!window.MathJax || !MathJax.startup) return {error: "MathJax did not load"};
  await MathJax.startup.promise;
  const nodes = [...document.querySelectorAll(".arithmatex")];
  const untypeset = nodes.filter(n => !n.querySelector("mjx-container")).map(n => n.textContent.slice(0, 80));
  const errors = [...document.querySelectorAll("mjx-merror")].map(n => n.getAttribute("data-mjx-error") || n.textContent);
  const text = document.body.innerText;
  const rest = (text.match(/:math:`|\\.\\. math::|:(func|class|meth):`/g) || []).length;
  return {count: nodes.length, untypeset, errors, rest};
}"""


def find_chromium(explicit: str | None) -> str | None:
    for name in (explicit, "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    return None


def browser_check(site: Path, shots: Path, chromium: str) -> tuple[list[str], dict[str, Path]]:
    """Loads each of PAGES in headless Chromium; returns (problems, screenshot paths)."""
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    server, base = serve(site)
    problems: list[str] = []
    saved: dict[str, Path] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for key, rel in PAGES.items():
                issues: list[str] = []
                page.on(
                    "console",
                    lambda m, i=issues: (
                        i.append(f"console {m.type}: {m.text}") if m.type == "error" else None
                    ),
                )
                page.on("pageerror", lambda e, i=issues: i.append(f"uncaught: {e}"))
                page.on("requestfailed", lambda r, i=issues: i.append(f"request failed: {r.url}"))
                page.on(
                    "response",
                    lambda r, i=issues: (
                        i.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None
                    ),
                )
                page.on(
                    "request",
                    lambda r, i=issues: (
                        None
                        if r.url.startswith((base, "data:", "blob:"))
                        else i.append(f"left the site: {r.url}")
                    ),
                )
                response = page.goto(base + rel, wait_until="networkidle")
                if response is None or response.status != 200:
                    issues.append(
                        f"HTTP {response.status if response else '?'} for the page itself"
                    )
                maths = page.evaluate(_MATH_CHECK)
                if "error" in maths:
                    issues.append(maths["error"])
                else:
                    if maths["untypeset"]:
                        issues.append(f"maths not typeset: {maths['untypeset'][:3]}")
                    if maths["errors"]:
                        issues.append(f"TeX errors: {maths['errors'][:3]}")
                    if maths["rest"]:
                        issues.append(f"{maths['rest']} reST roles left unconverted in the text")
                    if key != "home" and maths["count"] == 0:
                        issues.append("no maths on a page that has formulas")
                path = shots / f"{key}.png"
                page.screenshot(path=str(path), full_page=key != "reference")
                saved[key] = path
                problems += [f"{rel}: {i}" for i in issues]
                print(
                    f"{rel}: {maths.get('count', 0)} formulas typeset, "
                    f"{'ok' if not issues else f'{len(issues)} problem(s)'}; screenshot {path}"
                )
                page = _fresh(browser, page)
            browser.close()
    finally:
        server.shutdown()
    return problems, saved


def _fresh(browser, page):  # type: ignore[no-untyped-def]
    """A new page, so that each page's listeners see its own events only."""
    page.close()
    return browser.new_page(viewport={"width": 1280, "height": 900})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", nargs="?", default="site", type=Path)
    parser.add_argument("--screenshots", type=Path, default=Path("build/docs-check"))
    parser.add_argument("--chromium", default=None, help="the browser binary (default: on PATH)")
    parser.add_argument("--links-only", action="store_true")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        parser.error(f"{args.site} holds no built site (run `make docs` first)")
    problems = broken_links(args.site)
    print(f"links: {'ok' if not problems else f'{len(problems)} broken'}")
    if not args.links_only:
        if importlib.util.find_spec("playwright") is None:
            parser.error("Playwright is not installed: pip install -e '.[docs-check]'")
        chromium = find_chromium(args.chromium)
        if chromium is None:
            parser.error("no Chromium found: apt-get install chromium (or pass --chromium PATH)")
        more, _ = browser_check(args.site, args.screenshots, chromium)
        problems += more
    for p in problems:
        print("FAIL", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
