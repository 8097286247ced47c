"""Readers that turn files of abstracts into ``Paper`` objects.

Four formats are read: the seed text format (author line, then abstract
paragraphs), JSON Lines, CSV and BibTeX. A file that cannot be read at all raises
``CorpusError``; an invalid entry in a readable file is skipped and reported in
``ReadResult.skipped`` while the valid entries around it are kept.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bibtexparser
from bibtexparser import Library
from bibtexparser.middlewares import LatexDecodingMiddleware
from bibtexparser.model import (
    Block,
    DuplicateBlockKeyBlock,
    DuplicateFieldKeyBlock,
    Entry,
    MiddlewareErrorBlock,
    ParsingFailedBlock,
)

from rag.errors import CorpusError
from rag.text import fold
from rag.types import Paper

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS = (".bib", ".csv", ".jsonl", ".ndjson", ".txt")
METADATA_SUFFIX = "_metadata.tsv"
METADATA_FIELDS = ("title", "venue", "year", "url")
TRUNCATION_MARKS = ("…", "...")

# Seed format: what an author line may look like.
MAX_AUTHOR_LINE = 400
MAX_NAME_TOKENS = 6
MAX_HEADING_LINE = 100
_NAME_TOKEN = re.compile(r"^\(?[^\W\d_]+(?:[-'’.]+[^\W\d_]+)*\.?\)?$")
_NOT_IN_NAMES = re.compile(r"[\d:;!?\"“”=/\\@#$%^&*+<>\[\]{}|_~]")
# Words that occur in sentences but not in personal names.
_SENTENCE_WORDS = frozenset(
    {
        "the", "we", "our", "is", "are", "was", "were", "this", "that", "these",
        "those", "of", "for", "with", "which",
    }
)
_SENTENCE_END = (".", "!", "?", "…", ",", ";")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_AUTHOR_AND = re.compile(r"\s+and\s+")
_BRACES = re.compile(r"[{}]")


@dataclass
class ReadResult:
    """The papers read from one file and the entries that were skipped."""

    papers: list[Paper]
    skipped: list[CorpusError]
    path: Path


class _InvalidEntry(Exception):
    """One entry of a file is unusable; the reader skips it and goes on."""


# ---------------------------------------------------------------------------
# Public entry points


def read_papers(
    path: str | Path, metadata_path: str | Path | None = None
) -> ReadResult:
    """Read one file of abstracts, choosing the reader by its extension.

    Seed text files are joined with a ``*_metadata.tsv`` beside them; an explicit
    ``metadata_path`` is joined with any format and fills only missing fields.
    """
    path = Path(path)
    reader = _reader_for(path)
    text = _read_text(path)
    result = reader(text, path)

    metadata_file = _metadata_for(path, metadata_path)
    if metadata_file is not None:
        _join_metadata(result.papers, load_metadata(metadata_file), metadata_file)

    _log_summary(result)
    return result


def papers_from_inputs(
    paths: str | Path | Iterable[str | Path],
    metadata_path: str | Path | None = None,
) -> list[ReadResult]:
    """Read files and folders; a folder gives every supported file in it, sorted."""
    if isinstance(paths, (str, Path)):
        paths = [paths]

    files = [file for path in paths for file in _expand_input(Path(path))]
    return [read_papers(file, metadata_path) for file in files]


def paper_id(abstract: str, authors: list[str]) -> str:
    """A stable id from the content: re-reading a file gives the same ids.

    Case, accents and whitespace are folded away so trivial edits keep the id.
    """
    key = fold(abstract) + "\x1f" + "\x1e".join(fold(name) for name in authors)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def load_metadata(tsv_path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a metadata TSV into rows keyed by their folded first author.

    Columns: first_author, title, venue, year, url. A first author listed on
    several rows cannot be matched to one paper, so such rows are left out.
    """
    path = Path(tsv_path)
    rows = _metadata_rows(_read_text(path), path)

    by_author: dict[str, list[dict[str, Any]]] = {}
    for author, row in rows:
        by_author.setdefault(_author_key(author), []).append(row)

    metadata = {}
    for key, matches in by_author.items():
        if len(matches) > 1:
            logger.warning(
                "%s lists first author %r on %d rows; those papers get no metadata",
                path, key, len(matches),
            )
            continue
        metadata[key] = matches[0]
    return metadata


# ---------------------------------------------------------------------------
# Files: finding, decoding, dispatching


def _reader_for(path: Path) -> Callable[[str, Path], ReadResult]:
    readers: dict[str, Callable[[str, Path], ReadResult]] = {
        ".txt": read_seed_text,
        ".jsonl": _read_jsonl,
        ".ndjson": _read_jsonl,
        ".csv": _read_csv,
        ".bib": _read_bibtex,
    }
    extension = path.suffix.lower()
    if extension not in readers:
        found = f"'{extension}'" if extension else "no extension"
        raise CorpusError(
            f"unsupported file type ({found}); use one of "
            + ", ".join(SUPPORTED_EXTENSIONS),
            path=str(path),
        )
    return readers[extension]


def _read_text(path: Path) -> str:
    """The file's text; an unreadable, empty or non-UTF-8 file raises CorpusError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError("file not found; check the path", path=str(path)) from None
    except OSError as exc:
        raise CorpusError(f"cannot read the file ({exc.strerror})", path=str(path))

    if not data:
        raise CorpusError("file is empty; put at least one entry in it", path=str(path))

    text = _decode(data, path)
    if not text.strip():
        raise CorpusError("file is empty (only blank lines)", path=str(path))
    return text


def _decode(data: bytes, path: Path) -> str:
    # utf-8-sig reads plain UTF-8 too and drops the byte-order mark some Windows
    # editors write first. Guessing latin-1 instead would garble text silently.
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CorpusError(
            f"byte 0x{data[exc.start]:02x} on line {line} is not UTF-8 text; save "
            "it as UTF-8 (most editors offer this under Save As, encoding)",
            path=str(path),
        ) from None


def _expand_input(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(
            file
            for file in path.iterdir()
            if file.is_file()
            and file.suffix.lower() in SUPPORTED_EXTENSIONS
            and not file.name.endswith(METADATA_SUFFIX)
        )
        if not files:
            raise CorpusError(
                "folder holds no files of abstracts; supported: "
                + ", ".join(SUPPORTED_EXTENSIONS),
                path=str(path),
            )
        return files

    if not path.exists():
        raise CorpusError("no such file or folder; check the path", path=str(path))
    return [path]


def _lines(text: str) -> list[str]:
    # Split only on real line ends: JSON text may hold U+2028, which splitlines()
    # would treat as one.
    return _NEWLINE.split(text)


def _log_summary(result: ReadResult) -> None:
    logger.info(
        "read %d papers from %s (%d skipped)",
        len(result.papers), result.path, len(result.skipped),
    )
    if result.skipped:
        logger.warning(
            "%d invalid entries skipped in %s; the first: %s",
            len(result.skipped), result.path, result.skipped[0],
        )


# ---------------------------------------------------------------------------
# Gathering papers of one file


class _Collector:
    """Gathers the papers of one file, merging repeats and refusing id clashes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.papers: list[Paper] = []
        self.skipped: list[CorpusError] = []
        self._texts: dict[str, str] = {}

    def add(self, paper: Paper, entry: str) -> None:
        text = " ".join(paper.abstract.split())
        known = self._texts.get(paper.id)

        if known is None:
            self._texts[paper.id] = text
            self.papers.append(paper)
        elif known == text:
            logger.debug("%s, %s repeats %s; kept once", self.path, entry, paper.id)
        else:
            self.skip(
                f"duplicate id {paper.id} with different text at {entry}; "
                "give each paper its own id",
                entry,
            )

    def skip(self, message: str, entry: str | None) -> None:
        self.skipped.append(CorpusError(message, path=str(self.path), entry=entry))

    def result(self) -> ReadResult:
        return ReadResult(papers=self.papers, skipped=self.skipped, path=self.path)


def _is_truncated(abstract: str) -> bool:
    return abstract.rstrip().endswith(TRUNCATION_MARKS)


# ---------------------------------------------------------------------------
# The seed text format


@dataclass
class _Line:
    number: int
    text: str
    kind: str  # "author", "text" or "heading"


def read_seed_text(text: str, path: str | Path) -> ReadResult:
    """Read the seed format: an author line, then one or more abstract paragraphs.

    Blank lines are optional anywhere. Lines are told apart by their look, not
    their position: an author line is a short list of names, a text line holds
    sentences. A short line followed directly by an author line is a heading.
    """
    collector = _Collector(Path(path))
    lines = _classify(text)

    index = 0
    while index < len(lines):
        index = _read_seed_block(lines, index, collector)
    return collector.result()


def _classify(text: str) -> list[_Line]:
    lines = [
        _Line(number, line.strip(), "author" if _is_author_line(line) else "text")
        for number, line in enumerate(_lines(text), start=1)
        if line.strip()
    ]

    # Only after the first pass is it known which line comes next.
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else None
        previous = lines[index - 1] if index > 0 else None
        before_authors = following is not None and following.kind == "author"
        after_authors = previous is not None and previous.kind == "author"
        if before_authors and not after_authors and _looks_like_heading(line):
            line.kind = "heading"
    return lines


def _is_author_line(line: str) -> bool:
    line = line.strip()
    if len(line) > MAX_AUTHOR_LINE or _NOT_IN_NAMES.search(line):
        return False

    names = [part.strip() for part in line.split(",") if part.strip()]
    return bool(names) and all(_is_name(name) for name in names)


def _is_name(part: str) -> bool:
    tokens = part.split()
    if not 1 <= len(tokens) <= MAX_NAME_TOKENS:
        return False
    if any(token.casefold() in _SENTENCE_WORDS for token in tokens):
        return False
    return all(_is_name_token(token) for token in tokens)


def _is_name_token(token: str) -> bool:
    if not _NAME_TOKEN.match(token):
        return False
    # A period may close an initial ("T.") or "Jr.", not a longer word ("data.").
    last_part = re.split(r"[-'’.]+", token.strip("()").rstrip("."))[-1]
    return not token.endswith(".") or len(last_part) <= 3


def _looks_like_heading(line: _Line) -> bool:
    if line.kind == "author":
        return "," not in line.text
    return len(line.text) <= MAX_HEADING_LINE and not line.text.endswith(_SENTENCE_END)


def _read_seed_block(lines: list[_Line], index: int, collector: _Collector) -> int:
    """Read the block that starts at ``lines[index]``; return where the next starts."""
    line = lines[index]
    entry = f"line {line.number}"

    if line.kind == "heading":
        logger.debug("%s, %s: skipped heading %r", collector.path, entry, line.text)
        return index + 1

    if line.kind == "text":
        collector.skip(
            "abstract with no author line before it; put the authors on the line "
            "above it, separated by commas",
            entry,
        )
        return _paragraphs_end(lines, index)

    end = _paragraphs_end(lines, index + 1)
    if end == index + 1:
        collector.skip(
            f"author line {line.text[:60]!r} has no abstract after it; add the "
            "abstract below it or remove the line",
            entry,
        )
        return end

    paragraphs = [paragraph.text for paragraph in lines[index + 1 : end]]
    collector.add(_seed_paper(line.text, paragraphs), entry)
    return end


def _paragraphs_end(lines: list[_Line], start: int) -> int:
    end = start
    while end < len(lines) and lines[end].kind == "text":
        end += 1
    return end


def _seed_paper(author_line: str, paragraphs: list[str]) -> Paper:
    authors = [name.strip() for name in author_line.split(",") if name.strip()]
    abstract = "\n\n".join(paragraphs)
    return Paper(
        id=paper_id(abstract, authors),
        abstract=abstract,
        authors=authors,
        truncated=_is_truncated(abstract),
    )


# ---------------------------------------------------------------------------
# JSON Lines and CSV: one record of named fields per entry


def _read_jsonl(text: str, path: Path) -> ReadResult:
    collector = _Collector(path)

    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        entry = f"line {number}"
        try:
            paper = _paper_from_fields(_json_object(line))
        except _InvalidEntry as exc:
            collector.skip(str(exc), entry)
            continue
        collector.add(paper, entry)

    return collector.result()


def _json_object(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _InvalidEntry(
            f"not valid JSON: {exc.msg} (column {exc.colno}); each line must "
            "hold one JSON object"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise _InvalidEntry(f"not valid JSON ({exc})") from None

    if not isinstance(value, dict):
        raise _InvalidEntry(
            f"expected a JSON object {{...}}, found {type(value).__name__}"
        )
    _check_characters(value)
    return value


def _check_characters(value: dict[str, Any]) -> None:
    """Refuse an escape such as "\\ud800" that names no character: no text
    holding one can be hashed, embedded or stored."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise _InvalidEntry(
            "holds a \\u escape that is no character (a lone surrogate such as "
            "\\ud800); fix or remove that escape"
        ) from None


def _read_csv(text: str, path: Path) -> ReadResult:
    collector = _Collector(path)
    rows = _csv_rows(text, path)

    # Blank rows carry nothing, before the header or after it.
    rows = ((number, row) for number, row in rows if any(c.strip() for c in row))
    header = _csv_header(next(rows, None), path)
    for number, row in rows:
        entry = f"line {number}"
        try:
            paper = _paper_from_fields(_csv_record(header, row))
        except _InvalidEntry as exc:
            collector.skip(str(exc), entry)
            continue
        collector.add(paper, entry)

    return collector.result()


def _csv_rows(text: str, path: Path) -> Iterator[tuple[int, list[str]]]:
    """Rows with the physical line each starts on (the header is line 1)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise CorpusError(
            f"not readable as CSV ({exc}); check the quoting", path=str(path),
            entry=f"line {reader.line_num}",
        ) from None


def _csv_header(first: tuple[int, list[str]] | None, path: Path) -> list[str]:
    header = [name.strip().lower() for name in first[1]] if first else []
    if "abstract" not in header:
        columns = ", ".join(name for name in header if name) or "none"
        raise CorpusError(
            f"no 'abstract' column (the columns are: {columns}); the first row "
            "must name the columns, one of them abstract",
            path=str(path),
        )
    return header


def _csv_record(header: list[str], row: list[str]) -> dict[str, str]:
    if len(row) > len(header):
        raise _InvalidEntry(
            f"{len(row)} cells but the header names {len(header)} columns; "
            "quote values that contain commas"
        )
    return dict(zip(header, row))


def _paper_from_fields(fields: dict[str, Any]) -> Paper:
    """A paper from named fields; an unusable value raises _InvalidEntry."""
    fields = {str(key).strip().lower(): value for key, value in fields.items()}
    if "abstract" not in fields:
        raise _InvalidEntry("no 'abstract' field")

    if not isinstance(fields["abstract"], str):
        found = type(fields["abstract"]).__name__
        raise _InvalidEntry(f"the 'abstract' field must be text, found {found}")

    abstract = fields["abstract"].strip()
    if not abstract:
        raise _InvalidEntry("the 'abstract' field is empty")

    authors = _authors(fields.get("authors", fields.get("author")))
    return Paper(
        id=_text_field(fields, "id") or paper_id(abstract, authors),
        abstract=abstract,
        authors=authors,
        title=_text_field(fields, "title"),
        venue=_text_field(fields, "venue"),
        year=_year(fields.get("year")),
        url=_text_field(fields, "url"),
        truncated=_is_truncated(abstract),
    )


def _text_field(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _InvalidEntry(f"'{name}' must be text, found {type(value).__name__}")
    return str(value).strip() or None


def _year(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,4}\s*", value):
        return int(value)
    raise _InvalidEntry(f"year {value!r} is not a whole number such as 2021")


def _authors(value: Any) -> list[str]:
    """Author names from a list, or a string split on ";", " and " or ","."""
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return [name.strip() for name in value if name.strip()]
    if not isinstance(value, str):
        raise _InvalidEntry(
            "'authors' must be a list of names or text such as \"Ann Lee; Bo Chen\""
        )

    if ";" in value:
        names = [_first_last(name) for name in value.split(";")]
    elif _AUTHOR_AND.search(value):
        names = [_first_last(name) for name in _AUTHOR_AND.split(value)]
    else:
        names = value.split(",")
    return [name.strip() for name in names if name.strip()]


def _first_last(name: str) -> str:
    """Turn the bibliographic "Last, First" into "First Last"."""
    last, comma, first = name.partition(",")
    if not comma or "," in first:
        return name.strip()
    return f"{first.strip()} {last.strip()}".strip()


# ---------------------------------------------------------------------------
# BibTeX


def _read_bibtex(text: str, path: Path) -> ReadResult:
    collector = _Collector(path)
    library = _parse_bibtex(text, path)

    for block in library.blocks:
        entry = _usable_entry(block)
        if entry is not None:
            _add_bibtex_entry(entry, collector)
        elif isinstance(block, ParsingFailedBlock):
            collector.skip(_failed_block_message(block), _block_line(block))
    return collector.result()


def _parse_bibtex(text: str, path: Path) -> Library:
    # LaTeX decoding turns {\"o} into ö, so names match and read as written.
    try:
        return bibtexparser.parse_string(
            text, append_middleware=[LatexDecodingMiddleware()]
        )
    except Exception as exc:
        # Bad blocks normally land in failed_blocks, but a few malformed inputs
        # still raise from inside bibtexparser; either way the file is unusable.
        raise CorpusError(
            f"not readable as BibTeX ({type(exc).__name__}: {exc})", path=str(path)
        ) from None


def _usable_entry(block: Block) -> Entry | None:
    """The entry a block holds, including repeated keys and undecodable LaTeX."""
    if isinstance(block, Entry):
        return block

    # A repeated key is judged like any repeated id: merged when the text is the
    # same, refused when not. An entry whose LaTeX cannot be decoded keeps it raw.
    if isinstance(block, (DuplicateBlockKeyBlock, MiddlewareErrorBlock)):
        inner = block.ignore_error_block
        return inner if isinstance(inner, Entry) else None
    return None


def _add_bibtex_entry(entry: Entry, collector: _Collector) -> None:
    label = _block_line(entry) or f"entry {entry.key}"
    try:
        paper = _bibtex_paper(entry)
    except _InvalidEntry as exc:
        collector.skip(str(exc), label)
        return
    collector.add(paper, label)


def _bibtex_paper(entry: Entry) -> Paper:
    fields = {
        key.lower(): _clean_bibtex(field.value)
        for key, field in entry.fields_dict.items()
    }
    abstract = fields.get("abstract")
    if not abstract:
        raise _InvalidEntry(
            f"entry {entry.key} has no abstract field; add abstract = {{...}}"
        )

    names = _AUTHOR_AND.split(fields.get("author", ""))
    authors = [_first_last(name) for name in names if name.strip()]
    try:
        year = _year(fields.get("year"))
    except _InvalidEntry as exc:
        raise _InvalidEntry(f"entry {entry.key}: {exc}") from None

    return Paper(
        id=entry.key.strip() or paper_id(abstract, authors),
        abstract=abstract,
        authors=authors,
        title=fields.get("title") or None,
        venue=fields.get("journal") or fields.get("booktitle") or None,
        year=year,
        url=_bibtex_url(fields),
        truncated=_is_truncated(abstract),
    )


def _clean_bibtex(value: Any) -> str:
    """Drop the braces BibTeX uses to protect case, and collapse whitespace."""
    return " ".join(_BRACES.sub("", str(value)).split())


def _bibtex_url(fields: dict[str, str]) -> str | None:
    if fields.get("url"):
        return fields["url"]
    doi = fields.get("doi", "").removeprefix("doi:").strip()
    if not doi:
        return None
    if doi.startswith("http"):
        return doi
    return f"https://doi.org/{doi}"


def _block_line(block: Block) -> str | None:
    # bibtexparser counts lines from 0.
    start = getattr(block, "start_line", None)
    return f"line {start + 1}" if isinstance(start, int) else None


def _failed_block_message(block: ParsingFailedBlock) -> str:
    if isinstance(block, DuplicateFieldKeyBlock):
        repeated = ", ".join(sorted(block.duplicate_keys))
        return f"a BibTeX entry sets {repeated} more than once; keep one of each"

    error = block.error
    reason = getattr(error, "abort_reason", None) or str(error)
    reason = f" ({reason.strip()})" if reason.strip() else ""
    return f"BibTeX block could not be parsed{reason}; check its braces and commas"


# ---------------------------------------------------------------------------
# Metadata joined by first author


def _metadata_for(path: Path, metadata_path: str | Path | None) -> Path | None:
    if metadata_path is not None:
        return Path(metadata_path)
    if path.suffix.lower() != ".txt":
        return None
    return _metadata_beside(path)


def _metadata_beside(path: Path) -> Path | None:
    """``foo_metadata.tsv`` for ``foo_abstracts.txt``, else the folder's only one."""
    base = path.stem.removesuffix("_abstracts")
    sibling = path.with_name(base + METADATA_SUFFIX)
    if sibling.is_file():
        return sibling

    found = sorted(path.parent.glob("*" + METADATA_SUFFIX))
    if len(found) == 1:
        return found[0]
    if found:
        logger.warning(
            "%d metadata files beside %s and none named after it; pass "
            "metadata_path to choose one",
            len(found), path,
        )
    return None


def _metadata_rows(text: str, path: Path) -> list[tuple[str, dict[str, Any]]]:
    # Titles may hold quote marks, so quotes carry no meaning in this TSV.
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE
    )
    header = [name.strip().lower() for name in next(reader, [])]
    if "first_author" not in header:
        raise CorpusError(
            "no 'first_author' column (the columns are: "
            f"{', '.join(header) or 'none'}); expected first_author, title, venue, "
            "year, url separated by tabs",
            path=str(path),
        )

    rows = []
    for cells in reader:
        record = dict(zip(header, (cell.strip() for cell in cells)))
        author = record.get("first_author", "")
        if author:
            rows.append((author, _metadata_row(record, path, reader.line_num)))
    return rows


def _metadata_row(record: dict[str, str], path: Path, line: int) -> dict[str, Any]:
    row: dict[str, Any] = {name: record.get(name) or None for name in METADATA_FIELDS}
    try:
        row["year"] = _year(row["year"])
    except _InvalidEntry as exc:
        logger.warning("%s, line %d: %s; the year is left empty", path, line, exc)
        row["year"] = None
    return row


def _author_key(name: str) -> str:
    """Fold a name for matching: "Xiaoxia (Shirley) Wu" matches "xiaoxia wu"."""
    without_nickname = re.sub(r"\([^)]*\)", " ", name)
    return " ".join(re.sub(r"[^\w\s]", " ", fold(without_nickname)).split())


def _join_metadata(
    papers: list[Paper], metadata: dict[str, dict[str, Any]], source: Path
) -> None:
    """Fill missing title, venue, year and url from the first author's row."""
    for paper in papers:
        row = metadata.get(_author_key(paper.first_author or ""))
        if row is None:
            if paper.title is None:
                logger.warning(
                    "no row in %s for the paper %s by %s; it stays without title",
                    source, paper.id, paper.first_author or "unknown authors",
                )
            continue

        for name in METADATA_FIELDS:
            if getattr(paper, name) is None:
                setattr(paper, name, row[name])
