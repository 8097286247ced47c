"""The errors abstracts-qa raises on purpose.

Every message says what failed, the value involved, and how to fix it, so the CLI
and the UI can show it to a person as it is, without a traceback.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class of every error the library raises deliberately."""


class ConfigError(RagError):
    """A setting is unknown, has the wrong type, or a settings file is unreadable."""


class CorpusError(RagError):
    """An input file of abstracts cannot be read or an entry in it is invalid.

    ``path`` names the file and ``entry`` the line number or entry key, when known.
    """

    def __init__(self, message: str, path: str | None = None, entry: str | None = None):
        self.path = path
        self.entry = entry
        location = ""
        if path:
            location = f"{path}"
            if entry:
                location += f", {entry}"
            location += ": "
        super().__init__(location + message)


class StoreError(RagError):
    """The Chroma store is unreachable or holds vectors of another model."""


class StoreUnreachableError(StoreError):
    """The Chroma server does not answer."""


class EmbeddingModelMismatchError(StoreError):
    """The collection was built with another embedding model than the configured one."""


class ModelError(RagError):
    """A chat model cannot be built or called."""


class UnknownModelError(ModelError):
    """The model spec names no registered provider."""


class MissingExtraError(ModelError):
    """An optional package a model needs is not installed."""


class MissingKeyError(ModelError):
    """A hosted model needs an API key that the environment does not hold."""


class ModelUnreachableError(ModelError):
    """A model server does not answer, or stopped answering within the timeout."""


class QuestionError(RagError):
    """The question is empty, not text, or otherwise cannot be answered."""
