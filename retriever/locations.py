"""Where things are: ``pkg:MODULE/sub`` locations inside installed packages and ``DIR:split`` specs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from router_retriever.core.errors import ConfigError

# ``pkg:retriever/...`` is this package under the import name it had before router_retriever: the shipped configs
# keep that spelling, since a location is part of an encoder's identity (index manifests, ONNX exports, caches)
LEGACY_PACKAGE, PACKAGE = "retriever", "router_retriever"


def resolve_location(spec: str) -> str:
    """Turn ``pkg:MODULE/sub`` into a path inside the installed package; return anything else unchanged.
    ``pkg:retriever/sub`` is ``pkg:router_retriever/sub`` (never another distribution's ``retriever``)."""
    if not spec.startswith("pkg:"):
        return spec
    module, _, sub = spec[4:].partition("/")
    if module == LEGACY_PACKAGE or module.startswith(LEGACY_PACKAGE + "."):
        module = PACKAGE + module[len(LEGACY_PACKAGE):]
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"package {module!r} (in {spec!r}) is not installed")
    return str(Path(next(iter(found.submodule_search_locations))) / sub)


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"DIR:train"`` -> ``("DIR", "train")``; ``"DIR"`` -> ``("DIR", None)``. The split is the part after
    the last colon of the last path component (``pkg:`` prefixes and ``C:`` drives are not splits)."""
    head, sep, tail = spec.rpartition(":")
    if not sep or not tail or "/" in tail or len(head) <= 1 or head == "pkg":
        return spec, None
    return head, tail
