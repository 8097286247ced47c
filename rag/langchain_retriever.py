"""The hybrid retriever as a LangChain ``BaseRetriever``, usable in any chain.

    from rag.langchain_retriever import AbstractsRetriever
    docs = AbstractsRetriever(k=5).invoke("Which papers learn RL without rewards?")

Kept apart from ``rag.retrieval`` so that plain ``rag ask`` never imports LangChain.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.types import Source


class AbstractsRetriever(BaseRetriever):
    """Dense + keyword + metadata retrieval over the abstracts store.

    ``engine`` defaults to the shared engine built from the settings; ``k`` to
    the configured number of abstracts.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    engine: Any = None
    k: int | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        from rag.answering import get_engine

        engine = self.engine or get_engine()
        return [to_document(source) for source in engine.retrieve(query, self.k)]


def to_document(source: Source) -> Document:
    """A LangChain Document: the abstract as content, the rest as metadata."""
    metadata = {
        "id": source.id,
        "title": source.title,
        "authors": source.authors,
        "venue": source.venue,
        "year": source.year,
        "url": source.url,
        "score": source.score,
        "truncated": source.truncated,
    }
    return Document(page_content=source.abstract, metadata=metadata, id=source.id)
