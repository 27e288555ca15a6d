"""Ranking metrics through ir-measures (trec_eval semantics via pytrec_eval): the one metrics path of the
evaluation, the winner pilot library and the training card.

A query that has judgements but no ranking scores 0 (as `trec_eval -c`); rankings of unjudged
queries are ignored. Ties in score are broken as trec_eval does (higher doc id first) for every
measure: ir-measures' providers disagree on ties otherwise (RR@10 comes from its msmarco provider).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ir_measures

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

HEADLINE = "nDCG@10"
DEFAULT_MEASURES: tuple[str, ...] = ("nDCG@10", "R@100", "RR@10")


@dataclass(frozen=True)
class EvalResult:
    """Mean and per-query values, keyed by measure name ("nDCG@10", "R@100", "RR@10")."""

    mean: dict[str, float]
    per_query: dict[str, dict[str, float]]

    @property
    def headline(self) -> float:
        """nDCG@10 (when it was computed)."""
        return self.mean[HEADLINE]


def parse_measures(names: Sequence[str]) -> list[ir_measures.Measure]:
    """ir-measures objects for measure names such as "nDCG@10", "R@1000", "P@5"."""
    measures = []
    for name in names:
        try:
            measures.append(ir_measures.parse_measure(name))
        except (NameError, ValueError, SyntaxError):
            raise ValueError(f"unknown measure {name!r}; e.g. {', '.join(DEFAULT_MEASURES)}") from None
    return measures


def _untied(scores: Mapping[str, float]) -> dict[str, float]:
    """Rank-based scores (n, n-1, ..., 1) in trec_eval order: score descending, then doc id descending."""
    ranked = sorted(scores.items(), key=lambda item: (float(item[1]), item[0]), reverse=True)
    return {doc: float(len(ranked) - i) for i, (doc, _) in enumerate(ranked)}


def evaluate(run: Run, qrels: Qrels, measures: Sequence[str] = DEFAULT_MEASURES) -> EvalResult:
    """Score `run` (qid -> {doc id: score}) against `qrels` (qid -> {doc id: relevance})."""
    if not qrels:
        raise ValueError("qrels are empty: nothing to evaluate against")
    parsed = parse_measures(measures)
    qrels_ = {qid: dict(docs) for qid, docs in qrels.items()}
    run_ = {qid: _untied(docs) for qid, docs in run.items()}
    per_query: dict[str, dict[str, float]] = {qid: {} for qid in qrels_}
    for metric in ir_measures.iter_calc(parsed, qrels_, run_):
        per_query[metric.query_id][str(metric.measure)] = float(metric.value)
    aggregate = ir_measures.calc_aggregate(parsed, qrels_, run_)
    mean = {str(m): float(aggregate[m]) for m in parsed}
    return EvalResult(mean=mean, per_query=per_query)
