"""abstracts-qa: cited question answering over research-paper abstracts.

    from rag import answer, retrieve, stream_answer
    print(answer("What is SMiRL?").text)
"""

from rag.answering import Engine, answer, get_engine, retrieve, stream_answer
from rag.errors import RagError
from rag.types import Answer, Paper, Source

__all__ = [
    "Answer",
    "Engine",
    "Paper",
    "RagError",
    "Source",
    "answer",
    "get_engine",
    "retrieve",
    "stream_answer",
]
