"""Text encoders: sentence-transformers models loaded by path (optionally with a merged LoRA adapter), or
ONNX Runtime model folders (``backend = "onnx"``, ``router_retriever.encoding.onnx_encoder``), each loaded once, on first
use, and shared by every encoder built on it. On the onnx backend a torch (sentence-transformers) model
folder, its adapter merged, is exported to ONNX on first use (``router_retriever.encoding.onnx_export``) and kept, by a key
of its weights, in the spec's ``export_dir`` (a Retriever's: ``<data_dir>/onnx``).

Nothing is downloaded: models and adapters load with ``local_files_only`` (a model that is not on this machine
is a ``ModelNotFoundError`` naming it); the process's environment and logging settings are left alone. A torch
model runs on its spec's ``device`` (default cpu), an onnx one on its ONNX Runtime ``providers`` (default CPU).
A query or document prefix goes through sentence-transformers' own prompt argument
(``encode_query`` / ``encode_document``), so models that define their own prompts keep them; the onnx
backend prepends the configured prefix and nothing else.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from router_retriever.core.errors import ConfigError, ModelNotFoundError
from router_retriever.encoding.onnx_encoder import (
    CPU_PROVIDERS,
    OnnxEmbedder,
    Pooling,
    check_model,
    check_pipeline,
    check_providers,
    model_file,
)
from router_retriever.encoding.onnx_export import Quantize, export_key, exported
from router_retriever.encoding.query_map import check_query_map, load_query_map, map_file
from router_retriever.locations import resolve_location

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Role = Literal["query", "document"]
Backend = Literal["torch", "onnx"]


@dataclass(frozen=True)
class EncoderSpec:
    """What defines an encoder's output: model, adapter, text prefix, truncation length, and the backend
    that runs the model (for onnx: its pooling, None reading it from the model folder, and the quantization
    of an exported torch model), plus where such exports are kept and where the model runs (torch: its
    ``device``; onnx: its ONNX Runtime ``providers``), none of these three part of the identity."""

    model: str
    adapter: str | None = None
    prefix: str = ""
    max_seq_length: int | None = None
    backend: Backend = "torch"
    pooling: Pooling | None = None
    quantize: Quantize = "none"
    export_dir: Path | None = None
    query_map: str | None = None
    device: str = "cpu"
    providers: tuple[str, ...] = CPU_PROVIDERS

    @property
    def identity(self) -> str:
        """A stable, machine-independent name of this encoder (stored in index manifests). Torch encoders
        keep the name they always had (existing indexes and caches are keyed by it); onnx ones add theirs."""
        parts = [self.model]
        if self.adapter:
            parts.append(f"adapter={self.adapter}")
        if self.prefix:
            parts.append(f"prefix={self.prefix!r}")
        if self.max_seq_length:
            parts.append(f"max_seq_length={self.max_seq_length}")
        if self.backend != "torch":
            parts.append(f"backend={self.backend}")
            if self.pooling:
                parts.append(f"pooling={self.pooling}")
            if self.quantize != "none":
                parts.append(f"quantize={self.quantize}")
        if self.query_map:
            parts.append(f"query_map={self.query_map}")
        return "|".join(parts)

    @property
    def fingerprint(self) -> str:
        """The identity plus a hash of the adapter's and the query map's weights: changes when either is
        retrained in place."""
        files = [Path(resolve_location(self.adapter)) / "adapter_model.safetensors"] if self.adapter else []
        files += [map_file(self.query_map)] if self.query_map else []
        return "|".join([self.identity, *(f"weights={_weights_digest(f)}" for f in files)])


def _weights_digest(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return _file_digest(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    """SHA-256 prefix of a file, hashed once per (path, modification time, size)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def check_available(spec: EncoderSpec) -> None:
    """Refuse, without loading anything, a model folder, adapter or query map that is not there (a model given
    by name can only be checked by loading it, on first use). An onnx model must be a folder with its files,
    or a torch model folder to export (the only kind that takes an adapter or quantization)."""
    if spec.query_map:
        check_query_map(spec.query_map)
    if spec.backend == "onnx":
        check_providers(spec.providers)
    else:
        check_device(spec.device)
    location = resolve_location(spec.model)
    if spec.backend == "onnx" and not exports_torch(spec):
        check_model(Path(location), spec.model, spec.pooling)
        if spec.adapter or spec.quantize != "none":
            option = f"adapter {spec.adapter!r}" if spec.adapter else f"quantize {spec.quantize!r}"
            raise ConfigError(f"{option} needs a torch (sentence-transformers) model folder to export to ONNX; "
                              f"model {spec.model!r} is an ONNX folder already ({location})")
        return
    if _looks_like_path(spec.model, location) and not Path(location).is_dir():
        raise ModelNotFoundError(f"model folder not found: {location} (from {spec.model!r})")
    if spec.adapter and not (Path(resolve_location(spec.adapter)) / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"LoRA adapter not found: {spec.adapter} has no adapter_config.json")
    if spec.backend == "onnx":  # a pipeline the onnx encoder cannot reproduce is refused before exporting
        check_pipeline(Path(location), spec.pooling)


def exports_torch(spec: EncoderSpec) -> bool:
    """Whether an onnx spec's model is a torch (sentence-transformers) folder, exported on first use."""
    folder = Path(resolve_location(spec.model))
    return spec.backend == "onnx" and model_file(folder) is None and (folder / "config.json").is_file()


def export_path(spec: EncoderSpec) -> Path:
    """Where the ONNX export of an onnx spec's torch model is kept: ``<export_dir>/<key>``, the key naming the
    model, the adapter's weights (``fingerprint``) and the quantization; prefix and truncation do not change it."""
    if spec.export_dir is None:
        raise ConfigError(f"model {spec.model!r} is a torch model: the onnx backend exports it to ONNX, and needs an "
                          "export_dir to keep the export in (a Retriever gives <data_dir>/onnx)")
    return spec.export_dir / export_key(EncoderSpec(spec.model, spec.adapter).fingerprint, spec.quantize)


def onnx_folder(spec: EncoderSpec) -> Path:
    """The ONNX folder an onnx spec runs: its model folder, or its torch model's export (made on first use)."""
    folder = Path(resolve_location(spec.model))
    if not exports_torch(spec):
        return folder
    return exported(export_path(spec), folder, lambda: _load(spec.model, spec.adapter, None), spec.quantize)


def prepare_export(spec: EncoderSpec) -> None:
    """Export an onnx spec's torch model now if it is one and its export is missing (so that no query pays
    for it later); nothing for any other spec."""
    if exports_torch(spec):
        onnx_folder(spec)


def check_device(device: str) -> None:
    """``ConfigError`` unless torch can run a model on ``device`` here (cpu always can, and is not checked: torch
    is not imported for it): a device string torch does not know, a device type this torch build or machine lacks,
    or an index past its devices."""
    if device == "cpu":
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device: {exc}") from exc
    if parsed.type == "cpu":
        return
    module = torch.backends.mps if parsed.type == "mps" else getattr(torch, parsed.type, None)
    available = getattr(module, "is_available", None)
    if available is None or not available():
        raise ConfigError(f"device {device!r} is not available on this machine (torch {torch.__version__} finds no "
                          f"{parsed.type} device); set device = \"cpu\" or install a torch build for it")
    count = getattr(getattr(torch, parsed.type, None), "device_count", lambda: 1)()
    if parsed.index is not None and parsed.index >= count:
        raise ConfigError(f"device {device!r} is not available on this machine: it has {count} {parsed.type} "
                          f"device{'s' if count != 1 else ''} (indexes from 0)")


def _looks_like_path(model: str, location: str) -> bool:
    return location.startswith((".", "/", "~")) or model.startswith("pkg:") or Path(location).exists()


class LoadedModel:
    """One model in memory (a sentence-transformers model, or an ONNX Runtime session and its tokenizer)
    and the lock that serialises calls into it."""

    def __init__(self, spec: EncoderSpec) -> None:
        self.model: SentenceTransformer | OnnxEmbedder
        if spec.backend == "onnx":
            check_available(spec)
            self.model = OnnxEmbedder(onnx_folder(spec), spec.model, spec.pooling, spec.max_seq_length,
                                      providers=spec.providers)
        else:
            self.model = _load(spec.model, spec.adapter, spec.max_seq_length, spec.device)
        self.lock = threading.Lock()  # torch modules are not safe to call from several threads at once

    @property
    def dimension(self) -> int:
        if isinstance(self.model, OnnxEmbedder):
            with self.lock:  # a graph that does not declare its width is asked by encoding one text
                return self.model.dimension
        return int(self.model.get_embedding_dimension() or 0)

    def embed(self, texts: list[str], role: Role, prefix: str, batch_size: int, progress: bool) -> np.ndarray:
        """(n, dimension) float32 unit vectors of ``texts`` (not empty) as queries or documents."""
        with self.lock:
            if isinstance(self.model, OnnxEmbedder):
                return self.model.embed(texts, prefix, batch_size, progress)
            st = self.model
            encode = st.encode_query if role == "query" else st.encode_document
            vectors = encode(texts, prompt=prefix or None, batch_size=batch_size,
                             show_progress_bar=progress, convert_to_numpy=True, normalize_embeddings=True)
        return np.ascontiguousarray(vectors, dtype=np.float32)


_models: dict[EncoderSpec, LoadedModel] = {}
_models_lock = threading.Lock()


def loaded_model(spec: EncoderSpec) -> LoadedModel:
    """The one shared in-memory model of a spec without its prefix and query map (applied per call), loaded
    on first call."""
    key = replace(spec, prefix="", query_map=None)
    with _models_lock:
        if key not in _models:
            _models[key] = LoadedModel(key)
        return _models[key]


class Encoder:
    """Encodes queries or documents into L2-normalised float32 vectors (inner product = cosine).
    The model is loaded on the first call that needs it."""

    def __init__(self, spec: EncoderSpec, role: Role) -> None:
        self.spec = spec
        self.role = role

    @property
    def identity(self) -> str:
        return self.spec.identity

    @property
    def dimension(self) -> int:
        return loaded_model(self.spec).dimension

    def follows(self, other: Encoder) -> bool:
        """Whether this encoder's vectors are ``other``'s, after this one's query map if it has one (so
        ``other``'s pass serves both)."""
        return other.spec.query_map is None and replace(self.spec, query_map=None) == other.spec

    def mapped(self, vectors: np.ndarray) -> np.ndarray:
        """This encoder's vectors from those of its model's pass: its query map applied, if any."""
        return load_query_map(self.spec.query_map).apply(vectors) if self.spec.query_map else vectors

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Embed ``texts``; returns an (n, dimension) float32 array of unit vectors."""
        loaded = loaded_model(self.spec)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.mapped(loaded.embed(list(texts), self.role, self.spec.prefix, batch_size, progress))


@cache
def encoder(spec: EncoderSpec, role: Role) -> Encoder:
    """One encoder object per (spec, role), so experts on the same model share it (and its query pass)."""
    return Encoder(spec, role)


_quiet_lock = threading.RLock()


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No weight-loading progress bars or transformers warnings on stderr inside the block (a model's load: only
    our own errors speak); transformers' verbosity, its progress bars and the warning filters are restored after,
    so the process's own logging settings are untouched."""
    from transformers.utils import logging as hf_logging

    with _quiet_lock, warnings.catch_warnings():
        verbosity, progress = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
        try:
            yield
        finally:
            hf_logging.set_verbosity(verbosity)
            if progress:
                hf_logging.enable_progress_bar()


def _load(model: str, adapter: str | None, max_seq_length: int | None, device: str = "cpu") -> SentenceTransformer:
    """A sentence-transformers model on ``device``, read from this machine only, with its adapter merged."""
    check_available(EncoderSpec(model, adapter, device=device))
    with quiet_loading():
        from sentence_transformers import SentenceTransformer

        location = resolve_location(model)
        try:
            st = SentenceTransformer(location, device=device, local_files_only=True)
        except Exception as exc:  # the hub client raises many types for a model that is not on this machine
            raise ModelNotFoundError(
                f"cannot load model {model!r}: {type(exc).__name__}: {exc}. "
                "Models load offline: give a sentence-transformers folder or a pkg:MODULE/sub path"
            ) from exc
        if max_seq_length:
            st.max_seq_length = max_seq_length
        if adapter:
            load_query_adapter(st, Path(resolve_location(adapter)))
        st.eval()
    return st


def load_query_adapter(st: Any, adapter_dir: Path) -> None:
    """Merge a peft LoRA adapter of the model's transformer into its weights (no cost at query time).

    ``auto_model`` is a read-only alias of ``model`` in sentence-transformers 6, so the merged model is
    assigned to ``model`` (assigning ``auto_model`` would register a second, stray submodule)."""
    from peft import PeftModel

    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"LoRA adapter not found: {adapter_dir} has no adapter_config.json")
    module = st[0]
    merged = PeftModel.from_pretrained(module.auto_model, str(adapter_dir), local_files_only=True,
                                       torch_device=str(st.device)).merge_and_unload()
    module.model = merged
