"""Known-item collections made from a corpus alone: splits follow the training hold-out."""

from pathlib import Path

import pytest

from router_retriever.core.types import Document
from router_retriever.corpus import read_corpus
from router_retriever.eval.datasets import DatasetError, load_collection
from router_retriever.eval.known_item import write_known_item_folder
from router_retriever.locations import resolve_location
from router_retriever.training.trainer import is_held_out, pairs_from_corpus

POSTGRES = Path(resolve_location("pkg:retriever/data/postgres-ops"))


def test_known_item_folder_follows_the_training_holdout(tmp_path: Path) -> None:
    docs = read_corpus(POSTGRES)[:120]
    counts = write_known_item_folder(docs, tmp_path / "ki", holdout=0.2)
    test, train = load_collection(f"{tmp_path / 'ki'}:test"), load_collection(f"{tmp_path / 'ki'}:train")
    assert counts == {"train": len(train.queries), "test": len(test.queries)} and counts["test"] > 0
    held = [d for d in docs if is_held_out(d.id, 0.2)]
    assert {q.removeprefix("q-") for q in test.queries} == {d.id for d in held if pairs_from_corpus([d], use_titles=False)}
    training_queries = {p.query for p in pairs_from_corpus([d for d in docs if not is_held_out(d.id, 0.2)],
                                                           use_titles=False)}
    assert not set(test.queries.values()) & training_queries  # the expert never trained on a test query
    texts = {d.id: d.text for d in test.docs}
    for qid, query in test.queries.items():
        doc_id = qid.removeprefix("q-")
        assert doc_id in test.qrels[qid] and query not in texts[doc_id]  # the query is cut from its document
    assert not (tmp_path / "ki.tmp").exists()


def test_identical_remainders_are_relevant_to_each_other_and_bad_input_is_refused(tmp_path: Path) -> None:
    docs = [Document(id=i, title="", text=f"{first} The rest is the same for both of them.")
            for i, first in (("a", "First one here."), ("b", "Second one here."))]
    write_known_item_folder(docs, tmp_path / "ki", holdout=0.5)
    rows = (tmp_path / "ki" / "qrels" / "train.tsv").read_text() + (tmp_path / "ki" / "qrels" / "test.tsv").read_text()
    assert {"q-a\ta\t1", "q-a\tb\t1", "q-b\ta\t1", "q-b\tb\t1"} <= set(rows.splitlines())
    with pytest.raises(DatasetError, match="already exists"):
        write_known_item_folder(docs, tmp_path / "ki")
    with pytest.raises(DatasetError, match="fraction"):
        write_known_item_folder(docs, tmp_path / "other", holdout=0.0)
    with pytest.raises(DatasetError, match="no document"):
        write_known_item_folder([Document(id="x", title="", text="Too short.")], tmp_path / "none")


def test_cli_split_matches_the_shipped_postgres_expert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from router_retriever.cli import main

    assert main(["data", "known-item", "pkg:retriever/data/postgres-ops", str(tmp_path / "ki")]) == 0
    card = json.loads(Path(resolve_location("pkg:retriever/experts/postgres/training.json")).read_text())
    assert f"wrote {tmp_path / 'ki'}: {card['n_pairs']} train and 87 test" in capsys.readouterr().out
    assert "87 held-out pairs" in card["evaluation"]["task"]
