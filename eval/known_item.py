"""Known-item evaluation data for a domain that has documents but no queries.

Each document's pseudo-query (its title, or its first sentence; the same pairs `retriever train-expert
--from-corpus` trains on) must find the rest of that document among the rest of every other one. The
split into train and test queries is the training hold-out (`is_held_out` by document id), so a corpus-only
expert trained with `--holdout F` is tested on the queries of documents it never saw. The result is a
BEIR-layout folder that `retriever eval` and `retriever data add` read like any other collection; it is
a check built from the corpus, not human judgements.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from router_retriever.core.types import Document
from router_retriever.corpus import QRELS_HEADER
from router_retriever.eval.datasets import DatasetError
from router_retriever.training.trainer import is_held_out, pairs_from_corpus


def write_known_item_folder(docs: Sequence[Document], out: Path, holdout: float = 0.2,
                            use_titles: bool = False) -> dict[str, int]:
    """Write corpus.jsonl (each document without its pseudo-query), queries.jsonl and qrels/{train,test}.tsv
    under `out`; returns query counts per split. Documents whose remaining text is identical are all
    relevant to each other's queries (they cannot be told apart)."""
    if not 0.0 < holdout < 1.0:
        raise DatasetError(f"holdout must be a fraction in (0, 1), got {holdout}")
    if out.exists():
        raise DatasetError(f"{out} already exists: remove it or choose another folder")
    rows, queries, split_of = [], {}, {}
    for doc in docs:
        pair = next(iter(pairs_from_corpus([doc], use_titles=use_titles)), None)
        if pair is not None:
            rows.append({"_id": doc.id, "title": "", "text": pair.document})
            queries[doc.id] = pair.query
            split_of[doc.id] = "test" if is_held_out(doc.id, holdout) else "train"
    if not rows:
        raise DatasetError("no document yields a (pseudo-query, rest) pair")
    same_text: dict[str, list[str]] = {}
    for row in rows:
        same_text.setdefault(row["text"], []).append(row["_id"])
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "qrels").mkdir(parents=True)
    (tmp / "corpus.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    (tmp / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q-{i}", "text": q}, ensure_ascii=False) + "\n"
                                               for i, q in queries.items()))
    for split in ("train", "test"):
        judged = [f"q-{row['_id']}\t{d}\t1\n" for row in rows if split_of[row["_id"]] == split for d in same_text[row["text"]]]
        (tmp / "qrels" / f"{split}.tsv").write_text(QRELS_HEADER + "\n" + "".join(judged))
    tmp.rename(out)
    return {split: sum(s == split for s in split_of.values()) for split in ("train", "test")}
