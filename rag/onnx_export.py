"""ONNX Runtime variants of a local sentence-transformers model, exported on this
machine from its own weights (nothing is downloaded).

sentence-transformers' own ONNX backend needs ``optimum-onnx``, whose only release
pins ``transformers<4.58`` while sentence-transformers 6 needs ``transformers>=5``;
so the export here uses ``torch.onnx`` and the model runs in ``onnxruntime``
behind the usual tokenizer, pooling and normalisation modules. The exported files
go to a cache folder (``$XDG_CACHE_HOME/abstracts-qa/onnx``, else
``~/.cache/abstracts-qa/onnx``) keyed by the weights they came from, and are
reused by every later run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rag.errors import MissingExtraError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
QUANTIZED_FILE = "model_qint8.onnx"
# Bump when the export itself changes, so old cached files are not reused.
EXPORT_VERSION = "2"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OPSET = 17


def load_onnx_model(folder: Path, quantized: bool) -> SentenceTransformer:
    """The model in ``folder`` with its transformer run by ONNX Runtime.

    ``quantized`` selects the dynamically int8-quantized export.
    """
    _require_onnxruntime()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    path = exported_file(folder, model, quantized)

    # The torch weights are dropped here: only the tokenizer, pooling and
    # normalisation modules stay in Python.
    transformer = model[0]
    transformer.model = OnnxEncoder(path, transformer.model.config)
    logger.debug("embedding model %s runs on ONNX Runtime from %s", folder, path)
    return model


def exported_file(folder: Path, model: SentenceTransformer, quantized: bool) -> Path:
    """The cached ONNX file for ``folder``, exporting (and quantizing) it if absent."""
    target = cache_folder(folder)
    plain = target / ONNX_FILE
    if not plain.exists():
        _export(model, plain)
    if not quantized:
        return plain

    quantized_path = target / QUANTIZED_FILE
    if not quantized_path.exists():
        _quantize(plain, quantized_path)
    return quantized_path


def cache_folder(folder: Path) -> Path:
    """Where the exports of the weights in ``folder`` are kept."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    name = f"{Path(folder).name}-{weights_fingerprint(folder)}"
    return Path(root) / "abstracts-qa" / "onnx" / name


def weights_fingerprint(folder: Path) -> str:
    """Changes when the weight files or the export code change, without reading
    the weights (hashing 90 MB on every start would cost more than it saves)."""
    digest = hashlib.sha256(EXPORT_VERSION.encode())
    digest.update(str(Path(folder).resolve()).encode())
    for path in sorted(Path(folder).glob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


class OnnxEncoder(torch.nn.Module):
    """Stands in for the Hugging Face model inside the Transformer module."""

    def __init__(self, path: Path, config: Any):
        import onnxruntime

        super().__init__()

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = (
            onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        # Idle threads that spin steal the core the busy one needs when the
        # machine is shared: a question took 36 ms spinning, 22 ms without.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.config = config
        self.path = path
        self._names = {item.name for item in self.session.get_inputs()}

    def forward(
        self, input_ids, attention_mask, token_type_ids=None, **_: Any
    ) -> dict[str, Any]:
        import numpy as np

        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        given = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
        }
        feed = {
            name: np.asarray(value.cpu().numpy(), dtype=np.int64)
            for name, value in given.items()
            if name in self._names
        }
        (hidden,) = self.session.run(["last_hidden_state"], feed)
        return {"last_hidden_state": torch.from_numpy(hidden)}


def _export(model: SentenceTransformer, path: Path) -> None:
    """Trace the torch transformer to ONNX with dynamic batch and length axes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    transformer = model[0]
    sample = transformer.preprocess(
        ["a short text", "a somewhat longer text to trace padding with"]
    )
    args = tuple(sample[name] for name in _INPUTS)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}

    partial = path.with_suffix(f".{os.getpid()}.partial")
    logger.info("exporting the embedding model to ONNX at %s (once)", path)
    # The TorchScript exporter needs only torch; the newer one needs onnxscript.
    # Its deprecation and tracer warnings concern models with data-dependent
    # control flow, which this encoder's graph does not have.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _HiddenStates(transformer.model).eval(),
            args,
            str(partial),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=_OPSET,
            dynamo=False,
        )
    os.replace(partial, path)


def _quantize(source: Path, path: Path) -> None:
    """Dynamic int8 quantization of the weights, one scale per output channel.

    One scale per tensor moved sentence vectors to a mean cosine of 0.95 from
    torch's; per channel keeps it at 0.99.
    """
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise MissingExtraError(
            "the onnx-int8 embedding backend needs the 'onnx' package: "
            "pip install onnx, or set [embedding] backend = \"onnx\""
        ) from exc

    prepared = path.with_suffix(f".{os.getpid()}.prepared")
    partial = path.with_suffix(f".{os.getpid()}.partial")
    logger.info("quantizing the ONNX embedding model to int8 at %s (once)", path)
    try:
        # Symbolic shape inference gives up on this graph; ONNX's own suffices.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(
            str(prepared), str(partial), per_channel=True, weight_type=QuantType.QInt8
        )
        os.replace(partial, path)
    finally:
        prepared.unlink(missing_ok=True)


def _require_onnxruntime() -> None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            "the ONNX embedding backend needs onnxruntime: "
            "pip install onnxruntime, or set [embedding] backend = \"torch\""
        ) from exc


class _HiddenStates(torch.nn.Module):
    """A Hugging Face encoder seen as three inputs and one output, for tracing."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask, token_type_ids):
        output = self.inner(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
        )
        return output.last_hidden_state
