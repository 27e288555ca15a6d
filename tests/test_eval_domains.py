"""The engine router's rows in the evaluation (pilots from the config's [[domains]]: a corpus, no test query)
and leave-one-domain-out, on a small real slice of SciFact and the shipped PostgreSQL sections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_eval_harness import make_slice

from router_retriever import load_settings
from router_retriever.cli import main
from router_retriever.config import PartnerConfig
from router_retriever.corpus import read_corpus, read_qrels, read_queries
from router_retriever.eval.domains import config_library
from router_retriever.eval.engine import routed_label
from router_retriever.eval.harness import run_eval
from router_retriever.eval.runs import CorpusRuns
from router_retriever.routing.pilot_building import domain_queries

from conftest import LORA_EXPERTS, write_config

CONFIG = """
[router]
pilots = "domain"
fallback = "general"
fallback_percentile = 5.0

{experts}
[[domains]]
name = "scifact-mini"
corpus = "{mini}"
pilot_queries = 40
expert = "scifact"

[[domains]]
name = "database"
corpus = "pkg:retriever/data/postgres-ops"
pilot_queries = 100
expert = "postgres"
"""
ENGINE = ("engine: dense, routed by the config's [[domains]] pilots (no test query), fallback to general below the 5th "
          "percentile")
NO_FALLBACK = "pilot router without its fallback (ablation: the config's pilots, from the expert table)"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("domains")
    mini = make_slice(root / "beir" / "scifact-mini", with_train=False)
    config = root / "config.toml"
    config.write_text(f'data_dir = "{root / "data"}"\n' + CONFIG.format(mini=mini, experts=LORA_EXPERTS))
    return run_eval([str(mini)], config=config, out=root / "eval", bm25=False, folds=2)


def test_engine_router_rows_route_with_the_configured_pilots(setup) -> None:
    report = setup
    with_fallback = report.system(ENGINE).collections["scifact-mini"]
    without = report.system(NO_FALLBACK).collections["scifact-mini"]
    assert report.engine_router == ENGINE
    assert set(without.choices.values()) <= {"scifact", "postgres"}  # no pilots for general: only the fallback picks it
    assert without.chosen_counts["scifact"] >= 12  # 16 scientific claims, pilots from the corpus's sentences
    changed = [q for q, e in with_fallback.choices.items() if e != without.choices[q]]
    assert all(with_fallback.choices[q] == "general" for q in changed)
    versus = {c.expert: c for c in report.engine_router_versus}
    assert set(versus) == {"expert: general", "expert: scifact", "expert: postgres", "oracle: best single expert per dataset"}
    for name, comparison in versus.items():
        assert comparison.delta == pytest.approx(report.system(report.engine_router).average["nDCG@10"]
                                                 - report.system(name).average["nDCG@10"])


def test_leave_one_domain_out_routes_without_the_domain_and_its_expert(setup) -> None:
    report = setup
    (held,) = report.held_out_domains
    assert (held.collection, held.removed_expert, held.base_expert, held.queries) == ("scifact-mini", "scifact", "general", 16)
    assert "scifact" not in held.choices and sum(held.choices.values()) == 16
    assert held.base == pytest.approx(report.system("expert: general").average["nDCG@10"])
    assert held.in_domain == pytest.approx(report.system(report.engine_router).average["nDCG@10"])
    postgres = np.mean(list(report.system("expert: postgres").collections["scifact-mini"].ndcg_per_query.values()))
    assert held.routed == pytest.approx(postgres)  # without its domain, postgres is the only expert left with pilots
    assert 0.0 <= held.fallback_share <= 1.0 and held.choices.get("general", 0) == round(16 * held.fallback_share)
    assert held.fallback_percentile == 5.0
    # the engine's own search without the domain (top-1, no mixing here) routes as the table's replay does
    assert held.engine == pytest.approx(held.with_fallback) and held.engine_p == pytest.approx(held.with_fallback_p, abs=0.05)



def test_engine_rows_are_what_retriever_search_returns(setup, tmp_path_factory: pytest.TempPathFactory,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The evaluation's engine runs are the engine's own search: the first test queries, searched by `retriever
    search --json` over the evaluation's data directory (pilots built there by `retriever pilots build` from the
    same config), return the documents of the cached engine run, in its order (dense routed, and hybrid with the
    base model alone)."""
    report = setup
    config = Path(report.settings["config"])
    root = config.parent
    mini = root / "beir" / "scifact-mini"
    data_dir = report.collections[0].data_dir
    settings = load_settings(config)
    test = read_queries(mini, "test")
    queries = {q: test[q] for q in read_qrels(mini, "test")}
    runs = CorpusRuns(settings, read_corpus(mini), Path(data_dir), 100)
    library = config_library(settings, [(d.name, d.expert, runs.base_vectors(domain_queries(d)[0])) for d in settings.domains])
    engine = {"dense": runs.engine_run(queries, library, "dense"), "hybrid": runs.engine_run(queries, library, "hybrid", "general")}
    assert runs.encoded == 0  # the engine runs and the pilot vectors come from the evaluation's cache
    runs.close()
    assert main(["--config", str(config), "--data-dir", data_dir, "pilots", "build"]) == 0
    for qid in list(queries)[:4]:
        for mode, flags in (("dense", []), ("hybrid", ["--expert", "general"])):
            capsys.readouterr()
            assert main(["--config", str(config), "--data-dir", data_dir, "search", queries[qid], "--json",
                         "--mode", mode, *flags]) == 0
            result = json.loads(capsys.readouterr().out)
            expected = sorted(engine[mode].run[qid].items(), key=lambda kv: -kv[1])[:10]
            assert [h["id"] for h in result["hits"]] == [d for d, _ in expected], (mode, qid)
            if mode == "dense":
                assert list(result["route"]["experts"]) == engine[mode].routes[qid]


def test_a_forced_expert_run_is_cached_apart_from_the_router_settings(setup) -> None:
    """Changing the router (top-m, soft mixing) reuses the cached runs of a forced expert, which read no router
    setting, and recomputes the routed runs, which do."""
    report = setup
    config = Path(report.settings["config"])
    mini = config.parent / "beir" / "scifact-mini"
    settings = load_settings(config)
    varied = settings.model_copy(update={"router": settings.router.model_copy(update={"top_m": 2, "mix_temperature": 0.05})})
    test = read_queries(mini, "test")
    queries = {q: test[q] for q in list(read_qrels(mini, "test"))[:3]}
    before = CorpusRuns(settings, read_corpus(mini), Path(report.collections[0].data_dir), 100)
    library = config_library(settings, [(d.name, d.expert, before.base_vectors(domain_queries(d)[0])) for d in settings.domains])
    forced = before.engine_run(queries, library, "hybrid", "general")
    before.close()
    after = CorpusRuns(varied, read_corpus(mini), Path(report.collections[0].data_dir), 100)
    assert after.engine_run(queries, library, "hybrid", "general") == forced
    assert after.timings == {}  # read from the cache
    mixed = after.engine_run(queries, library, "dense")
    assert list(after.timings) == ["engine:dense:routed_s"]  # the new router settings' routed run was computed
    # with top-2 soft mixing too, a 10-hit search returns the head of the evaluation's 100-hit run
    for qid, result in zip(queries, after.built().search_many(list(queries.values()), top_k=10, mode="dense")):
        assert [h.id for h in result.hits] == sorted(mixed.run[qid], key=lambda d: -mixed.run[qid][d])[:10]
    after.close()


def test_the_routed_label_names_the_mixing_settings(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path))
    assert "fused by" not in routed_label(settings, "dense", None)
    mixing = {"top_m": 2, "mix_temperature": 0.03, "mix_peak_weight": 1.0}
    mixed = settings.model_copy(update={"router": settings.router.model_copy(update=mixing)})
    assert routed_label(mixed, "dense", None).endswith("top-2 experts fused by soft mixing (T 0.03, list peaks x1)")
    partners = {"sre": PartnerConfig(expert="general", share=0.1)}
    partnered = mixed.model_copy(update={"router": mixed.router.model_copy(update={"partners": partners})})
    assert routed_label(partnered, "dense", None).endswith("(T 0.03, list peaks x1), partners (sre + general 0.1)")
