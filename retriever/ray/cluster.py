"""The connection to a Ray cluster (the ``[ray]`` extra), for ``build --ray`` and ``serve --ray``: Ray is
imported here, on use, so the engine without the extra never loads it."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from router_retriever.core.errors import ConfigError


def import_ray(module: str = "ray") -> Any:
    """A Ray module (``ray``, ``ray.data``, ``ray.serve``), or a ``ConfigError`` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"--ray needs {module} ({exc}): pip install 'router-retriever[ray]'") from exc


@contextmanager
def ray_cluster(address: str | None) -> Iterator[None]:
    """Connected to the Ray cluster at ``address`` ("auto": the one ``ray start`` runs on this machine), or
    to a new local one when ``address`` is empty, and disconnected (a local one stopped) on exit; a process
    already connected (``ray.init`` called by its owner) keeps its connection."""
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    ray.init(address=address or None, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
