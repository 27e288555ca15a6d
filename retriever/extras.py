"""The optional parts of the package (``pip install 'router-retriever[EXTRA]'``): a command that needs one says
which extra to install instead of failing with a ``ModuleNotFoundError`` traceback."""

from __future__ import annotations

import importlib.util
import re
import sys
from importlib.metadata import PackageNotFoundError, requires

from router_retriever.core.errors import ConfigError

DISTRIBUTION = "router-retriever"
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)[^;]*;\s*extra\s*==\s*['\"]([^'\"]+)['\"]")


def extra_modules(extra: str) -> list[str]:
    """The top-level modules of the distributions ``extra`` adds (each named as its distribution, ``-`` as
    ``_``); empty when the package's metadata is not installed."""
    try:
        lines = requires(DISTRIBUTION) or []
    except PackageNotFoundError:
        return []
    found = [_REQUIREMENT.match(line) for line in lines]
    return [m.group(1).lower().replace("-", "_").replace(".", "_") for m in found
            if m and m.group(2) == extra and m.group(1).lower() != DISTRIBUTION]


def require_extra(extra: str, command: str) -> None:
    """Raise ``ConfigError`` naming the extra to install when a module of ``extra`` is missing (checked
    without importing it)."""
    for module in extra_modules(extra):
        if not _installed(module):
            raise ConfigError(f"`retriever {command}` needs {module}, which is not installed: "
                              f"pip install '{DISTRIBUTION}[{extra}]'")


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None  # None: an import of it is known to fail
    return importlib.util.find_spec(module) is not None
