"""Cut the shipped demo corpus: a deterministic 1,000-document slice of BEIR SciFact.

Keeps every document judged in the train or test qrels (so routing pilots and demo queries have
their relevant documents) plus random others, and all queries and qrels. Source: ../shared/data.
Usage: python scripts/make_demo_corpus.py SRC_BEIR_DIR DEST_DIR
"""

import json
import random
import shutil
import sys
from pathlib import Path

SIZE = 1000


def main(src: Path, dest: Path) -> None:
    judged = set()
    for split in ("train", "test"):
        lines = (src / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
        judged |= {line.split("\t")[1] for line in lines}
    rows = [json.loads(line) for line in (src / "corpus.jsonl").read_text().splitlines()]
    others = [r for r in rows if r["_id"] not in judged]
    keep = judged | {r["_id"] for r in random.Random(13).sample(others, SIZE - len(judged))}
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / "corpus.jsonl").open("w") as out:
        out.writelines(json.dumps(r) + "\n" for r in rows if r["_id"] in keep)
    shutil.copy(src / "queries.jsonl", dest / "queries.jsonl")
    shutil.copytree(src / "qrels", dest / "qrels", dirs_exist_ok=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
