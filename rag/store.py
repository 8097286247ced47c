"""The Chroma store of abstracts and of their sentences, on disk or on a server.

Three collections share one base name: ``<name>`` holds one vector per paper and
its metadata, ``<name>_sentences`` one vector per abstract sentence (the evidence
the answerer quotes), ``<name>_titles`` one vector per title. All record the
embedding model that built them, so a query with another model fails loudly
instead of comparing incompatible vectors.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from rag.errors import EmbeddingModelMismatchError, StoreError, StoreUnreachableError
from rag.settings import StoreSettings
from rag.types import Paper

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

# Chroma reports usage by default; this product never phones home.
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

MODEL_KEY = "embedding_model"
SENTENCE_SUFFIX = "_sentences"
TITLE_SUFFIX = "_titles"
# Chroma caps the rows of one call; stay well below it.
_MAX_ROWS_PER_CALL = 2000


@dataclass
class SentenceRows:
    """Sentence texts, vectors and owners, aligned by position."""

    paper_ids: list[str]
    texts: list[str]
    vectors: np.ndarray


class Store:
    """Papers and sentences in Chroma; the same code for disk and server."""

    def __init__(self, settings: StoreSettings, model_identity: str):
        self.settings = settings
        self.model_identity = model_identity
        self._client = _connect(settings)
        self.papers = self._open(settings.collection)
        self.sentences = self._open(settings.collection + SENTENCE_SUFFIX)
        self.titles = self._open(settings.collection + TITLE_SUFFIX)

    @property
    def location(self) -> str:
        if self.settings.mode == "server":
            return f"Chroma server http://{self.settings.host}:{self.settings.port}"
        return f"Chroma on disk at {self.settings.data_dir.resolve()}"

    def count(self) -> int:
        return self._call(self.papers.count)

    def stored_hashes(self, ids: list[str]) -> dict[str, str]:
        """Content hashes of the papers among ``ids`` that are already stored."""
        found = self._call(self.papers.get, ids=ids, include=["metadatas"])
        return {
            paper_id: metadata.get("content_hash", "")
            for paper_id, metadata in zip(found["ids"], found["metadatas"])
        }

    def upsert(
        self,
        papers: list[Paper],
        hashes: list[str],
        paper_vectors: np.ndarray,
        sentences: SentenceRows,
        title_vectors: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Store papers with their sentences and titles; those first, so a stored
        paper always has them even if the process dies between the calls."""
        ids = [paper.id for paper in papers]
        self._call(self.sentences.delete, where={"paper_id": {"$in": ids}})
        for start in range(0, len(sentences.texts), _MAX_ROWS_PER_CALL):
            self._upsert_sentences(sentences, start)
        if title_vectors:
            self._upsert_titles(papers, title_vectors)

        self._call(
            self.papers.upsert,
            ids=ids,
            embeddings=paper_vectors,
            documents=[paper.abstract for paper in papers],
            metadatas=[_paper_metadata(p, h) for p, h in zip(papers, hashes)],
        )

    def query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """The ``n`` nearest papers as (id, cosine similarity), best first."""
        return self._nearest(self.papers, vector, n)

    def query_sentences(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """The papers owning the ``n`` nearest sentences, as (paper id, best
        sentence similarity), best first."""
        # The owner is read from the row id ("<paper id>:<position>"): fetching
        # metadata as well made this query twice as slow.
        best: dict[str, float] = {}
        for row_id, similarity in self._nearest(self.sentences, vector, n):
            best.setdefault(sentence_owner(row_id), similarity)
        return list(best.items())

    def query_titles(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """The papers with the ``n`` nearest titles, as (id, similarity)."""
        return self._nearest(self.titles, vector, n)

    def _nearest(self, collection, vector, n: int) -> list[tuple[str, float]]:
        """Row ids of the ``n`` nearest rows with their cosine similarity."""
        # Chroma returns what it has when asked for more, so no count() first:
        # each call is a round trip (up to 15 ms to a busy server).
        if n <= 0:
            return []
        result = self._call(
            collection.query,
            query_embeddings=[vector],
            n_results=n,
            include=["distances"],
        )
        return [
            (row_id, 1.0 - distance)
            for row_id, distance in zip(result["ids"][0], result["distances"][0])
        ]

    def all_papers(self) -> list[Paper]:
        """Every stored paper, in a stable order (by id)."""
        papers: list[Paper] = []
        total = self.count()
        for offset in range(0, total, _MAX_ROWS_PER_CALL):
            page = self._call(
                self.papers.get,
                include=["documents", "metadatas"],
                limit=_MAX_ROWS_PER_CALL,
                offset=offset,
            )
            papers.extend(_rows_to_papers(page))
        return sorted(papers, key=lambda paper: paper.id)

    def get_papers(self, ids: list[str]) -> list[Paper]:
        page = self._call(self.papers.get, ids=ids, include=["documents", "metadatas"])
        by_id = {paper.id: paper for paper in _rows_to_papers(page)}
        return [by_id[paper_id] for paper_id in ids if paper_id in by_id]

    def all_sentences(self) -> SentenceRows:
        """Every stored sentence with its vector, ordered by paper and position."""
        import numpy as np

        rows: list[tuple[str, int, str, Any]] = []
        total = self._call(self.sentences.count)
        for offset in range(0, total, _MAX_ROWS_PER_CALL):
            page = self._call(
                self.sentences.get,
                include=["documents", "metadatas", "embeddings"],
                limit=_MAX_ROWS_PER_CALL,
                offset=offset,
            )
            for metadata, text, vector in zip(
                page["metadatas"], page["documents"], page["embeddings"]
            ):
                rows.append((metadata["paper_id"], metadata["position"], text, vector))

        rows.sort(key=lambda row: (row[0], row[1]))
        matrix = np.asarray([row[3] for row in rows], dtype=np.float32)
        # An empty store has no vector width to infer: (0, 0), not a reshape error.
        shape = (len(rows), -1) if rows else (0, 0)
        return SentenceRows(
            paper_ids=[row[0] for row in rows],
            texts=[row[2] for row in rows],
            vectors=matrix.reshape(shape),
        )

    def _open(self, name: str):
        collection = self._call(
            self._client.get_or_create_collection,
            name=name,
            metadata={MODEL_KEY: self.model_identity, "hnsw:space": "cosine"},
            embedding_function=None,
        )
        built_with = (collection.metadata or {}).get(MODEL_KEY)
        if built_with and built_with != self.model_identity:
            raise EmbeddingModelMismatchError(
                f"collection '{name}' in {self.location} was built with embedding "
                f"model '{built_with}', but '{self.model_identity}' is configured; "
                f"re-ingest with `rag ingest --rebuild`, or set [embedding] to the "
                f"model that built it"
            )
        return collection

    def _upsert_sentences(self, rows: SentenceRows, start: int) -> None:
        stop = start + _MAX_ROWS_PER_CALL
        owners = rows.paper_ids[start:stop]
        positions = _positions_within_paper(rows.paper_ids)[start:stop]
        self._call(
            self.sentences.upsert,
            ids=[sentence_id(owner, index) for owner, index in zip(owners, positions)],
            embeddings=rows.vectors[start:stop],
            documents=rows.texts[start:stop],
            metadatas=[
                {"paper_id": owner, "position": index}
                for owner, index in zip(owners, positions)
            ],
        )

    def _upsert_titles(self, papers: list[Paper], vectors: dict) -> None:
        titled = [paper for paper in papers if paper.id in vectors]
        self._call(
            self.titles.upsert,
            ids=[paper.id for paper in titled],
            embeddings=[vectors[paper.id] for paper in titled],
            documents=[paper.title or "" for paper in titled],
        )

    def _call(self, method, *args, **kwargs):
        """Call Chroma, turning a lost connection into a readable error."""
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            if _is_connection_error(exc):
                message = _unreachable_message(self.settings)
                raise StoreUnreachableError(message) from exc
            raise


def sentence_id(paper_id: str, position: int) -> str:
    return f"{paper_id}:{position}"


def sentence_owner(row_id: str) -> str:
    """The paper id of a sentence row; paper ids may hold colons themselves."""
    return row_id.rsplit(":", 1)[0]


def open_store(settings: StoreSettings, model_identity: str) -> Store:
    return Store(settings, model_identity)


def delete_collections(settings: StoreSettings) -> None:
    """Delete the papers and sentences collections, whatever model built them."""
    client = _connect(settings)
    existing = {collection.name for collection in client.list_collections()}
    suffixes = ("", SENTENCE_SUFFIX, TITLE_SUFFIX)
    for name in (settings.collection + suffix for suffix in suffixes):
        if name in existing:
            client.delete_collection(name)
            logger.info("deleted collection %s", name)


def _connect(settings: StoreSettings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.mode == "embedded":
        path = settings.data_dir / "chroma"
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)

    try:
        return chromadb.HttpClient(
            host=settings.host, port=settings.port, settings=chroma_settings
        )
    except Exception as exc:
        if _is_connection_error(exc) or isinstance(exc, ValueError):
            raise StoreUnreachableError(_unreachable_message(settings)) from exc
        raise StoreError(f"cannot open the Chroma server: {exc}") from exc


def _unreachable_message(settings: StoreSettings) -> str:
    return (
        f"the Chroma server at http://{settings.host}:{settings.port} is unreachable; "
        f"start it (`chroma run --path DIR --host {settings.host} --port "
        f"{settings.port}`) or fix [store] host/port, or set [store] mode = "
        f"\"embedded\""
    )


def _is_connection_error(exc: BaseException) -> bool:
    names = {type(error).__name__ for error in _exception_chain(exc)}
    connection_names = {
        "ConnectError",
        "ConnectionError",
        "ConnectionRefusedError",
        "RemoteProtocolError",
        "ReadError",
        "ConnectTimeout",
        "ReadTimeout",
    }
    if names & connection_names:
        return True
    return "Could not connect to a Chroma server" in str(exc)


def _exception_chain(exc: BaseException) -> Iterable[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _paper_metadata(paper: Paper, content_hash: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "authors": json.dumps(paper.authors, ensure_ascii=False),
        "truncated": paper.truncated,
        "content_hash": content_hash,
    }
    optional = {
        "title": paper.title,
        "venue": paper.venue,
        "year": paper.year,
        "url": paper.url,
    }
    metadata.update({key: val for key, val in optional.items() if val is not None})
    return metadata


def _rows_to_papers(page: dict[str, Any]) -> list[Paper]:
    return [
        Paper(
            id=paper_id,
            abstract=document,
            authors=json.loads(metadata.get("authors", "[]")),
            title=metadata.get("title"),
            venue=metadata.get("venue"),
            year=metadata.get("year"),
            url=metadata.get("url"),
            truncated=bool(metadata.get("truncated", False)),
        )
        for paper_id, document, metadata in zip(
            page["ids"], page["documents"], page["metadatas"]
        )
    ]


def _positions_within_paper(owners: list[str]) -> list[int]:
    positions = []
    seen: dict[str, int] = {}
    for owner in owners:
        positions.append(seen.get(owner, 0))
        seen[owner] = positions[-1] + 1
    return positions
