"""Reliability under bad input: questions, request arguments, corpus files, config.

Each bad input must give a readable error or a bounded answer, never a crash or a
hang, and a bad corpus file must lose nothing already stored. Tests that the older
files already hold (tests/test_answering.py, test_corpus.py, test_settings.py,
test_ui_client.py) are not repeated; docs/reliability.md lists which covers what.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from gradio_client import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.corpus import ReadResult, load_metadata, read_papers
from rag.errors import ConfigError, CorpusError, QuestionError, RagError
from rag.ingest import ingest
from rag.settings import Settings, load_settings
from rag.store import Store, open_store
from rag.types import Answer
from ui.handlers import respond

# A bounded answer: short, and in good time even on a busy two-core machine.
MAX_ANSWER_WORDS = 300
MAX_SECONDS = 60.0
HUGE = 100_000
TRACE_MARKS = ("Traceback", 'File "', "failed unexpectedly")

ODD_QUESTIONS = {
    "huge": "What is SMiRL? " + "surprise " * (HUGE // 9),
    "one-huge-word": "What is " + "x" * HUGE + "?",
    "control-chars": "What\x00 is \x1b[31mSMiRL\x07?\x7f",
    "rtl-override": "\u202eWhat is SMiRL?\u202c",
    "zero-width": "What\u200b is\u200c SMiRL\u200d?\ufeff",
    "zero-width-only": "\u200b\u200c\u200d",
    "emoji": "🤖🧠 What is SMiRL? 👩🏽‍🔬🏳️‍🌈",
    "lone-surrogates": "What is \ud800SMiRL?\udfff",
    "line-separators": "What is SMiRL?\u2028\u2029\x85",
    "combining-flood": "What is SMiRL" + "\u0301" * 5000 + "?",
    "math-letters": "𝐖𝐡𝐚𝐭 𝐢𝐬 𝐒𝐌𝐢𝐑𝐋?",
    "private-use": "\ue000\U0010fffd What is SMiRL?",
    "html": "<img src=x onerror=alert(1)> What is SMiRL?",
}
EMPTY_QUESTIONS = ["", " \t\n", "\u3000\u2003", "\x00\x01\x02", "\ud800", "\x1b\x7f"]
NOT_TEXT = [b"What is SMiRL?", 3.5, True, {"question": "x"}, ("What?",), object()]


def assert_bounded(result: Answer) -> None:
    """A finished answer: short text, cited or abstained, no trace."""
    assert isinstance(result, Answer)
    assert len(result.text.split()) < MAX_ANSWER_WORDS
    assert result.abstained or result.sources
    assert not any(mark in result.text for mark in TRACE_MARKS)


def timed_answer(engine, question, **options) -> Answer:
    started = time.monotonic()
    result = engine.answer(question, **options)
    assert time.monotonic() - started < MAX_SECONDS
    return result


# ---------------------------------------------------------------------------
# Questions through the Python API


@pytest.mark.parametrize("name", list(ODD_QUESTIONS))
def test_odd_questions_get_bounded_answers(seed_engine, name):
    result = timed_answer(seed_engine, ODD_QUESTIONS[name])

    assert_bounded(result)


@pytest.mark.parametrize("name", ["lone-surrogates", "rtl-override", "emoji"])
def test_odd_questions_still_find_the_paper(seed_engine, name):
    result = timed_answer(seed_engine, ODD_QUESTIONS[name])

    assert not result.abstained
    assert "SMiRL" in (result.sources[0].title or "")


@pytest.mark.parametrize("question", EMPTY_QUESTIONS)
def test_questions_with_nothing_to_read_are_refused(seed_engine, question):
    for call in (seed_engine.answer, seed_engine.retrieve):
        with pytest.raises(QuestionError, match="question is empty"):
            call(question)


@pytest.mark.parametrize("value", NOT_TEXT, ids=lambda value: type(value).__name__)
def test_values_that_are_not_text_are_refused(seed_engine, value):
    with pytest.raises(QuestionError, match="must be text"):
        seed_engine.answer(value)
    with pytest.raises(QuestionError, match="must be text"):
        next(seed_engine.stream(value))
    with pytest.raises(QuestionError, match="must be text"):
        seed_engine.retrieve(value)


@pytest.mark.parametrize(
    "options, named",
    [
        ({"history": 42}, "history"),
        ({"history": "What is SMiRL?"}, "history"),
        ({"history": {"role": "user"}}, "history"),
        ({"model": 42}, "model"),
        ({"model": ["extractive"]}, "model"),
        ({"model": "no-such-model"}, "unknown model"),
        ({"k": "five"}, "k, the number of abstracts"),
        ({"k": 0}, "k, the number of abstracts"),
        ({"k": -3}, "k, the number of abstracts"),
        ({"k": 2.5}, "k, the number of abstracts"),
        ({"k": 10**9}, "k, the number of abstracts"),
    ],
)
def test_unusable_arguments_are_named(seed_engine, options, named):
    with pytest.raises(RagError, match=named):
        seed_engine.answer("What is SMiRL?", **options)


def test_odd_turns_in_the_history_are_read_or_ignored(seed_engine):
    history = [
        {"role": "user", "content": "What is \ud800SMiRL?"},
        {"role": 5, "content": None},
        ["only one"],
        ("assistant", "x" * HUGE),
        42,
    ]

    result = timed_answer(seed_engine, "How does it work?", history=history)

    assert_bounded(result)
    assert "SMiRL" in (result.sources[0].title or "")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(question=st.text(st.characters(codec=None), max_size=300))
def test_any_text_is_answered_or_refused_plainly(seed_engine, question):
    try:
        result = timed_answer(seed_engine, question)
    except QuestionError as exc:
        assert "question" in str(exc)
        return

    assert_bounded(result)


# ---------------------------------------------------------------------------
# Questions through the chat handler and the Gradio API


@pytest.mark.parametrize("name", ["huge", "lone-surrogates", "html", "control-chars"])
def test_chat_handler_shows_odd_questions_as_text(seed_engine, name):
    updates = list(respond(ODD_QUESTIONS[name], [], "extractive", 5, seed_engine))

    chat, sources, _ = updates[-1]
    reply = chat[-1]["content"]
    assert chat[-1]["role"] == "assistant" and reply.strip()
    assert not any(mark in reply for mark in TRACE_MARKS)
    assert "<img" not in chat[0]["content"]


@pytest.fixture(scope="module")
def client(ui_server: str) -> Client:
    return Client(ui_server, verbose=False, analytics_enabled=False)


def ask_api(client: Client, *args) -> tuple[str, dict]:
    """One /ask call, given up after MAX_SECONDS."""
    return client.submit(*args, api_name="/ask").result(timeout=MAX_SECONDS)


@pytest.mark.parametrize(
    "args, says",
    [
        (("",), "question is empty"),
        (("\u3000\t",), "question is empty"),
        ((None,), "must be text"),
        ((42,), "must be text"),
        ((True,), "must be text"),
        ((["What is SMiRL?"],), "must be text"),
        (({"question": "What is SMiRL?"},), "must be text"),
        (("What is SMiRL?", 42), "history must be a list"),
        (("What is SMiRL?", "a string"), "history must be a list"),
        (("What is SMiRL?", [], 42), "model must be a spec"),
        (("What is SMiRL?", [], "no-such-model"), "Unknown model"),
        (("What is SMiRL?", [], "extractive", "five"), "number of abstracts"),
        (("What is SMiRL?", [], "extractive", -1), "number of abstracts"),
    ],
)
def test_api_refuses_bad_values_readably(client, args, says):
    text, answer = ask_api(client, *args)

    assert says in text
    assert answer["error"] == text and answer["sources"] == []
    assert not any(mark in text for mark in TRACE_MARKS)


@pytest.mark.parametrize(
    "name", ["huge", "one-huge-word", "rtl-override", "zero-width", "emoji", "html"]
)
def test_api_answers_odd_questions_within_bounds(client, name):
    text, answer = ask_api(client, ODD_QUESTIONS[name], [], "extractive", 5)

    assert answer["error"] is None
    assert len(text.split()) < MAX_ANSWER_WORDS
    assert answer["abstained"] or answer["sources"]


def test_raw_http_with_lone_surrogate_escapes_is_answered(ui_server):
    # gradio_client refuses to encode lone surrogates; JSON escapes carry them.
    history = [{"role": "user", "content": "What is \ud800SMiRL?"}]
    data = ["How does it \udfffwork?", history, "extractive", 5]

    text, answer = raw_ask(ui_server, data)

    assert answer["error"] is None
    assert "SMiRL" in answer["sources"][0]["title"]


def raw_ask(url: str, data: list) -> tuple[str, dict]:
    """/ask over plain HTTP; JSON escapes carry what gradio_client cannot."""
    body = json.dumps({"data": data}).encode("ascii")
    call = urllib.request.Request(
        f"{url}gradio_api/call/ask", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(call, timeout=MAX_SECONDS) as response:
        event_id = json.load(response)["event_id"]

    result = f"{url}gradio_api/call/ask/{event_id}"
    with urllib.request.urlopen(result, timeout=MAX_SECONDS) as response:
        events = response.read().decode("utf-8")
    assert "event: complete" in events, events[-500:]
    payload = events.split("event: complete", 1)[1].split("data:", 1)[1]
    text, answer = json.loads(payload.strip().splitlines()[0])
    return text, answer


# ---------------------------------------------------------------------------
# Corpus files: properties of every reader


def write_and_read(text: str, name: str) -> ReadResult | CorpusError:
    """Read ``text`` saved as ``name``; a CorpusError must name the file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text(text, encoding="utf-8")
        try:
            result = read_papers(path)
        except CorpusError as exc:
            assert name in str(exc)
            return exc

    for problem in result.skipped:
        assert problem.path == str(path) and problem.entry, problem
        assert str(problem).startswith(f"{path}, {problem.entry}: ")
    assert all(paper.id and paper.abstract.strip() for paper in result.papers)
    return result


ANY_CHARS = st.text(st.characters(codec=None), max_size=40)
FIELD_VALUES = (
    ANY_CHARS
    | st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.lists(ANY_CHARS, max_size=3)
    | st.dictionaries(st.text(max_size=3), ANY_CHARS, max_size=2)
)
FIELDS = st.sampled_from(["abstract", "authors", "year", "id", "title", "url", "venue"])


@settings(max_examples=80, deadline=None)
@given(records=st.lists(st.dictionaries(FIELDS, FIELD_VALUES), max_size=6))
def test_jsonl_records_with_any_characters_read_or_name_the_line(records):
    # ensure_ascii escapes lone surrogates as "\ud800", as other tools write them.
    text = "\n".join(json.dumps(record) for record in records)

    result = write_and_read(text, "fuzz.jsonl")

    if isinstance(result, ReadResult):
        for paper in result.papers:
            json.dumps(vars(paper), ensure_ascii=False).encode("utf-8")


def test_jsonl_lone_surrogate_escape_skips_only_its_line(tmp_path):
    path = tmp_path / "escapes.jsonl"
    path.write_text(
        '{"abstract": "We study \\ud800 broken escapes. It fails."}\n'
        '{"abstract": "We study emoji \\ud83e\\udd16 escapes. It works."}\n',
        encoding="utf-8",
    )

    result = read_papers(path)

    assert [paper.abstract for paper in result.papers] == [
        "We study emoji 🤖 escapes. It works."
    ]
    assert result.skipped[0].entry == "line 1"
    assert "lone surrogate" in str(result.skipped[0])


CSV_CELLS = st.text(st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=60, deadline=None)
@given(
    header=st.lists(FIELDS | st.text(max_size=6), min_size=1, max_size=5),
    rows=st.lists(st.lists(CSV_CELLS, max_size=6), max_size=5),
)
def test_csv_rows_read_or_name_the_line(header, rows):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)

    write_and_read(buffer.getvalue(), "fuzz.csv")


BIB_VALUES = st.text(
    st.characters(codec="utf-8", exclude_characters="{}\\@"), max_size=40
)


@settings(max_examples=60, deadline=None)
@given(
    entries=st.lists(
        st.tuples(
            st.text("abcxyz0123", min_size=1, max_size=6),
            st.dictionaries(FIELDS | st.just("author"), BIB_VALUES, max_size=5),
        ),
        max_size=4,
    )
)
def test_bibtex_entries_read_or_name_the_entry(entries):
    blocks = []
    for key, fields in entries:
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields.items())
        blocks.append(f"@article{{{key},\n{body}\n}}\n")

    write_and_read("\n".join(blocks) or "\n@comment{x}\n", "fuzz.bib")


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(codec="utf-8"), max_size=200))
def test_metadata_tsv_reads_or_names_the_file(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz_metadata.tsv"
        path.write_text(text, encoding="utf-8")
        try:
            rows = load_metadata(path)
        except CorpusError as exc:
            assert "fuzz_metadata.tsv" in str(exc)
            return

    assert all(isinstance(row, dict) for row in rows.values())


# ---------------------------------------------------------------------------
# A bad corpus file against a store that holds the seeds


@pytest.fixture(scope="module")
def seeded_store(seed_engine, tmp_path_factory) -> tuple[Settings, Store]:
    """A private store holding the seeds (the shared one must stay as it is)."""
    folder = tmp_path_factory.mktemp("seeded-for-bad-input")
    chosen = load_settings(overrides={"store": {"data_dir": str(folder)}}, environ={})
    store = open_store(chosen.store, seed_engine.embedder.identity)
    report = ingest(
        settings=chosen, store=store, embedder=seed_engine.embedder, progress=False
    )
    assert report.total == report.read > 0
    return chosen, store


def snapshot(store: Store) -> dict:
    """Everything a reader of the store sees: papers, hashes, sentences, titles."""
    papers = store.all_papers()
    ids = [paper.id for paper in papers]
    sentences = store.all_sentences()
    titles = store.titles.get(include=["documents"])
    return {
        "papers": {paper.id: paper for paper in papers},
        "hashes": store.stored_hashes(ids),
        "sentences": Counter(zip(sentences.paper_ids, sentences.texts)),
        "titles": dict(zip(titles["ids"], titles["documents"])),
    }


def bad_lines() -> list[str]:
    return [
        '{"title": "Broken", "abstract": ',
        json.dumps({"title": "No abstract"}),
        json.dumps({"abstract": 42}),
        json.dumps(["not", "an", "object"]),
        '{"abstract": "A lone \\udc00 surrogate. It breaks."}',
        json.dumps({"abstract": "We study X.", "year": "last year"}),
    ]


def test_a_file_of_only_bad_entries_changes_nothing(
    seeded_store, tmp_path, seed_engine
):
    chosen, store = seeded_store
    before = snapshot(store)
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(bad_lines()), encoding="utf-8")

    report = ingest(
        [path], chosen, store=store, embedder=seed_engine.embedder, progress=False
    )

    assert (report.read, report.added, report.updated) == (0, 0, 0)
    assert [problem.entry for problem in report.skipped] == [
        f"line {number}" for number in range(1, 7)
    ]
    assert snapshot(store) == before


@pytest.mark.parametrize("rebuild", [False, True], ids=["add", "rebuild"])
def test_an_unreadable_file_stops_before_touching_the_store(
    seeded_store, tmp_path, rebuild
):
    chosen, store = seeded_store
    before = snapshot(store)
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"abstract": "We study Y. It works."}), "utf-8")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"abstract": "Jos\xe9 studies Z."}\n'.encode("latin-1"))

    with pytest.raises(CorpusError, match="latin.jsonl.*UTF-8"):
        ingest([good, latin], chosen, store=None, rebuild=rebuild, progress=False)

    assert snapshot(open_store(chosen.store, store.model_identity)) == before


def test_good_entries_among_bad_ones_are_added_and_nothing_is_lost(
    seeded_store, tmp_path, seed_engine
):
    chosen, store = seeded_store
    before = snapshot(store)
    good = {"id": "reliability-good", "abstract": "We study quokkas. It works."}
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([*bad_lines(), json.dumps(good)]), encoding="utf-8")

    report = ingest(
        [path], chosen, store=store, embedder=seed_engine.embedder, progress=False
    )

    after = snapshot(store)
    assert report.added == 1 and len(report.skipped) == len(bad_lines())
    assert set(after["papers"]) == set(before["papers"]) | {good["id"]}
    for key in ("papers", "hashes", "titles"):
        kept = {pid: value for pid, value in after[key].items() if pid != good["id"]}
        assert kept == before[key]
    assert after["sentences"] - before["sentences"] == Counter(
        {(good["id"], "We study quokkas."): 1, (good["id"], "It works."): 1}
    )


# ---------------------------------------------------------------------------
# Config: properties and the app's own entry point

GROUPS = list(Settings.model_fields)
TOML_VALUES = (
    st.integers(-(2**31), 2**31)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=12)
    | st.lists(st.text("abc/.", max_size=5), max_size=3)
)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def known_keys(group: str) -> list[str]:
    return list(Settings.model_fields[group].annotation.model_fields)


@st.composite
def config_tables(draw) -> dict[str, dict]:
    """A few groups, each with real or misspelt keys and values of any type."""
    tables = {}
    for group in draw(st.lists(st.sampled_from(GROUPS + ["stroe"]), max_size=3)):
        keys = known_keys(group) if group in GROUPS else ["port"]
        names = st.sampled_from(keys) | st.sampled_from(["nope", "Port", "k2"])
        tables[group] = draw(st.dictionaries(names, TOML_VALUES, max_size=3))
    return tables


@settings(max_examples=80, deadline=None)
@given(tables=config_tables())
def test_any_config_loads_or_names_each_bad_key(tables):
    text = "".join(
        f"[{group}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())
        for group, keys in tables.items()
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.toml"
        path.write_text(text, encoding="utf-8")
        try:
            load_settings(path, environ={})
        except ConfigError as exc:
            message = str(exc)
        else:
            return

    unknown = [group for group in tables if group not in GROUPS] + [
        f"{group}.{key}"
        for group, keys in tables.items()
        for key in keys
        if group in GROUPS and key not in known_keys(group)
    ]
    drawn = [f"{group}.{key}" for group, keys in tables.items() for key in keys]
    assert all(name in message for name in unknown), message
    assert any(name in message for name in drawn + unknown), message


@settings(max_examples=60, deadline=None)
@given(content=st.binary(max_size=200))
def test_any_bytes_as_a_config_file_load_or_name_the_file(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bytes.toml"
        path.write_bytes(content)
        try:
            load_settings(path, environ={})
        except ConfigError as exc:
            assert "bytes.toml" in str(exc) or "setting" in str(exc)


@pytest.mark.parametrize(
    "content, fix",
    [
        (None, "point --config or RAG_CONFIG at a readable TOML file"),
        (b'[store]\nhost = "\xff"\n', "save the file as UTF-8"),
        (b"[store\n", "config/default.toml shows the format"),
    ],
    ids=["folder", "not-utf-8", "bad-toml"],
)
def test_unreadable_config_messages_say_the_fix(tmp_path, content, fix):
    path = tmp_path / "settings.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)

    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"RAG_CONFIG": str(path)})

    assert str(path) in str(raised.value) and fix in str(raised.value)


@pytest.mark.parametrize(
    "toml", ["[ui]\nport = 0\n", "[ui]\nconcurrency = 'many'\n", "[ui]\nhots = 1\n"]
)
def test_the_app_refuses_bad_ui_settings_before_serving(tmp_path, capsys, toml):
    from ui.app import main

    path = tmp_path / "ui.toml"
    path.write_text(toml, encoding="utf-8")

    assert main(["--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "ui." in error
    assert "Traceback" not in error
