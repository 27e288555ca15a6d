"""The package as users get it: one import name, ``router_retriever``, a small public API, a thin REST client.

The wheel is built from a copy of the source folders (``pip wheel --no-deps``) and must hold ``router_retriever``
and its dist-info alone, every module and data file of the source folders under their installed names; installed
into a folder that already has packages named ``core``, ``service`` and ``eval`` it leaves them alone and works.
The REST client and the RAG adapters are imported in fresh processes, which must not load the engine's
libraries (FAISS, bm25s, ONNX Runtime, torch, sentence-transformers).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

import router_retriever

from conftest import import_or_unavailable

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("faiss", "bm25s", "onnxruntime", "torch", "sentence_transformers")
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS = CONFIG["tool"]["setuptools"]["package-dir"]  # package -> source folder


def loaded_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter (from tests/, so that the source folders are not on its path); which of
    HEAVY and of the engine's modules it loaded."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "\
            f"or m in ('router_retriever.api', 'router_retriever.indexes'))))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT / "tests")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


# -- the public API ---------------------------------------------------------------------------------------------

def test_the_public_api_is_small_and_every_name_resolves() -> None:
    names = set(router_retriever.__all__)
    assert len(names) == len(router_retriever.__all__) <= 25
    assert {"Retriever", "Document", "Hit", "SearchResult", "Settings", "load_settings", "RetrieverError",
            "RetrieverClient", "__version__"} <= names
    for name in names:
        assert getattr(router_retriever, name) is not None
    assert router_retriever.__version__ == version("router-retriever")
    assert set(dir(router_retriever)) >= names


def test_helpers_for_evaluation_and_benchmarks_come_from_their_modules() -> None:
    for module, name in [("router_retriever.metrics", "evaluate"), ("router_retriever.corpus", "read_corpus"),
                         ("router_retriever.locations", "resolve_location"), ("router_retriever.routing.pilots", "PilotLibrary"),
                         ("router_retriever.routing.fusion", "reciprocal_rank_fusion"), ("router_retriever.batching", "QueryBatcher"),
                         ("router_retriever.ray.cluster", "import_ray"), ("router_retriever.training.trainer", "pairs_from_corpus")]:
        assert name not in router_retriever.__all__
        assert hasattr(importlib.import_module(module), name)
        with pytest.raises(AttributeError, match=name):
            getattr(router_retriever, name)


def test_pkg_retriever_locations_are_this_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``pkg:retriever/...`` (the shipped configs' spelling, part of encoder identities) is router_retriever,
    even where another distribution's ``retriever`` is importable."""
    from router_retriever.locations import resolve_location

    (tmp_path / "retriever" / "experts" / "scifact").mkdir(parents=True)
    (tmp_path / "retriever" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert Path(importlib.util.find_spec("retriever").origin).parent == tmp_path / "retriever"

    ours = Path(resolve_location("pkg:router_retriever/experts/scifact"))
    assert (ours / "adapter_config.json").is_file()
    assert Path(resolve_location("pkg:retriever/experts/scifact")) == ours
    assert Path(resolve_location("pkg:retriever/defaults/experts.toml")).is_file()


# -- the thin client --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code, needs", [
    ("import router_retriever.client", None),
    ("from router_retriever import AsyncRetrieverClient, RetrieverClient, Document, SearchResult, RetrieverError", None),
    ("import router_retriever.adapters.langchain", "langchain_core"),
    ("import router_retriever.adapters.llamaindex", "llama_index.core"),
])
def test_the_client_and_the_rag_adapters_load_nothing_of_the_engine(code: str, needs: str | None) -> None:
    if needs:
        import_or_unavailable(needs)
    assert loaded_after(code) == []


def test_the_engine_still_loads_its_libraries() -> None:
    """The probe sees what it looks for: the engine itself loads FAISS and bm25s on import."""
    assert {"faiss", "bm25s", "router_retriever.api"} <= set(loaded_after("from router_retriever import Retriever"))


# -- the wheel --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel --no-deps`` of a copy of the source folders (the checkout is left alone)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ["pyproject.toml", "README.md", "LICENSE"]:
        shutil.copy2(ROOT / name, source / name)
    for folder in PACKAGE_DIRS.values():
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # the setuptools installed here builds it (offline); an older one than the build needs: pip fetches one
    isolation = ["--no-build-isolation"] if _setuptools_at_least(77) else []
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "--quiet", "-w", str(out),
                           str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("router_retriever-*.whl")
    return built


def _setuptools_at_least(major: int) -> bool:
    try:
        return int(version("setuptools").split(".")[0]) >= major
    except Exception:
        return False


def installed_path(source: Path) -> str:
    """retriever/cli/build.py -> router_retriever/cli/build.py; core/types.py -> router_retriever/core/types.py."""
    relative = source.relative_to(ROOT).as_posix()
    for package, folder in sorted(PACKAGE_DIRS.items(), key=lambda kv: -len(kv[1])):
        if relative == folder or relative.startswith(folder + "/"):
            return package.replace(".", "/") + relative[len(folder):]
    raise AssertionError(f"{relative} is in no package folder")


def test_the_wheel_holds_router_retriever_alone_with_every_module_and_data_file(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"router_retriever", f"router_retriever-{version('router-retriever')}.dist-info"}, top
    expected = {installed_path(p) for folder in PACKAGE_DIRS.values() for p in (ROOT / folder).rglob("*.py")
                if "__pycache__" not in p.parts}
    shipped = ["retriever/defaults", "retriever/data", "retriever/experts", "service/static"]  # package data
    expected |= {installed_path(p) for folder in shipped for p in (ROOT / folder).rglob("*") if p.is_file()}
    assert not expected - set(names), sorted(expected - set(names))
    entry_points = next(zipfile.Path(wheel, n).read_text() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "retriever = router_retriever.cli:main" in entry_points
    assert "serve = router_retriever.service.cli:register" in entry_points


def test_the_wheel_installs_beside_packages_named_core_service_and_eval(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    for name in ("core", "service", "eval", "indexes"):  # a user's own packages with the generic names
        (target / name).mkdir(parents=True)
        (target / name / "__init__.py").write_text(f"OWNER = 'user'\nNAME = {name!r}\n")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target",
                           str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    installed = {p.name for p in target.iterdir() if not p.name.endswith(".dist-info")} - {"bin"}  # bin: the script
    assert installed == {"core", "eval", "indexes", "router_retriever", "service"}
    assert all((target / n / "__init__.py").read_text().startswith("OWNER = 'user'") for n in ("core", "eval", "service"))
    code = """
import importlib
assert [importlib.import_module(n).OWNER for n in ('core', 'service', 'eval', 'indexes')] == ['user'] * 4
import router_retriever, router_retriever.core.errors, router_retriever.service, router_retriever.eval
from router_retriever.locations import resolve_location
from router_retriever.cli import parser
print(router_retriever.__file__)
print(resolve_location('pkg:retriever/experts/scifact'))
print(parser().prog)
"""
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    module_file, adapter, prog = done.stdout.split()[-3:]
    assert Path(module_file).is_relative_to(target) and Path(adapter).is_relative_to(target)
    assert (Path(adapter) / "adapter_config.json").is_file()
    assert prog == "retriever"
    version_line = subprocess.run([sys.executable, "-m", "router_retriever.cli", "--version"], capture_output=True,
                                  text=True, timeout=300, env=env, cwd=tmp_path)
    assert version_line.stdout.strip() == f"retriever {version('router-retriever')}", version_line.stderr


def test_the_console_script_runs() -> None:
    """The ``retriever`` command the install put beside this interpreter (``[project.scripts]``)."""
    script = Path(sys.executable).parent / "retriever"
    if not script.exists():
        pytest.skip(f"no console script at {script} (not an installed environment)")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == f"retriever {version('router-retriever')}", done.stderr
    assert set(CONFIG["project"]["scripts"]) == {"retriever"}
    assert importlib.util.find_spec(CONFIG["project"]["scripts"]["retriever"].split(":")[0]) is not None
