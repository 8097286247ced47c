"""The app's handlers called directly, over a real engine of the seed abstracts."""

from __future__ import annotations

import logging
import os

import pytest

from rag.errors import ConfigError, StoreUnreachableError
from rag.prompts import NO_ANSWER
from rag.types import Answer, Paper, Source
from ui.handlers import (
    CURSOR,
    THINKING,
    ask,
    describe_model,
    filter_papers,
    history_pairs,
    list_models,
    model_choices,
    respond,
)
from ui.render import (
    ABSTAINED_TITLE,
    ERROR_SOURCES,
    UNSUPPORTED_MARK,
    chat_text,
    highlight,
    papers_table,
    render_sources,
    render_timings,
    safe_url,
)

HOSTILE = '<img src=x onerror="alert(1)">'
SCRIPT = "<script>alert('x')</script>"
MISSING_MODEL = "ui-test-missing"


def run(question: str, engine, history=None, model="extractive", k=5) -> list:
    return list(respond(question, history or [], model, k, engine))


def reply(update) -> str:
    """The text of the last chat message of one update."""
    chat, _, _ = update
    return chat[-1]["content"]


def hostile_answer() -> Answer:
    abstract = f"We study {HOSTILE} attacks. Our {SCRIPT} method wins. It is fast."
    source = Source(
        id="p1",
        title=f"Title {SCRIPT}",
        authors=[HOSTILE, "Ada Lovelace"],
        abstract=abstract,
        score=0.9,
        url="javascript:alert(1)",
        venue="<b>ICLR</b>",
        year=2021,
        evidence=[f"Our {SCRIPT} method wins."],
    )
    return Answer(f"Our {SCRIPT} method wins. [1]", [source], False, "extractive")


@pytest.fixture
def missing_model():
    """A provider whose package is missing, registered the way real ones are."""
    from rag import models

    models.register(
        MISSING_MODEL,
        None,
        extra="ui-test",
        description="a model for tests whose package is missing",
        modules=("no_such_package_for_ui_tests",),
    )
    yield MISSING_MODEL
    models.unregister(MISSING_MODEL)


def test_respond_streams_growing_text(seed_engine):
    updates = run("Which papers learn RL without task rewards?", seed_engine)

    texts = [reply(update) for update in updates]
    assert texts[0] == THINKING
    streamed = [text.removesuffix(CURSOR) for text in texts[1:-1]]
    assert len(streamed) >= 2, "the answer should arrive in several pieces"
    for shorter, longer in zip(streamed, streamed[1:]):
        assert longer.startswith(shorter) and len(longer) > len(shorter)
    assert texts[-1].startswith(streamed[-1].rstrip())
    assert not texts[-1].endswith(CURSOR)


def test_respond_answers_with_cited_sources(seed_engine):
    final = run("What is SMiRL?", seed_engine)[-1]
    chat, sources, timings = final

    assert chat[0] == {"role": "user", "content": "What is SMiRL?"}
    assert "[1]" in chat[-1]["content"]
    assert "SMiRL" in sources and "<mark>" in sources
    assert 'class="qa-source"' in sources
    assert "extractive" in timings and " s" in timings


def test_follow_up_uses_the_history(seed_engine):
    first = run("What is SMiRL?", seed_engine)[-1][0]
    alone = run("How does it work?", seed_engine)[-1][1]
    follow_up = run("How does it work?", seed_engine, history=first)[-1]

    assert "SMiRL" not in alone
    assert "SMiRL" in follow_up[1]
    assert len(follow_up[0]) == 4, "the conversation is kept"


def test_abstained_answer_says_so(seed_engine):
    chat, sources, _ = run("What is the boiling point of gallium?", seed_engine)[-1]

    assert NO_ANSWER in chat[-1]["content"]
    assert ABSTAINED_TITLE in sources


def test_empty_question_is_a_readable_message(seed_engine):
    chat, sources, timings = run("   ", seed_engine)[-1]

    assert [message["role"] for message in chat] == ["assistant"]
    assert "question is empty" in chat[-1]["content"]
    assert "Traceback" not in chat[-1]["content"]
    assert sources == ERROR_SOURCES


def test_store_failure_is_a_readable_message(seed_engine, monkeypatch):
    def unreachable(*args, **kwargs):
        raise StoreUnreachableError("the Chroma server does not answer; start it")

    monkeypatch.setattr(seed_engine.index, "search", unreachable)
    final = run("What is SMiRL?", seed_engine)[-1]

    assert "Chroma server does not answer" in reply(final)
    assert final[1] == ERROR_SOURCES


def test_unexpected_failure_is_logged_and_shown_briefly(
    seed_engine, monkeypatch, caplog
):
    def broken(*args, **kwargs):
        raise RuntimeError("index exploded")

    monkeypatch.setattr(seed_engine.index, "search", broken)
    with caplog.at_level(logging.ERROR, logger="ui.handlers"):
        final = run("What is SMiRL?", seed_engine)[-1]

    text = reply(final)
    assert "RuntimeError: index exploded" in text and "still running" in text
    assert "Traceback" not in text and 'File "' not in text
    assert any(record.exc_info for record in caplog.records)


def test_unavailable_model_is_explained(seed_engine, missing_model):
    choices = list_models(seed_engine.settings)
    labels = {spec: label for label, spec in model_choices(choices)}
    note = describe_model(missing_model, seed_engine)
    final = run("What is SMiRL?", seed_engine, model=missing_model)[-1]

    assert labels[missing_model] == f"{missing_model} (unavailable)"
    assert 'class="qa-warn"' in note and "cannot answer here" in note
    assert "pip install &#x27;abstracts-qa[ui-test]&#x27;" in note
    assert "cannot answer" in reply(final)
    assert "pip install 'abstracts-qa[ui-test]'" in reply(final)


def test_registry_lists_the_built_in_model(seed_engine):
    choices = list_models(seed_engine.settings)
    assert any(choice.spec == "extractive" and choice.available for choice in choices)
    note = describe_model("extractive", seed_engine)
    assert note.startswith('<div class="qa-note"><strong>extractive</strong>: ')


def test_number_of_abstracts_out_of_range(seed_engine):
    final = run("What is SMiRL?", seed_engine, k=0)[-1]
    assert "between 1 and 100" in reply(final)


def test_ask_returns_text_and_answer_dict(seed_engine):
    text, answer = ask("What is SMiRL?", [], "extractive", 3, seed_engine)

    assert "[1]" in text and answer["text"] == text
    assert "SMiRL" in answer["sources"][0]["title"]
    assert answer["sources"][0]["evidence"]
    assert answer["error"] is None


def test_render_sources_escapes_hostile_text():
    page = render_sources(hostile_answer())

    for raw in ("<img", "<script", "<b>", "javascript:"):
        assert raw not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x onerror=" in page
    assert "<mark>Our &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; method" in page


def test_chat_text_escapes_and_flags_unsupported_sentences():
    text = chat_text(f"Claim {SCRIPT}. Second claim. [1]", ["Second claim."])

    assert "<script" not in text and "&lt;script&gt;" in text
    assert f"{UNSUPPORTED_MARK} *Second claim.*" in text
    assert "no cited abstract supports" in text


def test_chat_text_styles_the_citation_checks_marks():
    marked = "Fine [1]. \u27e6Made *up* <b>claim</b> [1].\u27e7 Also fine [2]."
    text = chat_text(marked, ["Made *up* <b>claim</b> [1]."])

    assert "\u27e6" not in text and "<b>" not in text
    assert f"{UNSUPPORTED_MARK} *Made \\*up\\* &lt;b&gt;claim&lt;/b&gt; [1].*" in text
    assert text.count(UNSUPPORTED_MARK) == 2, "one flag and the legend"


def test_unsupported_sentences_are_listed_in_the_sources_panel():
    answer = hostile_answer()
    answer.unsupported = [f"Invented {HOSTILE} fact."]
    page = render_sources(answer)

    assert "Not supported by the cited abstracts" in page
    assert "Invented &lt;img" in page and "<img" not in page


def test_highlight_tolerates_whitespace_and_overlap():
    abstract = "One  two\nthree. Four five. Six."
    marked = highlight(abstract, ["One two three.", "two three. Four five.", "Zero."])

    assert marked == "<mark>One  two\nthree. Four five.</mark> Six."


def test_safe_url_keeps_only_web_links():
    link = "https://openreview.net/forum?id=x"
    assert safe_url(link) == link
    for bad in ("javascript:alert(1)", "data:text/html,x", "//evil.example", "", None):
        assert safe_url(bad) is None


def test_timings_line_is_small_and_readable():
    answer = Answer("x", [], False, "extractive", {"retrieve": 1.2, "total": 1.25})
    generated = Answer(
        "x", [], False, "smollm2", {"first_token": 0.004, "tokens": 16.0, "total": 2}
    )

    assert render_timings(answer) == (
        '<div class="qa-timings">extractive · 1.25 s (retrieve 1.20 s)</div>'
    )
    assert "(first token 4 ms, 16 tokens)" in render_timings(generated)


def test_filter_papers_lists_and_filters_the_collection(seed_engine):
    everything = filter_papers("", seed_engine)
    total = seed_engine.store.count()
    levine = filter_papers("levine", seed_engine)

    assert everything.count("<tr>") == total + 1
    assert f"{total} of {total} papers" in everything
    assert 0 < levine.count("<tr>") - 1 < total
    assert "Sergey Levine" in levine
    assert f"0 of {total} papers" in filter_papers("no such paper here", seed_engine)


def test_papers_table_escapes_and_matches_all_words():
    papers = [
        Paper("a", "x", [HOSTILE], f"Deep {SCRIPT} nets", "ICLR", 2021, "ftp://x"),
        Paper("b", "y", ["Ada Lovelace"], "Shallow nets", "NeurIPS", 2020),
    ]
    table = papers_table(papers, "nets 2021")

    assert table.count("<tr>") == 2 and "<script" not in table and "<img" not in table
    assert "ftp://" not in table and "1 of 2 papers" in table


def test_history_pairs_reads_every_shape():
    gradio = [
        {"role": "user", "content": [{"type": "text", "text": "What is &lt;x&gt;?"}]},
        {"role": "assistant", "content": "It is y. [1]"},
    ]
    assert history_pairs(gradio, unescape=True) == [
        ("user", "What is <x>?"),
        ("assistant", "It is y. [1]"),
    ]
    assert history_pairs([("user", "Q"), ("assistant", "A")]) == [
        ("user", "Q"),
        ("assistant", "A"),
    ]
    assert history_pairs([["Q", "A"]]) == [("user", "Q"), ("assistant", "A")]
    assert history_pairs(None) == []


def test_login_comes_from_the_named_variables(seed_settings, monkeypatch):
    from ui.app import login_from_environment

    assert login_from_environment(seed_settings) is None
    monkeypatch.setenv("RAG_UI_USER", "ada")
    with pytest.raises(ConfigError, match="RAG_UI_PASSWORD"):
        login_from_environment(seed_settings)
    monkeypatch.setenv("RAG_UI_PASSWORD", "secret")
    assert login_from_environment(seed_settings) == ("ada", "secret")


def test_exposure_warnings():
    from ui.app import exposure_warnings

    assert exposure_warnings("127.0.0.1", False, False) == []
    assert exposure_warnings("localhost", False, False) == []
    assert exposure_warnings("::1", False, True) == []
    exposed = exposure_warnings("0.0.0.0", False, False)
    assert len(exposed) == 1 and "without a login" in exposed[0]
    assert len(exposure_warnings("127.0.0.1", True, True)) == 1


def test_create_app_limits_concurrency_and_reports_nothing(seed_engine):
    from ui.app import create_app

    app = create_app(seed_engine)
    # Gradio keeps the setting on its queue object; there is no public getter.
    assert app._queue.default_concurrency_limit == seed_engine.settings.ui.concurrency
    assert app.analytics_enabled is False
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
