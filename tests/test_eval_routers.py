"""Routers on synthetic routing data: no models, milliseconds."""

import numpy as np
import pytest

from router_retriever.eval.routers import ClassifierRouter, DatasetRouter, KnnRouter, PilotBaseline, RoutingData


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def two_clusters(n=60, seed=0):
    """Queries near axis 0 are won by expert 'a', near axis 1 by 'b'; a third of them tie (no preference)."""
    rng = np.random.default_rng(seed)
    side = np.arange(n) % 2
    vectors = _unit(np.eye(8)[side] + 0.2 * rng.normal(size=(n, 8)))
    scores = np.where(side[:, None] == np.arange(2)[None, :], 0.9, 0.3)
    scores[::3] = 0.5  # ties
    return RoutingData([f"q{i}" for i in range(n)], ["d0" if s == 0 else "d1" for s in side], vectors, scores, ["a", "b"])


@pytest.mark.parametrize("router", [PilotBaseline("mean"), PilotBaseline("max"), PilotBaseline("mean", library="domain"),
                                    KnnRouter(), ClassifierRouter(), DatasetRouter()])
def test_routers_send_each_cluster_to_its_expert(router):
    data = two_clusters()
    router.fit(data)
    test = _unit(np.eye(8)[[0, 1, 0, 1]] + 0.05)
    assert list(router.scores(test).argmax(axis=1)) == [0, 1, 0, 1]


def test_winners_split_ties_and_drop_no_preference_rows():
    data = RoutingData(["x", "y", "z"], ["d"] * 3, np.eye(3), np.array([[0.5, 0.1, 0.5], [0.2, 0.2, 0.2], [0.0, 1.0, 0.0]]), list("abc"))
    assert data.winners().tolist() == [[0.5, 0.0, 0.5], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_pilots_group_training_queries_by_winner_ties_to_the_domain_best():
    router = PilotBaseline("mean").fit(two_clusters())
    pilots = router.library.describe()
    assert sorted((p["expert"], p["domain"]) for p in pilots) == [("a", "d0"), ("b", "d1")]
    assert sum(p["queries"] for p in pilots) == 60  # every training query in exactly one group


def test_pilots_split_a_domain_by_winning_expert():
    data = two_clusters()
    data.domains = ["d0"] * len(data.qids)  # one domain: its queries split by the expert that wins
    pilots = PilotBaseline("mean").fit(data).library.describe()
    # ties (20) go to a: equal averages, first wins
    assert sorted((p["expert"], p["domain"], p["queries"]) for p in pilots) == [("a", "d0", 40), ("b", "d0", 20)]


def test_domain_library_has_one_pilot_per_domain_for_its_best_expert():
    data = two_clusters()
    data.scores[np.array(data.domains) == "d1"] = [0.2, 0.6]  # every d1 query prefers b
    pilots = PilotBaseline("mean", library="domain").fit(data).library.describe()
    assert sorted((p["expert"], p["domain"], p["queries"]) for p in pilots) == [("a", "d0", 30), ("b", "d1", 30)]


def test_knn_choice_of_k_follows_the_data():
    """Clean clusters: small neighbourhoods route perfectly, so the smallest k wins. Labels flipped for the
    first 40% of each cluster's queries: a 1-NN vote mostly copies the noise, so leave-one-out picks a larger k."""
    clean = KnnRouter().fit(two_clusters())
    assert clean.k == 1 and clean.loo[1] == pytest.approx(0.9)  # every query with a preference gets its winner
    noisy = two_clusters(n=120, seed=1)
    flipped = np.flatnonzero(np.arange(120) % 5 < 2)
    noisy.scores[flipped] = noisy.scores[flipped][:, ::-1]
    assert KnnRouter().fit(noisy).k > 1



@pytest.mark.parametrize("router", [PilotBaseline("mean"), PilotBaseline("max"), PilotBaseline("mean", library="domain"),
                                    KnnRouter(), ClassifierRouter(), DatasetRouter()])
def test_routers_still_choose_when_no_training_query_prefers_an_expert(router):
    data = two_clusters()
    data.scores = np.full((len(data.qids), 2), 0.5)  # every query ties: no preference anywhere
    router.fit(data)
    scores = router.scores(data.vectors)  # queries of both clusters
    assert np.isfinite(scores.max(axis=1)).all()
    assert len(set(scores.argmax(axis=1).tolist())) == 1  # nothing learnt: no query is treated differently
