"""The app in a real browser: Debian's Chromium driven by Playwright.

Screenshots go to test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
QUESTION = "#qa-question textarea"
SOURCE_CARDS = "#qa-sources details.qa-source"
BOT = '#qa-chat [data-testid="bot"]'
USER = '#qa-chat [data-testid="user"]'
# Long enough for a first answer on a busy machine (the embedder warms up).
ANSWER_TIMEOUT_MS = 60_000

# Every payload sets a flag the test reads back: none may ever run.
HOSTILE_PAPERS = [
    {
        "id": "hostile-1",
        "title": 'Quokka bandits <img src=x onerror="window.__pwned=1">',
        "authors": ["<b>Mallory</b> Attacker", "Eve <script>window.__pwned=2</script>"],
        "abstract": (
            "We study quokka bandits, a new kind of bandit problem "
            '<img src=x onerror="window.__pwned=3">. Quokka bandits learn from '
            "<script>window.__pwned=4</script> delayed rewards. Our quokka bandit "
            "algorithm matches the lower bound."
        ),
        "venue": "<i>ICLR</i>",
        "year": 2021,
        "url": "javascript:window.__pwned=5",
    },
    {
        "id": "benign-1",
        "title": "Graph networks that extrapolate",
        "authors": ["Ada Lovelace"],
        "abstract": "We show when graph networks extrapolate. It holds on 3 tasks.",
        "year": 2020,
    },
]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing; the browser tests drive Debian's Chromium. "
            "Install it with: apt-get install -y chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser) -> Iterator:
    """Opens a URL in a fresh browser session (its own cookies and storage)."""
    contexts = []

    def open_at(url: str):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector(QUESTION)
        return page

    yield open_at
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def hostile_server(seed_engine, serve_app, tmp_path_factory) -> str:
    """The app over a store whose papers carry HTML and script payloads."""
    from rag.answering import Engine
    from rag.ingest import ingest
    from rag.settings import load_settings
    from ui.app import create_app

    folder = tmp_path_factory.mktemp("hostile")
    corpus = folder / "hostile.jsonl"
    corpus.write_text("\n".join(json.dumps(paper) for paper in HOSTILE_PAPERS))
    settings = load_settings(
        overrides={"store": {"data_dir": str(folder / "store")}}, environ={}
    )
    engine = Engine(settings, embedder=seed_engine.embedder)
    ingest([corpus], settings=settings, store=engine.store, embedder=engine.embedder)
    return serve_app(create_app(engine), settings)


def ask(page, question: str) -> None:
    """Type ``question`` and wait until its answer and sources are shown."""
    answers = page.locator(BOT).count()
    page.fill(QUESTION, question)
    page.keyboard.press("Enter")
    page.locator(BOT).nth(answers).wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_function(
        """([bot, answers]) => {
            const replies = document.querySelectorAll(bot);
            const last = replies[replies.length - 1];
            const done = !document.querySelector('#qa-sources .qa-empty');
            return replies.length > answers && done && !last.innerText.includes('▍');
        }""",
        arg=[BOT, answers],
        timeout=ANSWER_TIMEOUT_MS,
    )


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def squeeze(text: str) -> str:
    return " ".join(text.split())


def test_answer_shows_sources_with_highlighted_evidence(
    open_page, ui_server, seed_engine
):
    from playwright.sync_api import expect

    page = open_page(ui_server)
    ask(page, "What is SMiRL?")

    expect(page.locator(BOT).last).to_contain_text("[1]")
    card = page.locator(SOURCE_CARDS).filter(has_text="SMiRL").first
    expect(card.locator("mark").first).to_be_hidden()
    card.locator("summary").click()
    marks = card.locator("mark")
    expect(marks.first).to_be_visible()

    seed_engine.index.refresh()
    smirl = next(p for p in seed_engine.index.papers if "SMiRL" in (p.title or ""))
    for text in marks.all_inner_texts():
        assert squeeze(text) in squeeze(smirl.abstract)
    expect(page.locator("#qa-timings")).to_contain_text("extractive")
    screenshot(page, "ui-answer-smirl.png")


def test_follow_up_and_separate_sessions(open_page, ui_server):
    from playwright.sync_api import expect

    page = open_page(ui_server)
    ask(page, "What is SMiRL?")
    ask(page, "How does it work?")

    expect(page.locator(USER)).to_have_count(2)
    expect(page.locator(SOURCE_CARDS).first).to_contain_text("SMiRL")
    other = open_page(ui_server)
    expect(other.locator(USER)).to_have_count(0)


def test_browse_tab_filters_the_collection(open_page, ui_server, seed_engine):
    from playwright.sync_api import expect

    page = open_page(ui_server)
    page.get_by_role("tab", name="Browse").click()
    total = seed_engine.store.count()
    rows = page.locator("#qa-papers tbody tr")
    expect(rows).to_have_count(total)

    page.locator("#qa-filter textarea").fill("levine")
    expect(page.locator("#qa-papers .qa-count")).to_contain_text(f"of {total} papers")
    expect(rows.first).to_contain_text("Levine")
    assert 0 < rows.count() < total
    for row in rows.all_inner_texts():
        assert "levine" in row.lower()
    screenshot(page, "ui-browse-levine.png")


def test_hostile_abstracts_are_shown_as_text(open_page, hostile_server):
    from playwright.sync_api import expect

    page = open_page(hostile_server)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    ask(page, "What are quokka bandits?")
    page.locator(f"{SOURCE_CARDS} summary").first.click()

    sources = page.locator("#qa-sources")
    expect(sources).to_contain_text('<img src=x onerror="window.__pwned=1">')
    expect(sources).to_contain_text("<script>window.__pwned=4</script>")
    assert page.evaluate("() => window.__pwned") is None and not dialogs
    for area in ("#qa-sources", "#qa-chat"):
        injected = f"{area} img, {area} script, {area} b, {area} i"
        assert page.locator(injected).count() == 0
    assert page.locator('a[href^="javascript"]').count() == 0
    assert re.search(r"quokka", page.locator(BOT).last.inner_text(), re.IGNORECASE)
    screenshot(page, "ui-hostile-escaped.png")
