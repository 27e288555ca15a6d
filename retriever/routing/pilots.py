"""The pilot library: centroids of training queries, each labelled with the expert it stands for.

Embedded with the router's base model. Built per domain (one centroid per domain, labelled with the
domain's expert) or the paper's way (each domain's training queries grouped by the expert that wins
on them, one centroid per group); see ``router_retriever.routing.pilot_building``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from router_retriever.core.errors import ConfigError, IndexCorruptError
from router_retriever.encoding.encoders import Encoder
from router_retriever.indexes.atomic import atomic_write_bytes

PERCENTILES = np.arange(101)
# The fallback percentiles that calibration (``calibrated_percentile``) chooses among.
CANDIDATE_PERCENTILES = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0)


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
    quantiles: np.ndarray | None = None  # (pilots, 101): percentiles 0..100 of each group's own cosines to its pilot
    calibrated_percentile: float | None = None  # the fallback percentile learnt from the pilots (needs 2+ domains)

    @classmethod
    def build(cls, encoder: Encoder, groups: Sequence[PilotGroup], batch_size: int = 32) -> PilotLibrary:
        """Embed each group's queries with the base encoder and keep one normalised centroid per group."""
        groups = [g for g in groups if g.queries]
        if not groups:
            raise ConfigError("no pilot queries: configure [[domains]] with training queries")
        embedded = [(g.domain, g.expert, encoder.encode(list(g.queries), batch_size=batch_size)) for g in groups]
        return cls.from_vectors(embedded, encoder.identity)

    @classmethod
    def from_vectors(cls, groups: Sequence[tuple[str, str, np.ndarray]], encoder: str) -> PilotLibrary:
        """One unit-norm centroid per (domain, expert, base vectors of its queries) group."""
        centroids = np.stack([g.mean(axis=0) for _, _, g in groups])
        units = (centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        quantiles = np.stack([np.percentile(g @ u, PERCENTILES) for (_, _, g), u in zip(groups, units)]).astype(np.float32)
        domains = tuple(domain for domain, _, _ in groups)
        return cls(
            vectors=units,
            experts=tuple(expert for _, expert, _ in groups),
            domains=domains,
            sizes=tuple(len(g) for _, _, g in groups),
            encoder=encoder,
            quantiles=quantiles,
            calibrated_percentile=calibrated_percentile(units, quantiles, domains, [g for _, _, g in groups]),
        )

    @classmethod
    def from_winners(cls, vectors: np.ndarray, domains: Sequence[str], scores: np.ndarray,
                     experts: Sequence[str], encoder: str, tie: float = 1e-9) -> PilotLibrary:
        """The paper's library: each domain's training queries grouped by the expert that wins on them
        (best score, e.g. nDCG@10), one centroid per group. A tie goes to the tied expert that is best
        on the domain's queries on average, so every training query belongs to exactly one group."""
        labels = np.asarray(domains)
        groups = []
        for domain in dict.fromkeys(labels.tolist()):
            rows = np.flatnonzero(labels == domain)
            average = scores[rows].mean(axis=0)
            tied = scores[rows] >= scores[rows].max(axis=1, keepdims=True) - tie
            winner = np.argmax(np.where(tied, average[None, :], -np.inf), axis=1)
            groups += [(domain, experts[j], vectors[rows[winner == j]]) for j in range(len(experts)) if (winner == j).any()]
        return cls.from_vectors(groups, encoder)

    def restricted_to(self, experts: Sequence[str]) -> PilotLibrary:
        """The pilots of the given experts only (after an expert was removed from the config); the calibrated
        percentile stays the one learnt from the whole library (`retriever pilots build` learns it anew)."""
        return self._subset([i for i, e in enumerate(self.experts) if e in set(experts)])

    def _subset(self, keep: list[int]) -> PilotLibrary:
        pick = lambda values: tuple(values[i] for i in keep)  # noqa: E731
        return PilotLibrary(self.vectors[keep], pick(self.experts), pick(self.domains), pick(self.sizes), self.encoder,
                            None if self.quantiles is None else self.quantiles[keep], self.calibrated_percentile)

    def percentile(self, configured: float | Literal["auto"]) -> float:
        """The fallback percentile to use: ``configured``, or with ``"auto"`` the one calibrated on the pilots."""
        if configured != "auto":
            return float(configured)
        if self.calibrated_percentile is None:
            raise ConfigError("router.fallback_percentile = \"auto\" needs a pilot library of two or more domains "
                              "built by this version (run `retriever pilots build`)")
        return self.calibrated_percentile

    def floors(self, percentile: float) -> np.ndarray | None:
        """Per pilot, the cosine below which only ``percentile`` % of its own queries fall (None for a
        library saved before these were recorded)."""
        if self.quantiles is None:
            return None
        return np.array([np.interp(percentile, PERCENTILES, q) for q in self.quantiles], dtype=np.float32)

    def describe(self) -> list[dict[str, object]]:
        return [{"expert": e, "domain": d, "queries": n} for e, d, n in zip(self.experts, self.domains, self.sizes)]

    def save(self, path: Path) -> None:
        buffer = io.BytesIO()
        meta = {"experts": self.experts, "domains": self.domains, "sizes": self.sizes, "encoder": self.encoder,
                "calibrated_percentile": self.calibrated_percentile}
        arrays: dict[str, np.ndarray] = {"vectors": self.vectors, "meta": np.array(json.dumps(meta))}
        if self.quantiles is not None:
            arrays["quantiles"] = self.quantiles
        np.savez(buffer, allow_pickle=False, **arrays)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> PilotLibrary:
        """The library saved at ``path``; ``IndexCorruptError`` naming the command that rebuilds it when the file
        is damaged or truncated (numpy's own reason, e.g. about pickled data, would not say what to do)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                vectors = data["vectors"].astype(np.float32)
                quantiles = data["quantiles"].astype(np.float32) if "quantiles" in data.files else None
            return cls(vectors, tuple(meta["experts"]), tuple(meta["domains"]), tuple(meta["sizes"]), meta["encoder"],
                       quantiles, meta.get("calibrated_percentile"))
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise IndexCorruptError(f"pilot library {path} is damaged or truncated ({type(exc).__name__}); rebuild it "
                                    "from the configured domains: `retriever pilots build` (or `retriever build`)") from exc


def calibrated_percentile(units: np.ndarray, quantiles: np.ndarray, domains: Sequence[str],
                          vectors: Sequence[np.ndarray]) -> float | None:
    """The fallback percentile, learnt from the pilots alone by leaving each domain out in turn: its pilot queries
    (``vectors``, one array per centroid) should fall back when routed among the other domains' centroids, and
    should not when every domain is there. Among ``CANDIDATE_PERCENTILES``, the one with the largest mean share
    rejected minus mean share falling back in their own domain (Youden's J, each domain weighing the same);
    None with fewer than two domains."""
    names = list(dict.fromkeys(domains))
    if len(names) < 2:
        return None
    owner = np.asarray(domains)
    queries = {d: np.concatenate([v for v, o in zip(vectors, domains) if o == d]) for d in names}
    sims = {d: queries[d] @ units.T for d in names}  # (queries of d, centroids)

    def gap(percentile: float) -> float:
        floors = np.array([np.interp(percentile, PERCENTILES, q) for q in quantiles], dtype=np.float32)
        below = {d: sims[d] < floors for d in names}
        rejected = [below[d][:, owner != d].all(axis=1).mean() for d in names]
        lost = [below[d].all(axis=1).mean() for d in names]
        return float(np.mean(rejected) - np.mean(lost))

    return max(CANDIDATE_PERCENTILES, key=gap)

