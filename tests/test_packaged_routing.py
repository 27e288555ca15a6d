"""The packaged default's router on queries of domains it has no expert for (routing alone: the router's query
pass and the packaged pilots, no document index). Real judged collections from ../shared: ArguAna (debate),
Cranfield (aeronautics), CISI (library science) and Medline (biomedical questions) are unseen domains for the
packaged experts (`scifact`, `postgres`, `sre`); their queries must mostly go to the general model, never in bulk
to the database or SRE experts, which score far below it there (docs/results.md, "Routing outside the packaged domains")."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from router_retriever import Retriever, load_settings
from router_retriever.corpus import read_queries

from conftest import DEMO_CORPUS, SHARED_BEIR, skip_unless_available

UNSEEN = ("arguana", "cranfield", "cisi", "med")
PER_COLLECTION = 30  # the first queries of each test split, in file order
WRONG_EXPERTS = ("postgres", "sre")


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    """The packaged default config as shipped, its data in a temporary folder, its pilot library built."""
    settings = load_settings().model_copy(update={"data_dir": tmp_path_factory.mktemp("packaged") / "data"})
    retriever = Retriever(settings)
    retriever.rebuild_pilots()
    yield retriever
    retriever.close()


def _first_queries(folder: Path) -> list[str]:
    return list(read_queries(folder, "test").values())[:PER_COLLECTION]


@pytest.mark.parametrize("collection", UNSEEN)
def test_unseen_domains_fall_back_to_the_general_model(packaged: Retriever, collection: str) -> None:
    folder = SHARED_BEIR / collection
    if not folder.is_dir():
        skip_unless_available(f"{folder} is absent")
    routes = [packaged.route(query) for query in _first_queries(folder)]
    chosen = Counter(route.expert for route in routes)
    wrong = sum(chosen[e] for e in WRONG_EXPERTS)
    assert wrong <= 0.05 * len(routes), f"{collection}: {dict(chosen)}"
    assert chosen["general"] >= 0.5 * len(routes), f"{collection}: {dict(chosen)}"
    assert all(route.fallback for route in routes if route.expert == "general")


def test_science_queries_still_reach_their_expert(packaged: Retriever) -> None:
    """The floor keeps the packaged domain's own queries (the shipped SciFact slice's test claims) routed."""
    routes = [packaged.route(query) for query in _first_queries(DEMO_CORPUS)]
    chosen = Counter(route.expert for route in routes)
    assert chosen["scifact"] >= 0.7 * len(routes), dict(chosen)
