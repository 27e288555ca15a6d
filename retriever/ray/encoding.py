"""Document encoding on a Ray cluster (``retriever build --ray [ADDRESS]``; the ``[ray]`` extra).

The build itself is unchanged (``Indexer.build``: the store takes the corpus, the driver writes every index
and commits it atomically); only the encoding of the store's documents runs on the cluster: Ray Data
takes the texts (with their row numbers) from the driver, a pool of actors, each holding one loaded copy of
the model, encodes them ``[ray] rows_per_batch`` at a time, and the driver puts the vectors back in row
order. A failed actor is restarted and its batch retried by Ray Data (its default for actor pools: no
limit); a build that dies leaves the previous index in force (nothing is committed until every vector is
back).
"""

from __future__ import annotations

import numpy as np

from router_retriever.config import RayConfig
from router_retriever.encoding.encoders import Encoder, EncoderSpec, Role, encoder
from router_retriever.ray.cluster import import_ray


class EncodeBatch:
    """One actor's model, loaded once, encoding every batch of rows it is handed."""

    def __init__(self, spec: EncoderSpec, role: Role, batch_size: int) -> None:
        self.encoder = encoder(spec, role)
        self.batch_size = batch_size
        _ = self.encoder.dimension  # load the model now, not on the first batch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"row": batch["row"], "vector": self.encoder.encode(batch["text"].tolist(), self.batch_size)}


class RayEncoding:
    """A ``DocumentEncoding`` (``router_retriever.indexer``) that encodes on the connected Ray cluster."""

    def __init__(self, config: RayConfig, batch_size: int) -> None:
        self.config = config
        self.batch_size = batch_size

    def __call__(self, document_encoder: Encoder, texts: list[str], progress: bool) -> np.ndarray:
        """(len(texts), dimension) float32 vectors of ``texts``, in their order."""
        data = import_ray("ray.data")
        data.DataContext.get_current().enable_progress_bars = progress
        blocks = max(self.config.actors, -(-len(texts) // self.config.rows_per_batch))
        rows = data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=blocks)
        encoded = rows.map_batches(
            EncodeBatch, fn_constructor_kwargs={"spec": document_encoder.spec, "role": document_encoder.role,
                                                "batch_size": self.batch_size},
            batch_size=self.config.rows_per_batch, batch_format="numpy",
            compute=data.ActorPoolStrategy(size=self.config.actors), num_cpus=self.config.actor_cpus)
        order, vectors = [], []
        for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
            order.append(batch["row"])
            vectors.append(batch["vector"])
        return np.ascontiguousarray(np.concatenate(vectors)[np.argsort(np.concatenate(order))], dtype=np.float32)
