"""Text encoders: a sentence-transformers model loaded by path, optionally with a merged LoRA adapter.

Nothing is downloaded: the hub is switched to offline mode unless the user set ``HF_HUB_OFFLINE``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

from core.errors import ModelNotFoundError
from retriever.config import resolve_location


@dataclass(frozen=True)
class EncoderSpec:
    """What defines an encoder's output: model, adapter, text prefix and truncation length."""

    model: str
    adapter: str | None = None
    prefix: str = ""
    max_seq_length: int | None = None

    @property
    def identity(self) -> str:
        """A stable, machine-independent name of this encoder (stored in index manifests)."""
        parts = [self.model]
        if self.adapter:
            parts.append(f"adapter={self.adapter}")
        if self.prefix:
            parts.append(f"prefix={self.prefix!r}")
        if self.max_seq_length:
            parts.append(f"max_seq_length={self.max_seq_length}")
        return "|".join(parts)

    @property
    def fingerprint(self) -> str:
        """The identity plus a hash of the adapter's weights: changes when an adapter is retrained in place."""
        if not self.adapter:
            return self.identity
        weights = Path(resolve_location(self.adapter)) / "adapter_model.safetensors"
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12] if weights.is_file() else "missing"
        return f"{self.identity}|weights={digest}"


class Encoder:
    """Encodes texts into L2-normalised float32 vectors (inner product = cosine)."""

    def __init__(self, spec: EncoderSpec) -> None:
        self.spec = spec
        self._model = _load_model(spec.model, spec.adapter, spec.max_seq_length)
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        return self.spec.identity

    @property
    def dimension(self) -> int:
        return int(self._model.get_embedding_dimension())

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Embed ``texts``; returns an (n, dimension) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        inputs = [self.spec.prefix + t for t in texts] if self.spec.prefix else list(texts)
        with self._lock:  # torch modules are not safe to call from several threads at once
            vectors = self._model.encode(
                inputs,
                batch_size=batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@cache
def get_encoder(spec: EncoderSpec) -> Encoder:
    """One shared encoder per spec, so experts with the same model share its weights and its pass."""
    return Encoder(spec)


@cache
def _load_model(model: str, adapter: str | None, max_seq_length: int | None):
    from sentence_transformers import SentenceTransformer

    location = resolve_location(model)
    looks_like_path = location.startswith((".", "/", "~")) or model.startswith("pkg:") or Path(location).exists()
    if looks_like_path and not Path(location).is_dir():
        raise ModelNotFoundError(f"model folder not found: {location} (from {model!r})")
    try:
        st = SentenceTransformer(location, device="cpu")
    except Exception as exc:  # the hub client raises many types when offline
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


def load_query_adapter(st: object, adapter_dir: Path) -> None:
    """Merge a peft LoRA adapter of the model's transformer into its weights (no cost at query time).

    ``auto_model`` is a read-only alias of ``model`` in sentence-transformers 6, so the merged model is
    assigned to ``model`` (assigning ``auto_model`` would register a second, stray submodule)."""
    from peft import PeftModel

    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"LoRA adapter not found: {adapter_dir} has no adapter_config.json")
    module = st[0]  # type: ignore[index]
    module.model = PeftModel.from_pretrained(module.auto_model, str(adapter_dir)).merge_and_unload()
