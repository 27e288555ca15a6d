"""The pilot library: centroids of training queries, each labelled with the expert it stands for.

Embedded with the router's base model. Built per domain (one centroid per domain, labelled with the
domain's expert) or the paper's way (each domain's training queries grouped by the expert that wins
on them, one centroid per group); see ``retriever.pilot_building``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexes.atomic import atomic_write_bytes
from retriever.encoders import Encoder
from retriever.errors import ConfigError, IndexCorruptError


@dataclass(frozen=True)
class PilotGroup:
    """Training queries of one domain that one expert stands for."""

    domain: str
    expert: str
    queries: Sequence[str]


@dataclass(frozen=True)
class PilotLibrary:
    """Pilot vectors (unit-norm centroids), with the expert and domain of each."""

    vectors: np.ndarray
    experts: tuple[str, ...]
    domains: tuple[str, ...]
    sizes: tuple[int, ...]
    encoder: str

    @classmethod
    def build(cls, encoder: Encoder, groups: Sequence[PilotGroup], batch_size: int = 32) -> PilotLibrary:
        """Embed each group's queries with the base encoder and keep one normalised centroid per group."""
        groups = [g for g in groups if g.queries]
        if not groups:
            raise ConfigError("no pilot queries: configure [[domains]] with training queries")
        centroids = []
        for group in groups:
            mean = encoder.encode(list(group.queries), batch_size=batch_size).mean(axis=0)
            centroids.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        return cls(
            vectors=np.stack(centroids).astype(np.float32),
            experts=tuple(g.expert for g in groups),
            domains=tuple(g.domain for g in groups),
            sizes=tuple(len(g.queries) for g in groups),
            encoder=encoder.identity,
        )

    def restricted_to(self, experts: Sequence[str]) -> PilotLibrary:
        """The pilots of the given experts only (after an expert was removed from the config)."""
        keep = [i for i, e in enumerate(self.experts) if e in set(experts)]
        pick = lambda values: tuple(values[i] for i in keep)  # noqa: E731
        return PilotLibrary(self.vectors[keep], pick(self.experts), pick(self.domains), pick(self.sizes), self.encoder)

    def describe(self) -> list[dict[str, object]]:
        return [{"expert": e, "domain": d, "queries": n} for e, d, n in zip(self.experts, self.domains, self.sizes)]

    def save(self, path: Path) -> None:
        buffer = io.BytesIO()
        meta = {"experts": self.experts, "domains": self.domains, "sizes": self.sizes, "encoder": self.encoder}
        np.savez(buffer, vectors=self.vectors, meta=np.array(json.dumps(meta)))
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> PilotLibrary:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                vectors = data["vectors"].astype(np.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise IndexCorruptError(f"pilot library {path} is corrupt: {exc}") from exc
        return cls(vectors, tuple(meta["experts"]), tuple(meta["domains"]), tuple(meta["sizes"]), meta["encoder"])

