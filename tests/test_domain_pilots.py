"""Pilots of domains known only by their corpus (pseudo-queries), and the router's fallback for queries
unlike every configured domain. Real data only: the shipped SciFact slice and PostgreSQL sections, the
SciFact slice's test queries and the shipped PostgreSQL and SRE pilot query files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router_retriever import Retriever, load_settings
from router_retriever.core.errors import ConfigError
from router_retriever.corpus import read_corpus
from router_retriever.locations import resolve_location
from router_retriever.routing.pilots import PilotLibrary
from router_retriever.training.pseudo_queries import pilot_queries, split_sentences

from conftest import DEMO_CORPUS, LORA_EXPERTS

POSTGRES = "pkg:retriever/data/postgres-ops"
EXPERTS = LORA_EXPERTS + """
[[domains]]
name = "science"
corpus = "pkg:retriever/data/scifact-1k"
pilot_queries = 200
expert = "scifact"

[[domains]]
name = "database"
corpus = "pkg:retriever/data/postgres-ops"
pilot_queries = 200
expert = "postgres"
"""


def _config(folder: Path, router: str = "", domains: str = EXPERTS) -> Path:
    path = folder / "experts.toml"
    path.write_text(f'data_dir = "{folder / "data"}"\n[router]\npilots = "domain"\n{router}\n{domains}')
    return path


def _lines(spec: str) -> list[str]:
    text = Path(resolve_location(spec)).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def science_queries() -> list[str]:
    from router_retriever.corpus import read_queries

    return list(read_queries(DEMO_CORPUS, "test").values())[:60]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PilotLibrary]:
    """Pilots built from the two corpora alone (no query of either)."""
    config = _config(tmp_path_factory.mktemp("pilots"))
    with Retriever(load_settings(config)) as retriever:
        return config, retriever.rebuild_pilots()


def test_a_domain_needs_exactly_one_pilot_source(tmp_path: Path) -> None:
    both = EXPERTS.replace('corpus = "pkg:retriever/data/postgres-ops"',
                           'corpus = "pkg:retriever/data/postgres-ops"\nqueries = "pkg:retriever/defaults/pilots/postgres.txt"')
    with pytest.raises(ConfigError, match="domain 'database': give exactly one of queries"):
        load_settings(_config(tmp_path, domains=both))
    neither = EXPERTS.replace('corpus = "pkg:retriever/data/postgres-ops"\n', "")
    with pytest.raises(ConfigError, match="domain 'database': give exactly one of queries"):
        load_settings(_config(tmp_path, domains=neither))
    with pytest.raises(ConfigError, match=r"router\.fallback names unknown expert 'base'"):
        load_settings(_config(tmp_path, router='fallback = "base"'))


def test_corpus_pilot_queries_are_sentences_of_a_stable_sample() -> None:
    docs = read_corpus(Path(resolve_location(POSTGRES)))
    queries = pilot_queries(docs, 100)
    assert 80 <= len(queries) <= 100 and len(set(queries)) == len(queries)
    sentences = {s for d in docs for s in [*split_sentences(d.text), d.title.strip()]}
    assert set(queries) <= sentences
    assert sorted(pilot_queries(list(reversed(docs)), 100)) == sorted(queries)  # the corpus order does not matter


def test_corpus_pilots_route_real_queries_to_their_domain(library: tuple[Path, PilotLibrary],
                                                          science_queries: list[str]) -> None:
    config, pilots = library
    assert pilots.domains == ("science", "database") and pilots.experts == ("scifact", "postgres")
    assert all(80 <= n <= 200 for n in pilots.sizes)
    with Retriever(load_settings(config), read_only=True) as retriever:
        science = [retriever.route(q).expert for q in science_queries]
        database = [retriever.route(q).expert for q in _lines("pkg:retriever/defaults/pilots/postgres.txt")]
    assert science.count("scifact") >= 0.9 * len(science)
    assert database.count("postgres") >= 0.9 * len(database)


def test_fallback_takes_queries_unlike_every_domain(library: tuple[Path, PilotLibrary],
                                                   science_queries: list[str]) -> None:
    config, _ = library
    sre = _lines("pkg:retriever/defaults/pilots/sre.txt")  # a domain with no pilots here
    shares = {}
    for percentile in (0.0, 5.0, 50.0):
        settings = load_settings(config).model_copy(deep=True)
        router = settings.router.model_copy(update={"fallback": "general", "fallback_percentile": percentile})
        with Retriever(settings.model_copy(update={"router": router}), read_only=True) as retriever:
            routes = {"science": [retriever.route(q) for q in science_queries], "sre": [retriever.route(q) for q in sre]}
        for route in routes["science"] + routes["sre"]:
            assert route.fallback == (route.experts == ("general",))
        shares[percentile] = {k: float(np.mean([r.fallback for r in v])) for k, v in routes.items()}
    assert shares[0.0]["science"] <= shares[5.0]["science"] <= shares[50.0]["science"]  # a higher floor, more fallbacks
    assert shares[5.0]["sre"] > shares[5.0]["science"]  # queries of an unconfigured domain fall back more often
    assert shares[50.0]["science"] > 0.0


def test_mix_fallback_adds_the_fallback_expert_to_every_routed_query(library: tuple[Path, PilotLibrary],
                                                                     science_queries: list[str], tmp_path: Path) -> None:
    """`mix_fallback`: a routed query's experts end with the fallback (once), a query that falls back keeps it
    alone, the best-scored expert stays first; without a fallback the setting is refused by name."""
    from router_retriever.routing.router import PilotRouter

    config, pilots = library
    plain = PilotRouter(pilots, ["scifact", "postgres"], fallback="general", percentile=50.0)
    mixed = PilotRouter(pilots, ["scifact", "postgres"], fallback="general", percentile=50.0, mix_fallback=True)
    with Retriever(load_settings(config), read_only=True) as retriever:
        vectors = retriever.embed_queries(science_queries)
    routes = list(zip(plain.route(vectors, top_m=2), mixed.route(vectors, top_m=2)))
    assert any(r.fallback for r, _ in routes) and not all(r.fallback for r, _ in routes)
    for without, with_fallback in routes:
        expected = without.experts if without.fallback else (*without.experts, "general")
        assert with_fallback.experts == expected and with_fallback.scores == without.scores
    with pytest.raises(ConfigError, match=r"router\.mix_fallback fuses the fallback expert's list: set router\.fallback"):
        load_settings(_config(tmp_path, router="mix_fallback = true"))


def test_library_floors_round_trip_and_older_libraries_never_fall_back(library: tuple[Path, PilotLibrary],
                                                                       tmp_path: Path) -> None:
    _, pilots = library
    pilots.save(tmp_path / "pilots.npz")
    loaded = PilotLibrary.load(tmp_path / "pilots.npz")
    assert loaded.quantiles is not None and np.allclose(loaded.quantiles, pilots.quantiles)
    floors = loaded.floors(5.0)
    assert floors is not None and np.all(floors <= loaded.floors(50.0))
    old = PilotLibrary(pilots.vectors, pilots.experts, pilots.domains, pilots.sizes, pilots.encoder)
    old.save(tmp_path / "old.npz")
    assert PilotLibrary.load(tmp_path / "old.npz").floors(5.0) is None


def test_fallback_percentile_learnt_from_the_pilots(library: tuple[Path, PilotLibrary], tmp_path: Path,
                                                    science_queries: list[str]) -> None:
    """`fallback_percentile = "auto"`: the floor is learnt from the pilots alone (each domain left out in turn),
    saved with the library, and used by the router; a library without it is refused by name."""
    from router_retriever.routing.pilots import CANDIDATE_PERCENTILES
    from router_retriever.routing.router import PilotRouter

    config, pilots = library
    assert pilots.calibrated_percentile in CANDIDATE_PERCENTILES
    pilots.save(tmp_path / "pilots.npz")
    assert PilotLibrary.load(tmp_path / "pilots.npz").calibrated_percentile == pilots.calibrated_percentile
    assert pilots.restricted_to(["postgres"]).calibrated_percentile == pilots.calibrated_percentile
    router = PilotRouter(pilots, ["scifact", "postgres"], fallback="general", percentile="auto")
    assert router.percentile == pilots.calibrated_percentile

    settings = load_settings(config)
    auto = settings.router.model_copy(update={"fallback": "general", "fallback_percentile": "auto"})
    with Retriever(settings.model_copy(update={"router": auto}), read_only=True) as retriever:
        science = np.mean([retriever.route(q).fallback for q in science_queries])
        sre = np.mean([retriever.route(q).fallback for q in _lines("pkg:retriever/defaults/pilots/sre.txt")])
    assert sre > science  # an unconfigured domain's queries fall back more often than a configured one's

    single = PilotLibrary(pilots.vectors[:1], pilots.experts[:1], pilots.domains[:1], pilots.sizes[:1], pilots.encoder,
                          pilots.quantiles[:1] if pilots.quantiles is not None else None)
    with pytest.raises(ConfigError, match=r'fallback_percentile = "auto" needs a pilot library of two or more domains'):
        PilotRouter(single, ["scifact"], fallback="general", percentile="auto")
    with pytest.raises(ConfigError, match="fallback_percentile"):
        load_settings(_config(tmp_path, router='fallback = "general"\nfallback_percentile = "often"'))


def test_auto_floor_with_a_library_saved_before_it_names_the_fix(library: tuple[Path, PilotLibrary],
                                                                 tmp_path: Path) -> None:
    """A pilot library saved without the learnt percentile is not used under "auto": routing says to rebuild it,
    and rebuilding it fixes routing."""
    from router_retriever.api import PILOTS_FILE

    _, pilots = library
    config = _config(tmp_path, router='fallback = "general"\nfallback_percentile = "auto"')
    settings = load_settings(config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    PilotLibrary(pilots.vectors, pilots.experts, pilots.domains, pilots.sizes, pilots.encoder,
                 pilots.quantiles).save(settings.data_dir / PILOTS_FILE)
    with Retriever(settings) as retriever:
        with pytest.raises(ConfigError, match=r"has no learnt fallback percentile.*retriever pilots build"):
            retriever.route("Which index type speeds up LIKE queries?")
        assert retriever.rebuild_pilots().calibrated_percentile is not None
        assert retriever.route("Which index type speeds up LIKE queries?").expert in {"postgres", "general"}
