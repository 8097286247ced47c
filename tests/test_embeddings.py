"""The embedding model: torch and ONNX Runtime backends, the export cache, identity."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from rag.embeddings import PACKAGED_MODEL, Embedder, model_folder, model_identity

TEXTS = [
    "What is SMiRL?",
    "We propose a training set synthesis technique for data-efficient learning.",
    "Adversarial training has an overwhelming smoothing effect.",
    "x",
]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private cache folder for the module's exports (made once, reused)."""
    root = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root))
        yield root


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return Embedder(PACKAGED_MODEL, "torch").encode(TEXTS)


def cosines(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return (left * right).sum(axis=1)


def test_one_question_gives_the_vector_of_a_batch_and_keeps_torch_threads():
    import torch

    embedder = Embedder(PACKAGED_MODEL, "torch")
    threads = torch.get_num_threads()

    alone = embedder.encode_one(TEXTS[1])
    batched = embedder.encode(TEXTS)[1]

    assert torch.get_num_threads() == threads
    assert alone.dtype == np.float32
    assert float(alone @ batched) > 0.99999
    assert abs(float(np.linalg.norm(alone)) - 1.0) < 1e-5


@pytest.mark.slow
def test_onnx_backend_gives_torch_vectors(onnx_cache, torch_vectors):
    from sentence_transformers import SentenceTransformer

    embedder = Embedder(PACKAGED_MODEL, "onnx")
    vectors = embedder.encode(TEXTS)

    assert isinstance(embedder._model, SentenceTransformer)
    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    assert cosines(vectors, torch_vectors).min() > 0.9999
    assert embedder.dimensions == 384


@pytest.mark.slow
def test_int8_backend_stays_close_to_torch(onnx_cache, torch_vectors):
    pytest.importorskip("onnx", reason="int8 quantization needs the onnx package")
    vectors = Embedder(PACKAGED_MODEL, "onnx-int8").encode(TEXTS)

    assert cosines(vectors, torch_vectors).min() > 0.95
    assert cosines(vectors, torch_vectors).mean() > 0.98


@pytest.mark.slow
def test_export_is_made_once_into_the_user_cache(onnx_cache, monkeypatch):
    from rag import onnx_export

    Embedder(PACKAGED_MODEL, "onnx")
    exported = onnx_export.cache_folder(model_folder(PACKAGED_MODEL)) / "model.onnx"
    before = exported.stat().st_mtime_ns

    def no_second_export(*args, **kwargs):
        raise AssertionError("the cached export should have been reused")

    monkeypatch.setattr(onnx_export, "_export", no_second_export)
    Embedder(PACKAGED_MODEL, "onnx")

    assert exported.stat().st_mtime_ns == before
    assert onnx_cache in exported.parents
    assert "site-packages" not in str(exported)


def test_cache_folder_follows_xdg_cache_home(tmp_path, monkeypatch):
    from rag.onnx_export import cache_folder

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    assert tmp_path / "abstracts-qa" / "onnx" in cache_folder(tmp_path).parents


def test_fingerprint_changes_with_the_weights(tmp_path):
    from rag.onnx_export import weights_fingerprint

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"1234")
    first = weights_fingerprint(tmp_path)
    weights.write_bytes(b"123456")

    assert weights_fingerprint(tmp_path) != first
    assert weights_fingerprint(tmp_path) == weights_fingerprint(tmp_path)


def test_float_onnx_shares_torch_identity_and_int8_does_not():
    # Float ONNX reproduces torch's vectors (cosine > 0.9999), so a store built
    # with one is searched with the other; int8 vectors differ and must not mix.
    torch_identity = model_identity(PACKAGED_MODEL, "torch")
    assert model_identity(PACKAGED_MODEL, "onnx") == torch_identity
    assert model_identity(PACKAGED_MODEL, "onnx-int8") != PACKAGED_MODEL


def test_exports_are_written_whole(tmp_path, monkeypatch):
    """A half-written export never sits at the final name: readers in other
    processes would load a broken file."""
    from rag import onnx_export

    seen: list[str] = []

    def fake_export(model, args, path, **kwargs):
        seen.append(path)
        Path(path).write_bytes(b"onnx")

    monkeypatch.setattr("torch.onnx.export", fake_export)
    model = Embedder(PACKAGED_MODEL, "torch")._model
    target = tmp_path / "model.onnx"
    onnx_export._export(model, target)

    assert target.read_bytes() == b"onnx"
    assert seen and not seen[0].endswith("model.onnx")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]
