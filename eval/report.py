"""Write an evaluation report: markdown table, JSON with every figure and the settings, PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

from router_retriever.eval.results import Comparison, Report
from router_retriever.metrics import HEADLINE


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{round(100 * value, 1) + 0.0:.1f}"  # + 0.0: no "-0.0"


def _versus(comparison: Comparison | None) -> list[str]:
    """'+1.2 (p 0.034)' and '27%' cells of a row's comparison with the best single expert."""
    if not comparison:
        return ["–", "–"]
    p, closed = comparison.p_value, comparison.oracle_gap_closed
    shown = "" if p is None else "p < 0.001" if p < 0.001 else f"p {p:.3f}"
    delta = "same per query" if p is None else f"{100 * comparison.delta:+.1f} ({shown})"
    return [delta, "–" if closed is None else f"{100 * closed:.0f}%"]


def markdown(report: Report) -> str:
    """Rows: systems; columns: collections + average (nDCG@10 x100), then average R@100, MRR@10,
    agreement with the per-query oracle and gap to it."""
    names = [c.name for c in report.collections]
    head = ["system", *[f"{n} nDCG@10" for n in names], "avg nDCG@10", "avg R@100", "avg MRR@10",
            "oracle agreement", "gap to oracle", "vs best expert (p)", "oracle gap closed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report.systems:
        avg = row.average
        cells = [row.system, *[_pct(row.collections[n].mean[HEADLINE]) for n in names], f"**{_pct(avg[HEADLINE])}**",
                 _pct(avg["R@100"]), _pct(avg["RR@10"]), _pct(avg.get("oracle_agreement")), _pct(avg["oracle_gap"]),
                 *_versus(row.vs_best_expert)]
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["nDCG@10, R@100, MRR@10 x100 on test queries; agreement: share of queries where the chosen expert "
             "scores the per-query oracle's nDCG@10; gap: oracle nDCG@10 minus the system's."]
    best = report.systems[0].vs_best_expert if report.systems else None
    if best:
        notes.append(f"vs best expert: average nDCG@10 minus that of the best single expert ({best.expert}), "
                     "with the two-sided paired randomization-test p-value (10,000 resamples, differences averaged per "
                     "collection); oracle gap closed: that difference over the best expert's gap to the per-query oracle.")
    for c in report.collections:
        notes.append(f"{c.name}: {c.test} ({c.test_queries} queries, {c.documents} documents); routers "
                     f"trained on: {c.router_training} ({c.train}, {c.train_queries} queries)")
    if len(report.experts) == 2:
        notes.append("With two experts, top-2 routed fusion is the RRF of all experts (one row).")
    if report.settings["single_collection"]:
        notes.append("Only one collection: the multi-domain protocol ran with a single domain (same code path).")
    notes.append(report.settings["protocol"])
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n" + _engine_router(report) + _held_out(report)


def _p(p: float | None) -> str:
    return "–" if p is None else "< 0.001" if p < 0.001 else f"{p:.3f}"


def _engine_router(report: Report) -> str:
    """The engine router's row against every single expert and the dataset oracle."""
    if not report.engine_router_versus:
        return ""
    lines = [f"\n### {report.engine_router}\n", "| against | nDCG@10 difference | p |", "|---|---|---|"]
    lines += [f"| {c.expert} | {100 * c.delta:+.2f} | {_p(c.p_value)} |" for c in report.engine_router_versus]
    return "\n".join(lines) + "\n"


def _floor(percentile: float | None) -> str:
    return "–" if percentile is None else f"{percentile:g}th"


def _held_out(report: Report) -> str:
    """Leave-one-domain-out: each domain's test queries routed without its pilots and expert, against the base."""
    if not report.held_out_domains:
        return ""
    lines = ["\n### Leave one domain out (its pilots and expert removed; its test queries routed among the rest)\n",
             "| collection | removed expert | queries | base | routed (p vs base) | routed + fallback (p vs base) | "
             "fallback share (floor percentile) | chosen (with fallback) | engine search (p vs base) | with every domain |",
             "|" + "---|" * 10]
    for h in report.held_out_domains:
        chosen = ", ".join(f"{e} {n}" for e, n in sorted(h.choices.items(), key=lambda kv: -kv[1]))
        lines.append(f"| {h.collection} | {h.removed_expert} | {h.queries} | {_pct(h.base)} ({h.base_expert}) | "
                     f"{_pct(h.routed)} ({_p(h.routed_p)}) | {_pct(h.with_fallback)} ({_p(h.with_fallback_p)}) | "
                     f"{_pct(h.fallback_share)}% ({_floor(h.fallback_percentile)}) | {chosen} | "
                     f"{_pct(h.engine)} ({_p(h.engine_p)}) | {_pct(h.in_domain)} |")
    return "\n".join(lines) + "\n"


def write_report(report: Report, out: Path) -> dict[str, Path]:
    """Write results.md, results.json, ndcg.png and routing_confusion.png under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "results.md", "json": out / "results.json",
             "ndcg_plot": out / "ndcg.png", "confusion_plot": out / "routing_confusion.png"}
    paths["markdown"].write_text(markdown(report))
    paths["json"].write_text(json.dumps(report.to_json(), indent=1, default=float))
    plot_ndcg(report, paths["ndcg_plot"])
    plot_confusion(report, paths["confusion_plot"])
    return paths


def plot_ndcg(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [c.name for c in report.collections]
    rows = report.systems
    columns = names + (["average"] if len(names) > 1 else [])
    fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(rows) * len(columns) + 4), 5))
    width = 0.8 / len(columns)
    colors = {"baseline": "tab:gray", "expert": "tab:blue", "router": "tab:green", "fusion": "tab:purple", "oracle": "tab:red"}
    for k, col in enumerate(columns):
        values = [100 * (r.average if col == "average" else r.collections[col].mean)[HEADLINE] for r in rows]
        xs = [i + k * width for i in range(len(rows))]
        bars = ax.bar(xs, values, width, color=[colors.get(r.kind, "tab:olive") for r in rows],
                      alpha=1.0 - 0.5 * k / max(1, len(columns)), label=col)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))], [r.system for r in rows], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("nDCG@10 x100")
    ax.set_title(f"nDCG@10 per system ({', '.join(columns)}; colour = kind)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(report: Report, path: Path) -> None:
    """One panel per router and oracle: true domain (collection) x chosen expert, query counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [c.name for c in report.collections]
    experts = [e.name for e in report.experts]
    routed = [r for r in report.systems if r.kind in ("router", "oracle")]
    ncols = min(4, len(routed))
    nrows = -(-len(routed) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * (1.8 + 0.6 * len(experts)), nrows * (1.8 + 0.4 * len(names))),
                             squeeze=False)
    for ax in axes.ravel()[len(routed):]:
        ax.axis("off")
    for ax, row in zip(axes.ravel(), routed):
        counts = np.array([[(row.collections[n].chosen_counts or {}).get(e, 0) for e in experts] for n in names])
        ax.imshow(counts, cmap="Blues", aspect="auto")
        for i in range(len(names)):
            for j in range(len(experts)):
                dark = counts[i, j] > counts.max() / 2
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8, color="white" if dark else "black")
        ax.set_xticks(range(len(experts)), experts, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(row.system, fontsize=7)
        ax.set_xlabel("chosen expert", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("true domain", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
