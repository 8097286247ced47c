"""Tests of rag.corpus: the seed format, JSONL, CSV, BibTeX and the metadata join."""

from __future__ import annotations

import csv
import json
import logging
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.corpus import (
    ReadResult,
    load_metadata,
    paper_id,
    papers_from_inputs,
    read_papers,
    read_seed_text,
)
from rag.errors import CorpusError
from rag.types import Paper

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
SEED_ABSTRACTS = SEEDS / "iclr2021_orals_abstracts.txt"
SEED_METADATA = SEEDS / "iclr2021_orals_metadata.tsv"

FIRST = (
    "We study how sparse attention scales with sequence length. Our method halves "
    "the memory of long-context models without loss of accuracy."
)
SECOND = (
    "Graph networks fail to extrapolate outside their training support. We prove "
    "when they do, and show it on three benchmarks."
)
THIRD = "We propose a new optimiser. It converges twice as fast on image tasks."

METADATA_HEADER = "first_author\ttitle\tvenue\tyear\turl\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_bytes(text.encode("utf-8"))
    return path


def by_first_author(result: ReadResult, name: str) -> Paper:
    return next(paper for paper in result.papers if paper.first_author == name)


@pytest.fixture(scope="module")
def seed() -> ReadResult:
    return read_papers(SEED_ABSTRACTS)


# ---------------------------------------------------------------------------
# The seed corpus


def test_seed_gives_53_papers_in_file_order(seed: ReadResult) -> None:
    assert len(seed.papers) == 53
    assert seed.skipped == []
    assert seed.papers[0].authors == ["Bo ZHAO", "Konda Reddy Mopuri", "Hakan Bilen"]
    assert seed.papers[1].first_author == "Shuo Yang"
    assert seed.papers[-1].first_author == "Colin Wei"


def test_seed_joins_the_two_paragraphs_of_one_abstract(seed: ReadResult) -> None:
    paper = by_first_author(seed, "Huy Tuan Pham")

    first, second = paper.abstract.split("\n\n")
    assert first.startswith("In the mean field regime")
    assert second.startswith("In this work, we prove a global convergence")
    assert paper.authors == ["Huy Tuan Pham", "Phan-Minh Nguyen"]


def test_seed_marks_the_13_cut_off_abstracts(seed: ReadResult) -> None:
    truncated = [paper for paper in seed.papers if paper.truncated]

    assert len(truncated) == 13
    assert all(paper.abstract.endswith("…") for paper in truncated)
    assert not any(
        paper.abstract.endswith("…") for paper in seed.papers if not paper.truncated
    )


def test_seed_splits_author_lists(seed: ReadResult) -> None:
    with_levine = [paper for paper in seed.papers if "Sergey Levine" in paper.authors]
    assert len(with_levine) == 5

    rusch = by_first_author(seed, "T. Konstantin Rusch")
    assert rusch.authors == ["T. Konstantin Rusch", "Siddhartha Mishra"]
    assert by_first_author(seed, "Xiaoxia (Shirley) Wu").authors[1] == "Ethan Dyer"
    assert by_first_author(seed, "Yuan Yin").authors[-1] == "patrick gallinari"
    assert all(name == name.strip() and name for p in seed.papers for name in p.authors)


def test_seed_gets_every_title_from_the_metadata(seed: ReadResult) -> None:
    assert all(paper.title for paper in seed.papers)

    zhao = seed.papers[0]
    assert zhao.title == "Dataset Condensation with Gradient Matching"
    assert zhao.venue == "ICLR 2021 (oral)"
    assert zhao.year == 2021
    assert zhao.url == "https://openreview.net/forum?id=mSAKhLYLSsl"
    assert by_first_author(seed, "Javier Antorán").title.startswith("Getting a CLUE")


def test_seed_ids_are_stable_and_unique(seed: ReadResult) -> None:
    again = read_papers(SEED_ABSTRACTS)

    assert [paper.id for paper in again.papers] == [paper.id for paper in seed.papers]
    assert len({paper.id for paper in seed.papers}) == 53


@pytest.mark.parametrize(
    "relayout",
    [
        lambda text: "\n".join(line for line in text.splitlines() if line.strip()),
        lambda text: text.replace("\n", "\n\n\n"),
        lambda text: text.replace("\n", "\r\n"),
    ],
    ids=["no-blank-lines", "triple-spaced", "crlf"],
)
def test_seed_layout_does_not_change_the_papers(
    seed: ReadResult, relayout, tmp_path: Path
) -> None:
    text = relayout(SEED_ABSTRACTS.read_text(encoding="utf-8"))

    result = read_seed_text(text, tmp_path / "relaid.txt")

    assert [paper.id for paper in result.papers] == [paper.id for paper in seed.papers]
    assert result.skipped == []


def test_seed_heading_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="rag.corpus"):
        read_papers(SEED_ABSTRACTS)

    assert any("Orals" in record.getMessage() for record in caplog.records)


# ---------------------------------------------------------------------------
# Seed format layouts


def test_no_blank_line_between_abstract_and_next_author_line() -> None:
    text = f"Ann Lee, Bo Chen\n\n{FIRST}\nCara Diaz\n\n{SECOND}\n"

    result = read_seed_text(text, "t.txt")

    assert [paper.authors for paper in result.papers] == [
        ["Ann Lee", "Bo Chen"], ["Cara Diaz"]
    ]
    assert [paper.abstract for paper in result.papers] == [FIRST, SECOND]


def test_no_blank_line_between_author_line_and_abstract() -> None:
    text = f"Ann Lee, Bo Chen\n{FIRST}\n\nCara Diaz, Dan Ek\n{SECOND}"

    result = read_seed_text(text, "t.txt")

    assert [paper.abstract for paper in result.papers] == [FIRST, SECOND]
    assert result.skipped == []


def test_many_blank_lines_and_stray_spaces() -> None:
    text = (
        f"\n\n\n  Ann Lee, Bo Chen  \n\n\n\n{FIRST}   \n\n\n\n"
        f"Cara Diaz\n\n\n{SECOND}\n\n"
    )

    result = read_seed_text(text, "t.txt")

    assert [paper.abstract for paper in result.papers] == [FIRST, SECOND]
    assert result.papers[0].authors == ["Ann Lee", "Bo Chen"]


@pytest.mark.parametrize("heading", ["Orals", "Session 2: Posters", "Spotlights"])
def test_heading_lines_are_skipped(heading: str) -> None:
    text = f"{heading}\nAnn Lee, Bo Chen\n\n{FIRST}\n\n{heading}\n\nCara Diaz\n{SECOND}"

    result = read_seed_text(text, "t.txt")

    assert [paper.abstract for paper in result.papers] == [FIRST, SECOND]
    assert result.skipped == []


def test_single_author_paper() -> None:
    result = read_seed_text(f"Javier Antorán\n\n{FIRST}\n", "t.txt")

    assert result.papers[0].authors == ["Javier Antorán"]


def test_crlf_line_endings(tmp_path: Path) -> None:
    text = f"Ann Lee, Bo Chen\r\n\r\n{FIRST}\r\nCara Diaz\r\n{SECOND}\r\n{THIRD}\r\n"

    result = read_papers(write(tmp_path, "crlf.txt", text))

    assert [paper.authors for paper in result.papers] == [
        ["Ann Lee", "Bo Chen"], ["Cara Diaz"]
    ]
    assert result.papers[1].abstract == f"{SECOND}\n\n{THIRD}"
    assert "\r" not in result.papers[0].abstract


def test_trailing_author_line_without_abstract_is_skipped() -> None:
    text = f"Ann Lee, Bo Chen\n\n{FIRST}\n\nCara Diaz, Dan Ek\n"

    result = read_seed_text(text, "t.txt")

    assert len(result.papers) == 1
    assert len(result.skipped) == 1
    assert "line 5" in str(result.skipped[0])
    assert "no abstract" in str(result.skipped[0])


def test_abstract_without_author_line_is_skipped() -> None:
    text = f"{FIRST}\n\nCara Diaz\n\n{SECOND}\n"

    result = read_seed_text(text, "t.txt")

    assert [paper.abstract for paper in result.papers] == [SECOND]
    assert "line 1" in str(result.skipped[0])
    assert "no author line" in str(result.skipped[0])


@pytest.mark.parametrize(
    ("line", "authors"),
    [
        (
            "T. Konstantin Rusch, Siddhartha Mishra",
            ["T. Konstantin Rusch", "Siddhartha Mishra"],
        ),
        ("Coline M Devin, patrick gallinari", ["Coline M Devin", "patrick gallinari"]),
        (
            "Xiaoxia (Shirley) Wu, Ken-Ichi Kawarabayashi",
            ["Xiaoxia (Shirley) Wu", "Ken-Ichi Kawarabayashi"],
        ),
        ("José Miguel Hernández Lobato", ["José Miguel Hernández Lobato"]),
        ("J.-P. O'Neil, Emmanuel d Bezenac,", ["J.-P. O'Neil", "Emmanuel d Bezenac"]),
    ],
)
def test_author_lines_of_many_shapes(line: str, authors: list[str]) -> None:
    result = read_seed_text(f"{line}\n{FIRST}\n", "t.txt")

    assert result.papers[0].authors == authors
    assert result.papers[0].abstract == FIRST


def test_short_sentence_abstract_is_not_taken_for_authors() -> None:
    text = "Ann Lee\nWe prove the bound is tight.\nBo Chen\nThis is the abstract.\n"

    result = read_seed_text(text, "t.txt")

    assert [paper.abstract for paper in result.papers] == [
        "We prove the bound is tight.", "This is the abstract."
    ]


def test_seed_ids_are_content_hashes() -> None:
    result = read_seed_text(f"Ann Lee, Bo Chen\n{FIRST}\n", "t.txt")

    assert result.papers[0].id == paper_id(FIRST, ["Ann Lee", "Bo Chen"])
    assert len(result.papers[0].id) == 16
    shouted = paper_id(f"  {FIRST.upper()} ", ["ANN LEE", "Bo Chen"])
    assert shouted == result.papers[0].id
    assert paper_id(FIRST, ["Ann Lee"]) != result.papers[0].id


def test_repeated_seed_paper_is_kept_once() -> None:
    text = f"Ann Lee\n{FIRST}\n\nAnn Lee\n{FIRST}\n"

    result = read_seed_text(text, "t.txt")

    assert len(result.papers) == 1
    assert result.skipped == []


# ---------------------------------------------------------------------------
# Metadata join


def test_metadata_join_ignores_case_and_accents(tmp_path: Path) -> None:
    write(
        tmp_path,
        "demo_metadata.tsv",
        METADATA_HEADER
        + "Bo Zhao\tDataset Condensation\tICLR 2021\t2021\thttps://x.org/1\n"
        + "Javier Antoran\tGetting a CLUE\tICLR 2021\t2021\thttps://x.org/2\n"
        + "Xiaoxia Wu\tWhen Do Curricula Work?\tICLR 2021\t2021\t\n",
    )
    text = (
        f"Bo ZHAO, Ann Lee\n{FIRST}\nJAVIER ANTORÁN\n{SECOND}\n"
        f"Xiaoxia (Shirley) Wu\n{THIRD}"
    )

    result = read_papers(write(tmp_path, "demo_abstracts.txt", text))

    assert [paper.title for paper in result.papers] == [
        "Dataset Condensation", "Getting a CLUE", "When Do Curricula Work?"
    ]
    assert result.papers[0].year == 2021
    assert result.papers[1].url == "https://x.org/2"
    assert result.papers[2].url is None


def test_unmatched_paper_keeps_no_title_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    row = "Bo Zhao\tA title\tV\t2021\tu\n"
    write(tmp_path, "demo_metadata.tsv", METADATA_HEADER + row)
    text = f"Bo Zhao\n{FIRST}\nCara Diaz\n{SECOND}"
    path = write(tmp_path, "demo_abstracts.txt", text)

    with caplog.at_level(logging.WARNING, logger="rag.corpus"):
        result = read_papers(path)

    assert result.papers[0].title == "A title"
    assert result.papers[1].title is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("Cara Diaz" in message for message in warnings)


def test_single_metadata_file_in_folder_is_found(tmp_path: Path) -> None:
    row = "Cara Diaz\tT\tV\t2020\tu\n"
    write(tmp_path, "other_metadata.tsv", METADATA_HEADER + row)

    result = read_papers(write(tmp_path, "papers.txt", f"Cara Diaz\n{SECOND}"))

    assert result.papers[0].title == "T"


def test_explicit_metadata_path_fills_only_missing_fields(tmp_path: Path) -> None:
    row = "Ann Lee\tFrom TSV\tV\t2020\tu\n"
    tsv = write(tmp_path, "elsewhere.tsv", METADATA_HEADER + row)
    line = json.dumps({"abstract": FIRST, "authors": ["Ann Lee"], "title": "Own title"})
    jsonl = write(tmp_path, "papers.jsonl", line + "\n")

    paper = read_papers(jsonl, metadata_path=tsv).papers[0]

    assert paper.title == "Own title"
    assert (paper.venue, paper.year, paper.url) == ("V", 2020, "u")


def test_load_metadata_keys_rows_by_folded_first_author(tmp_path: Path) -> None:
    tsv = write(
        tmp_path,
        "m_metadata.tsv",
        METADATA_HEADER
        + 'Bo ZHAO\tA "quoted" title\tICLR\t2021\tu\n'
        + "Ann Lee\tOne\tV\tsoon\tu\n"
        + "Ann Lee\tTwo\tV\t2020\tu\n",
    )

    metadata = load_metadata(tsv)

    assert metadata["bo zhao"]["title"] == 'A "quoted" title'
    assert metadata["bo zhao"]["year"] == 2021
    assert "ann lee" not in metadata  # two rows: no way to tell which paper is which


def test_metadata_without_first_author_column(tmp_path: Path) -> None:
    tsv = write(tmp_path, "m_metadata.tsv", "author\ttitle\nAnn\tT\n")

    with pytest.raises(CorpusError, match="first_author.*author, title"):
        load_metadata(tsv)


# ---------------------------------------------------------------------------
# JSONL, CSV and BibTeX round trips

PAPERS = [
    Paper(
        id="lee2021",
        abstract=FIRST,
        authors=["Ann Lee", "José Hernández"],
        title="Sparse Attention, Revisited",
        venue="ICLR 2021",
        year=2021,
        url="https://example.org/lee",
    ),
    Paper(
        id="chen2020",
        abstract=SECOND + " It is cut off …",
        authors=["Bo Chen"],
        title="Extrapolation",
        venue="NeurIPS",
        year=2020,
        url="https://doi.org/10.1000/xyz",
        truncated=True,
    ),
]


def write_jsonl(folder: Path, papers: list[Paper]) -> Path:
    lines = [
        json.dumps({**vars(paper), "truncated": "ignored"}, ensure_ascii=False)
        for paper in papers
    ]
    return write(folder, "papers.jsonl", "\n".join(lines) + "\n")


def write_csv(folder: Path, papers: list[Paper]) -> Path:
    path = folder / "papers.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title", "authors", "year", "venue", "url", "abstract"])
        for p in papers:
            authors = "; ".join(p.authors)
            row = [p.id, p.title, authors, p.year, p.venue, p.url, p.abstract]
            writer.writerow(row)
    return path


def write_bibtex(folder: Path, papers: list[Paper]) -> Path:
    entries = [
        f"@inproceedings{{{p.id},\n"
        f"  title = {{{p.title}}},\n"
        f"  author = {{{' and '.join(p.authors)}}},\n"
        f"  booktitle = {{{p.venue}}},\n"
        f"  year = {{{p.year}}},\n"
        f"  url = {{{p.url}}},\n"
        f"  abstract = {{{p.abstract}}}\n"
        "}\n"
        for p in papers
    ]
    return write(folder, "papers.bib", "\n".join(entries))


@pytest.mark.parametrize("writer", [write_jsonl, write_csv, write_bibtex])
def test_round_trip(tmp_path: Path, writer) -> None:
    result = read_papers(writer(tmp_path, PAPERS))

    assert result.skipped == []
    assert result.papers == PAPERS


def test_jsonl_without_id_gets_content_id(tmp_path: Path) -> None:
    record = {"abstract": FIRST, "authors": "Ann Lee; Bo Chen", "year": "2021"}
    line = json.dumps(record)

    paper = read_papers(write(tmp_path, "a.jsonl", line)).papers[0]

    assert paper.id == paper_id(FIRST, ["Ann Lee", "Bo Chen"])
    assert paper.year == 2021


@pytest.mark.parametrize(
    ("authors", "expected"),
    [
        ("Ann Lee; Bo Chen", ["Ann Lee", "Bo Chen"]),
        ("Lee, Ann; Chen, Bo", ["Ann Lee", "Bo Chen"]),
        ("Lee, Ann and Bo Chen", ["Ann Lee", "Bo Chen"]),
        ("Ann Lee, Bo Chen", ["Ann Lee", "Bo Chen"]),
        (["Ann Lee", " Bo Chen "], ["Ann Lee", "Bo Chen"]),
    ],
)
def test_author_fields(
    tmp_path: Path, authors: str | list[str], expected: list[str]
) -> None:
    line = json.dumps({"abstract": FIRST, "authors": authors})

    assert read_papers(write(tmp_path, "a.jsonl", line)).papers[0].authors == expected


def test_bibtex_names_doi_braces_and_latex(tmp_path: Path) -> None:
    text = (
        "@article{muller2019,\n"
        "  title = {The {BERT} Model},\n"
        '  author = {M{\\"u}ller, J{\\"o}rg and Smith, Ann},\n'
        "  journal = {Journal of Tests},\n"
        "  year = 2019,\n"
        "  doi = {10.1000/abc},\n"
        "  abstract = {We show a {50\\%} gain. It is large.}\n"
        "}\n"
    )

    paper = read_papers(write(tmp_path, "refs.bib", text)).papers[0]

    assert paper.id == "muller2019"
    assert paper.title == "The BERT Model"
    assert paper.authors == ["Jörg Müller", "Ann Smith"]
    assert paper.venue == "Journal of Tests"
    assert paper.year == 2019
    assert paper.url == "https://doi.org/10.1000/abc"
    assert paper.abstract == "We show a 50% gain. It is large."


# ---------------------------------------------------------------------------
# Bad files and bad entries


@pytest.mark.parametrize("name", ["e.txt", "e.jsonl", "e.csv", "e.bib"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(CorpusError, match="file is empty") as caught:
        read_papers(write(tmp_path, name, ""))

    assert name in str(caught.value)


def test_jsonl_entry_without_abstract_names_the_line(tmp_path: Path) -> None:
    lines = [json.dumps({"abstract": FIRST}), "", "", json.dumps({"title": "No text"})]

    result = read_papers(write(tmp_path, "a.jsonl", "\n".join(lines)))

    assert len(result.papers) == 1
    assert str(result.skipped[0]).endswith("line 4: no 'abstract' field")


def test_invalid_json_line_is_skipped_and_others_read(tmp_path: Path) -> None:
    lines = [
        json.dumps({"abstract": FIRST}),
        '{"abstract": "broken',
        json.dumps(["not", "an", "object"]),
        json.dumps({"abstract": SECOND, "year": "last year"}),
        json.dumps({"abstract": THIRD}),
    ]

    result = read_papers(write(tmp_path, "a.jsonl", "\n".join(lines)))

    assert [paper.abstract for paper in result.papers] == [FIRST, THIRD]
    assert len(result.skipped) == 3
    messages = [str(error) for error in result.skipped]
    assert "line 2: not valid JSON" in messages[0]
    assert "line 3: expected a JSON object" in messages[1]
    assert "line 4: year 'last year' is not a whole number" in messages[2]
    assert [error.entry for error in result.skipped] == ["line 2", "line 3", "line 4"]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"abstract": 42}, "'abstract' field must be text"),
        ({"abstract": "   "}, "'abstract' field is empty"),
        ({"abstract": FIRST, "authors": {"name": "Ann"}}, "'authors' must be a list"),
        ({"abstract": FIRST, "title": ["A", "B"]}, "'title' must be text"),
        ({"abstract": FIRST, "year": 2020.5}, "is not a whole number"),
    ],
)
def test_jsonl_bad_field_values(tmp_path: Path, record: dict, message: str) -> None:
    result = read_papers(write(tmp_path, "a.jsonl", json.dumps(record)))

    assert result.papers == []
    assert message in str(result.skipped[0])
    assert result.skipped[0].entry == "line 1"


def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes(f"Jos\xe9 Ruiz\n{FIRST}\n".encode("latin-1"))

    with pytest.raises(CorpusError, match="save it as UTF-8") as caught:
        read_papers(path)

    assert "latin.txt" in str(caught.value)
    assert "0xe9 on line 1" in str(caught.value)


def test_utf8_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"abstract\n{FIRST}\n".encode())

    assert read_papers(path).papers[0].abstract == FIRST


def test_duplicate_id_with_different_text(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "p1", "abstract": FIRST}),
        json.dumps({"id": "p1", "abstract": SECOND}),
        json.dumps({"id": "p1", "abstract": FIRST}),
    ]

    result = read_papers(write(tmp_path, "a.jsonl", "\n".join(lines)))

    assert [paper.abstract for paper in result.papers] == [FIRST]
    assert len(result.skipped) == 1
    assert "duplicate id p1 with different text at line 2" in str(result.skipped[0])
    assert "give each paper its own id" in str(result.skipped[0])


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(CorpusError) as caught:
        read_papers(write(tmp_path, "notes.docx", FIRST))

    message = str(caught.value)
    assert "notes.docx" in message
    assert all(ext in message for ext in (".txt", ".jsonl", ".ndjson", ".csv", ".bib"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="file not found"):
        read_papers(tmp_path / "absent.jsonl")


def test_csv_without_abstract_column_names_its_columns(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="the columns are: title, summary"):
        read_papers(write(tmp_path, "a.csv", "Title,Summary\nA,B\n"))


def test_csv_line_numbers_are_physical_rows(tmp_path: Path) -> None:
    text = (
        f'title,abstract\nA,"{FIRST}\nsecond line"\n'
        f'B,\nC,"{SECOND}",extra\nD,{THIRD}\n'
    )

    result = read_papers(write(tmp_path, "a.csv", text))

    assert [paper.title for paper in result.papers] == ["A", "D"]
    assert [error.entry for error in result.skipped] == ["line 4", "line 5"]
    assert "'abstract' field is empty" in str(result.skipped[0])


def test_bibtex_entry_without_abstract_names_the_key(tmp_path: Path) -> None:
    text = (
        "@article{smith2020, title = {No abstract here}, year = 2020}\n\n"
        f"@article{{lee2021, abstract = {{{FIRST}}}}}\n"
    )

    result = read_papers(write(tmp_path, "refs.bib", text))

    assert [paper.id for paper in result.papers] == ["lee2021"]
    assert "entry smith2020 has no abstract field" in str(result.skipped[0])


def test_bibtex_broken_block_and_repeated_keys(tmp_path: Path) -> None:
    text = (
        f"@article{{a, abstract = {{{FIRST}}}}}\n"
        f"@article{{a, abstract = {{{FIRST}}}}}\n"
        f"@article{{a, abstract = {{{SECOND}}}}}\n"
        "@article{broken, title = {never closed\n"
        f"@article{{b, abstract = {{{THIRD}}}}}\n"
    )

    result = read_papers(write(tmp_path, "refs.bib", text))

    assert [paper.id for paper in result.papers] == ["a", "b"]
    messages = [str(error) for error in result.skipped]
    assert len(messages) == 2
    assert "line 3: duplicate id a with different text" in messages[0]
    assert "line 4: BibTeX block could not be parsed" in messages[1]


# ---------------------------------------------------------------------------
# Several inputs


def test_papers_from_inputs_reads_folders_and_files(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    write(folder, "b.jsonl", json.dumps({"abstract": FIRST}))
    write(folder, "a.csv", f'abstract\n"{SECOND}"\n')
    write(folder, "notes.md", "not a corpus")
    write(folder, "a_metadata.tsv", METADATA_HEADER)
    single = write(tmp_path, "c.txt", f"Ann Lee\n{THIRD}\n")

    results = papers_from_inputs([folder, single])

    assert [result.path.name for result in results] == ["a.csv", "b.jsonl", "c.txt"]
    assert [len(result.papers) for result in results] == [1, 1, 1]


def test_papers_from_inputs_missing_path(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such file or folder"):
        papers_from_inputs([tmp_path / "nowhere"])


# ---------------------------------------------------------------------------
# Properties: any text either reads or fails with a CorpusError naming the file

EXTENSIONS = st.sampled_from([".txt", ".jsonl", ".csv", ".bib"])
FRAGMENTS = st.sampled_from(
    [
        "Ann Lee, Bo Chen", "Orals", "abstract", "title,abstract", FIRST, "@article{",
        "x, abstract = {", "}", '{"abstract": "', '"}', "…", ",", ";", "\r\n", "\n",
        '"', "{", "author = {Lee, Ann and Chen, Bo},", "year = {20x}", "\ufeff",
    ]
)
MESSY_TEXT = st.lists(FRAGMENTS | st.text(max_size=20), max_size=30).map("".join)


def check_reads_or_names_file(text: str, extension: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{extension}"
        path.write_bytes(text.encode("utf-8"))
        try:
            result = read_papers(path)
        except CorpusError as exc:
            assert path.name in str(exc)
            return

    assert isinstance(result, ReadResult)
    assert all(paper.abstract.strip() and paper.id for paper in result.papers)


@settings(max_examples=60, deadline=None)
@given(text=st.text(), extension=EXTENSIONS)
def test_any_text_reads_or_raises_corpus_error(text: str, extension: str) -> None:
    check_reads_or_names_file(text, extension)


@settings(max_examples=60, deadline=None)
@given(text=MESSY_TEXT, extension=EXTENSIONS)
def test_near_valid_text_reads_or_raises_corpus_error(
    text: str, extension: str
) -> None:
    check_reads_or_names_file(text, extension)


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(
        st.dictionaries(
            st.sampled_from(["abstract", "authors", "year", "id", "title", "url"]),
            st.none() | st.booleans() | st.integers() | st.floats() | st.text()
            | st.lists(st.text(max_size=5), max_size=3),
        ),
        max_size=5,
    )
)
def test_any_jsonl_records_read_or_are_skipped(records: list[dict]) -> None:
    text = "\n".join(json.dumps(record) for record in records)
    check_reads_or_names_file(text, ".jsonl")
