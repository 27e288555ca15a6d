"""Routers evaluated offline from the cached expert table: each one maps base-model query vectors to
a score per expert; the best-scoring expert (or the top m) is chosen.

Every router is fitted on `RoutingData` from training queries only (a training split, or the other
cross-validation folds): their base vectors, their domain, and every expert's per-query nDCG@10 on
them. Test queries reach a router only as vectors to route.

- pilot-mean / pilot-max: RouterRetriever. Per domain, training queries are grouped by the expert that
  wins on them (best nDCG@10; a tie goes to the tied expert best on the domain on average); each
  group's mean base vector is one pilot (`PilotLibrary.from_winners`, shared with the engine). The
  engine's PilotRouter scores an expert by the mean (paper) or max (released code) cosine to its pilots.
- pilot-domain: the engine's default library kind (`router.pilots = "domain"`): one centroid per domain,
  labelled with the domain's best expert on its training queries (cross-fitted; the engine itself labels a
  domain with its configured expert, evaluated in `router_retriever.eval.domains`).
- dataset: DatasetRouter. Up to 100 sampled training queries per domain; a query goes to the best
  expert (on training queries) of the domain of its nearest sampled query.
- knn: the k nearest training queries (cosine) vote for their best expert(s); k is chosen by
  leave-one-out on the training queries.
- classifier: multinomial logistic regression (numpy) on base vectors, soft labels = best expert(s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from router_retriever.routing.pilots import PilotLibrary
from router_retriever.routing.router import PilotRouter

TIE = 1e-9
KNN_KS = (1, 3, 5, 10, 20, 50, 100)
DATASET_SAMPLES = 100


@dataclass
class RoutingData:
    """Training queries of the routers: ids, domains, base vectors and (queries, experts) nDCG@10."""

    qids: list[str]
    domains: list[str]
    vectors: np.ndarray
    scores: np.ndarray
    experts: list[str]

    def winners(self) -> np.ndarray:
        """(queries, experts) soft labels: 1/t for each of the t experts tied at a query's best score;
        all-zero rows for queries where every expert scores the same (no preference)."""
        best = self.scores.max(axis=1, keepdims=True)
        top = (self.scores >= best - TIE).astype(np.float64)
        top[top.sum(axis=1) == len(self.experts)] = 0.0
        sums = top.sum(axis=1, keepdims=True)
        return np.divide(top, sums, out=np.zeros_like(top), where=sums > 0)

    def prior(self) -> np.ndarray:
        """Mean training nDCG@10 per expert: breaks ties between experts, best first."""
        return self.scores.mean(axis=0)

    def domain_best(self) -> dict[str, int]:
        """Each domain's best expert on its training queries (the dataset-level label)."""
        domains = np.array(self.domains)
        return {d: int(np.argmax(self.scores[domains == d].mean(axis=0) + TIE * self.prior())) for d in dict.fromkeys(self.domains)}


class Router:
    name = "router"  # short id (report keys, file names)
    label = "router"  # the row label in the results table

    def fit(self, data: RoutingData) -> Router:
        raise NotImplementedError

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """(queries, experts) router scores; higher is better."""
        raise NotImplementedError

    def describe(self) -> dict[str, object]:
        return {}


class PilotBaseline(Router):
    """The engine's PilotLibrary and PilotRouter: the paper's library (``winner``: training queries grouped
    by winning expert) or the engine's default (``domain``: one centroid per domain, for the domain's best
    expert on its training queries)."""

    def __init__(self, aggregate: str = "mean", encoder: str = "", library: str = "winner") -> None:
        self.aggregate = aggregate
        self.encoder = encoder
        self.library_kind = library
        self.name = f"pilot-{aggregate}" if library == "winner" else f"pilot-{library}"
        self.label = {"pilot-mean": "RouterRetriever pilot router (mean)", "pilot-max": "pilot router (max over pilots)",
                      }.get(self.name, "pilot router, one centroid per domain (cross-fitted labels)")

    def fit(self, data: RoutingData) -> PilotBaseline:
        if self.library_kind == "domain":
            domains = np.array(data.domains)
            self.library = PilotLibrary.from_vectors(
                [(d, data.experts[j], data.vectors[domains == d]) for d, j in data.domain_best().items()], self.encoder)
        else:
            self.library = PilotLibrary.from_winners(data.vectors, data.domains, data.scores, data.experts,
                                                     self.encoder, tie=TIE)
        self.router = PilotRouter(self.library, data.experts, self.aggregate)  # type: ignore[arg-type]
        self.experts = data.experts
        self.prior = data.prior()
        return self

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        out = np.full((len(vectors), len(self.experts)), -np.inf)
        routed = self.router.expert_scores(vectors.astype(np.float32))
        for column, expert in enumerate(self.router.experts):
            out[:, self.experts.index(expert)] = routed[:, column]
        return out + TIE * self.prior

    def describe(self) -> dict[str, object]:
        grouping = ("training queries grouped by their best expert (nDCG@10; ties to the domain-best tied expert), "
                    "one centroid per group") if self.library_kind == "winner" else \
            "one centroid per domain, labelled with the domain's best expert on its training queries"
        return {"pilots": self.library.describe(), "aggregate": self.aggregate, "grouping": grouping}


class DatasetRouter(Router):
    name = "dataset"
    label = "DatasetRouter (nearest training query)"

    def __init__(self, samples: int = DATASET_SAMPLES, seed: int = 0) -> None:
        self.samples, self.seed = samples, seed

    def fit(self, data: RoutingData) -> DatasetRouter:
        rng = np.random.default_rng(self.seed)
        domains = np.array(data.domains)
        best = data.domain_best()
        picks = [rng.permutation(np.flatnonzero(domains == d))[: self.samples] for d in best]
        rows = np.concatenate(picks)
        self.vectors = data.vectors[rows]
        self.labels = np.array([best[data.domains[i]] for i in rows])
        self.n_experts = len(data.experts)
        self.best = {d: data.experts[j] for d, j in best.items()}
        return self

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        nearest = np.argmax(vectors @ self.vectors.T, axis=1)
        return np.eye(self.n_experts)[self.labels[nearest]]

    def describe(self) -> dict[str, object]:
        return {"samples_per_domain": self.samples, "domain_best_expert": self.best}


class KnnRouter(Router):
    name = "knn"
    label = "kNN router"

    def __init__(self, ks: tuple[int, ...] = KNN_KS) -> None:
        self.ks = ks

    def fit(self, data: RoutingData) -> KnnRouter:
        labels = data.winners()
        keep = labels.sum(axis=1) > 0
        self.vectors, self.labels = data.vectors[keep], labels[keep]
        self.prior = data.prior()
        sims = self.vectors @ self.vectors.T
        np.fill_diagonal(sims, -np.inf)  # leave-one-out
        order = np.argsort(-sims, axis=1, kind="stable")
        held = data.scores[keep]
        quality = {}
        for k in self.ks:
            if k >= len(self.vectors):
                continue
            votes = self.labels[order[:, :k]].sum(axis=1) + TIE * self.prior
            quality[k] = float(held[np.arange(len(held)), votes.argmax(axis=1)].mean())
        self.k = max(quality, key=lambda k: (quality[k], -k)) if quality else max(1, len(self.vectors))
        self.loo = quality
        return self

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        if not len(self.vectors):  # no training query prefers any expert: the best one on average
            return np.tile(TIE * self.prior, (len(vectors), 1))
        sims = vectors @ self.vectors.T
        k = min(self.k, len(self.vectors))
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        return self.labels[nearest].sum(axis=1) + TIE * self.prior

    def describe(self) -> dict[str, object]:
        return {"k": self.k, "leave_one_out_ndcg10_by_k": self.loo, "training_queries_with_a_preference": len(self.vectors)}


class ClassifierRouter(Router):
    """Softmax regression on base vectors, soft labels, L2-regularised, full-batch gradient descent."""

    name = "classifier"
    label = "classifier router (logistic regression)"

    def __init__(self, l2: float = 1e-3, steps: int = 500, lr: float = 2.0) -> None:
        self.l2, self.steps, self.lr = l2, steps, lr

    def fit(self, data: RoutingData) -> ClassifierRouter:
        labels = data.winners()
        keep = labels.sum(axis=1) > 0
        x, y = data.vectors[keep].astype(np.float64), labels[keep]
        n_experts = len(data.experts)
        self.w = np.zeros((x.shape[1], n_experts))
        self.b = np.log(np.maximum(y.mean(axis=0), 1e-6)) if len(y) else np.zeros(n_experts)
        for _ in range(self.steps if len(y) else 0):
            p = _softmax(x @ self.w + self.b)
            grad = (p - y) / len(y)
            self.w -= self.lr * (x.T @ grad + self.l2 * self.w)
            self.b -= self.lr * grad.sum(axis=0)
        self.prior = data.prior()
        self.trained_on = int(keep.sum())
        return self

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        return _softmax(vectors.astype(np.float64) @ self.w + self.b) + TIE * self.prior

    def describe(self) -> dict[str, object]:
        return {"l2": self.l2, "steps": self.steps, "training_queries_with_a_preference": self.trained_on}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def default_routers(encoder: str = "") -> list[Router]:
    """The engine's default router first: top-m fusion and the BM25 hybrid are built on it."""
    return [PilotBaseline("mean", encoder, "domain"), PilotBaseline("mean", encoder), PilotBaseline("max", encoder),
            DatasetRouter(), KnnRouter(), ClassifierRouter()]
