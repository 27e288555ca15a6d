"""The engine router's rows in the evaluation (pilots from the config's [[domains]]: a corpus, no test query)
and leave-one-domain-out, on a small real slice of SciFact and the shipped PostgreSQL sections."""

from __future__ import annotations

import numpy as np
import pytest
from test_eval_harness import make_slice

from eval.harness import run_eval

from conftest import LORA_EXPERTS

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
ENGINE = "engine router: the config's [[domains]] pilots, one centroid per domain (no test query)"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("domains")
    mini = make_slice(root / "beir" / "scifact-mini", with_train=False)
    config = root / "config.toml"
    config.write_text(f'data_dir = "{root / "data"}"\n' + CONFIG.format(mini=mini, experts=LORA_EXPERTS))
    return run_eval([str(mini)], config=config, out=root / "eval", bm25=False, folds=2)


def test_engine_router_rows_route_with_the_configured_pilots(setup) -> None:
    report = setup
    with_fallback = report.system(f"{ENGINE}; fallback to general below the 5th percentile").collections["scifact-mini"]
    without = report.system(ENGINE).collections["scifact-mini"]
    assert report.engine_router == f"{ENGINE}; fallback to general below the 5th percentile"
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
