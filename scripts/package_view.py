"""The package as it is installed, made of links, for the tools that find modules by name on disk.

The source folders (``retriever/``, ``core/``, ``indexes/``, ``service/``, ``eval/``) are installed as one package,
``router_retriever``, by ``[tool.setuptools.package-dir]``. Python needs nothing more (a wheel has that layout; an
editable install maps the names with setuptools' finder), but mypy and grimp (``lint-imports``,
``scripts/check_imports.py``) look for ``router_retriever/`` on disk. This makes it under ``build/package-view/``:
``router_retriever/`` holds a link to each entry of ``retriever/``, and ``core``, ``indexes``, ``service`` and
``eval`` are links to those folders. mypy finds it through ``mypy_path``, grimp through ``PYTHONPATH``
(``scripts/test.sh``); error messages name files under the view (``build/package-view/router_retriever/api.py`` is
``retriever/api.py``). Made anew on every run (a module added since is in it).

    python scripts/package_view.py     # prints the folder to put on PYTHONPATH
"""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIEW = ROOT / "build" / "package-view"
SKIP = {"__pycache__"}


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """``[tool.setuptools.package-dir]``: package name -> source folder."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    return {name: root / folder for name, folder in config["tool"]["setuptools"]["package-dir"].items()}


def make_view(root: Path = ROOT, view: Path = VIEW) -> Path:
    """(Re)make the view of ``root``'s packages under ``view``; return ``view``."""
    mapping = package_dirs(root)
    if view.is_symlink() or view.is_file():
        view.unlink()
    elif view.exists():
        shutil.rmtree(view)
    for name in sorted(mapping, key=lambda n: n.count(".")):
        target = view.joinpath(*name.split("."))
        nested = {n.rpartition(".")[2] for n in mapping if n.rpartition(".")[0] == name}
        if "." not in name:  # a top-level package: a folder of links, so that nested packages can be put in it
            target.mkdir(parents=True)
            for entry in sorted(mapping[name].iterdir()):
                if entry.name not in SKIP and entry.name not in nested:
                    (target / entry.name).symlink_to(os.path.relpath(entry, target))
        else:
            target.symlink_to(os.path.relpath(mapping[name], target.parent), target_is_directory=True)
    return view


if __name__ == "__main__":
    print(make_view())
