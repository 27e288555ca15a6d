"""Evaluation data: BEIR folders and ir-datasets collections as plain Python objects, fully offline.

ir-datasets reads BEIR dataset `beir/<name>` from `$IR_DATASETS_HOME/beir/<name>/source.zip`
(default home `~/.ir_datasets`). `install_beir_folder` writes that zip from a local BEIR-layout folder,
so `ir_datasets.load("beir/<name>/<split>")` then works without network.

Note: ir-datasets reads `IR_DATASETS_HOME` once, when it is first imported (its BEIR registry captures
the path then). Set the variable before anything imports `ir_datasets`; this module imports it lazily.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router_retriever.core.errors import CorpusError
from router_retriever.core.types import Document
from router_retriever.corpus import BeirFolder, iter_jsonl, read_corpus, read_qrels, read_queries
from router_retriever.indexes.atomic import atomic_open
from router_retriever.locations import split_spec

DEFAULT_SPLIT = "test"
DOWNLOAD_FAILED = "All download sources failed"
# files ir-datasets derives from a BEIR source.zip on first use; stale once the zip is replaced
_IRDS_CACHE_FILES = ("docs.pklz4", "queries.json", "irds_version.txt")


class DatasetError(CorpusError):
    """Evaluation data that is missing, malformed or not installed."""


@dataclass
class Collection:
    """Documents, queries (only those with judgements) and relevance judgements of one split."""

    name: str
    docs: list[Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def ir_datasets_home() -> Path:
    """Where ir-datasets keeps its files: $IR_DATASETS_HOME or ~/.ir_datasets."""
    return Path(os.environ.get("IR_DATASETS_HOME", Path.home() / ".ir_datasets"))


@contextmanager
def _dataset_errors() -> Iterator[None]:
    """Report the core reader's CorpusError (bad JSON, duplicate ids, bad qrels rows) as a DatasetError."""
    try:
        yield
    except DatasetError:
        raise
    except CorpusError as exc:
        raise DatasetError(str(exc)) from exc


def _read_split(folder: BeirFolder, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """(judged queries, qrels) of one split, through router_retriever.corpus."""
    with _dataset_errors():
        path = folder.qrels_path(split)
        qrels = read_qrels(folder.root, split)
        queries = read_queries(folder.root)
    if not qrels:
        raise DatasetError(f"{path}: no judgements")
    return _judged_queries(queries, qrels, str(path)), qrels


def _read_docs(folder: BeirFolder) -> list[Document]:
    with _dataset_errors():
        docs = read_corpus(folder.corpus)
    if not docs:
        raise DatasetError(f"{folder.corpus}: no documents")
    return docs


def _judged_queries(queries: dict[str, str], qrels: dict[str, dict[str, int]], where: str) -> dict[str, str]:
    """The queries that have judgements; judgements for unknown queries are an error."""
    unknown = sorted(set(qrels) - set(queries))
    if unknown:
        raise DatasetError(f"{where}: qrels name {len(unknown)} query ids absent from the queries, e.g. {unknown[:3]}")
    return {qid: text for qid, text in queries.items() if qid in qrels}


def _record_fields(name: str) -> tuple[set[str], set[str]]:
    """Fields ir-datasets reads from each doc and each query of BEIR dataset `name` (besides _id)."""
    import ir_datasets

    ds = ir_datasets.load(f"beir/{name}")
    return set(ds.docs_cls()._fields) - {"doc_id"}, set(ds.queries_cls()._fields) - {"query_id"}


def _check_fields(path: Path, fields: set[str]) -> None:
    """Every record has `fields`: text and title at top level, the rest in `metadata` (as ir-datasets reads them)."""
    with _dataset_errors():
        for lineno, obj in iter_jsonl(path):
            top = {f for f in fields & {"text", "title"} if f not in obj}
            meta = fields - {"text", "title"} - set(obj.get("metadata") or {})
            if top or meta:
                where = ([f"key {sorted(top)}"] if top else []) + ([f"'metadata' key {sorted(meta)}"] if meta else [])
                raise DatasetError(f"{path}:{lineno}: missing {' and '.join(where)}, which ir-datasets reads for this dataset")


def validate_beir_folder(folder: BeirFolder, name: str | None = None) -> None:
    """Parse every file of a BEIR folder (and, given a BEIR `name`, check the fields ir-datasets
    reads for it); raise DatasetError naming the first problem."""
    with _dataset_errors():
        folder.check_layout()
    _read_docs(folder)
    for split in folder.splits:
        _read_split(folder, split)
    if name is not None:
        doc_fields, query_fields = _record_fields(name)
        _check_fields(folder.corpus, doc_fields)
        _check_fields(folder.queries, query_fields)


def load_beir_folder(root: Path, split: str = DEFAULT_SPLIT) -> Collection:
    """One split of a BEIR-layout folder, read directly (no ir-datasets)."""
    folder = BeirFolder(root)
    with _dataset_errors():
        folder.check_layout()
    queries, qrels = _read_split(folder, split)
    return Collection(f"{root.name}/{split}", _read_docs(folder), queries, qrels)


def _known_beir_names() -> list[str]:
    """BEIR datasets that ir-datasets reads from `beir/<name>/source.zip` (CQADupStack excluded: one zip)."""
    spec = importlib.util.find_spec("ir_datasets")  # no import: importing creates folders under the home
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("ir-datasets is not installed: pip install ir-datasets")
    downloads = Path(spec.submodule_search_locations[0]) / "etc" / "downloads.json"
    return sorted(k for k in json.loads(downloads.read_text())["beir"] if k != "cqadupstack")


def _beir_name(dataset_id: str) -> str | None:
    """The BEIR dataset whose zip holds `dataset_id` ("beir/scifact/test" -> "scifact"), if any."""
    if not dataset_id.startswith("beir/"):
        return None
    rest = dataset_id.removeprefix("beir/")
    names = [n for n in _known_beir_names() if rest == n or rest.startswith(n + "/")]
    return max(names, key=len, default=None)


def dataset_ids(name: str, splits: list[str]) -> list[str]:
    """The ir-datasets ids of BEIR dataset `name`'s splits: `beir/<name>/<split>` where ir-datasets
    registers one, else `beir/<name>` (datasets with a single test split, such as ArguAna)."""
    import ir_datasets

    ids = [f"beir/{name}/{split}" for split in sorted(splits) if f"beir/{name}/{split}" in ir_datasets.registry]
    return ids or [f"beir/{name}"]


def beir_zip_path(name: str, home: Path | None = None) -> Path:
    """Where ir-datasets expects the source zip of BEIR dataset `name`."""
    return (home or ir_datasets_home()) / "beir" / name / "source.zip"


def _write_zip_atomically(target: Path, members: dict[str, Path]) -> None:
    """Write a zip of {member name: file} to `target` via a fsynced temp file and os.replace."""
    with atomic_open(target) as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for member, path in members.items():
            zf.write(path, member)


def _drop_irds_caches(dataset_dir: Path) -> None:
    """Remove what ir-datasets derived from an earlier zip, so the new one is read."""
    for name in _IRDS_CACHE_FILES:
        path = dataset_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for path in dataset_dir.glob("*.qrels"):
        path.unlink()


def install_beir_folder(folder: Path, name: str | None = None, home: Path | None = None) -> Path:
    """Validate a BEIR folder and install it as ir-datasets' `beir/<name>` source zip; returns the zip path.

    Files are copied verbatim (metadata untouched). `name` defaults to the folder name and must be a
    BEIR dataset ir-datasets knows; `home` defaults to $IR_DATASETS_HOME or ~/.ir_datasets.
    """
    folder = Path(folder).expanduser()
    name = name or folder.name
    known = _known_beir_names()
    if name not in known:
        raise DatasetError(
            f"{name!r} is not a BEIR dataset ir-datasets knows ({', '.join(known)}); "
            f"pass name=..., or evaluate the folder directly with the spec '{folder}:test'"
        )
    beir = BeirFolder(folder)
    validate_beir_folder(beir, name)
    prefix = name.split("/")[0]  # ir-datasets reads e.g. webis-touche2020/v2 from members webis-touche2020/...
    members = {f"{prefix}/corpus.jsonl": beir.corpus, f"{prefix}/queries.jsonl": beir.queries}
    members |= {f"{prefix}/qrels/{split}.tsv": path for split, path in beir.splits.items()}
    target = beir_zip_path(name, home)
    _write_zip_atomically(target, members)
    _drop_irds_caches(target.parent)
    return target


def _as_document(doc: Any) -> Document:
    """An ir-datasets doc (NamedTuple) as a Document; fields beyond id/text/title go to metadata."""
    fields = doc._asdict()
    doc_id = fields.pop("doc_id")
    text = fields.pop("text", None)
    if text is None:
        text = doc.default_text()
    title = fields.pop("title", "") or ""
    metadata = {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}
    return Document(doc_id, text, title, metadata)


def _query_text(query: Any) -> str:
    return query.text if hasattr(query, "text") else query.default_text()


def _not_installed(dataset_id: str) -> DatasetError:
    return DatasetError(
        f"the files of ir-datasets dataset {dataset_id!r} are not under {ir_datasets_home()} and cannot be "
        "downloaded here; install a local BEIR-layout copy with `retriever data add PATH` "
        "(or evaluate a BEIR folder directly: '/path/to/folder:test')"
    )


def load_ir_dataset(dataset_id: str) -> Collection:
    """An ir-datasets dataset with docs, queries and qrels (e.g. "beir/scifact/test"), offline."""
    import ir_datasets
    import requests

    name = _beir_name(dataset_id)
    if name is not None and not beir_zip_path(name).is_file():
        raise _not_installed(dataset_id)
    try:
        ds = ir_datasets.load(dataset_id)
    except KeyError:
        raise DatasetError(f"{dataset_id!r} is neither a BEIR folder nor an ir-datasets dataset id") from None
    missing = [part for part in ("docs", "queries", "qrels") if not getattr(ds, f"has_{part}")()]
    if missing:
        raise DatasetError(f"ir-datasets dataset {dataset_id!r} has no {'/'.join(missing)}; name a split, e.g. '{dataset_id}/test'")
    try:
        qrels: dict[str, dict[str, int]] = {}
        for q in ds.qrels_iter():
            qrels.setdefault(q.query_id, {})[q.doc_id] = q.relevance
        queries = {q.query_id: _query_text(q) for q in ds.queries_iter() if q.query_id in qrels}
        docs = [_as_document(d) for d in ds.docs_iter()]
    except (RuntimeError, requests.RequestException) as e:
        if isinstance(e, requests.RequestException) or DOWNLOAD_FAILED in str(e):
            raise _not_installed(dataset_id) from e
        raise
    return Collection(dataset_id, docs, queries, qrels)


def _folder_spec(spec: str) -> tuple[Path, str] | None:
    """(folder, split) if `spec` names an existing folder, optionally with a ':split' suffix (default test)."""
    location, split = split_spec(spec)
    path = Path(location).expanduser()
    return (path, split or DEFAULT_SPLIT) if path.is_dir() else None


def load_collection(spec: str) -> Collection:
    """Load `spec`: a BEIR folder ("/data/scifact", "/data/scifact:train"; default split test)
    or an ir-datasets id with docs, queries and qrels ("beir/scifact/test", "beir/scifact/train")."""
    folder = _folder_spec(spec)
    if folder is not None:
        return load_beir_folder(*folder)
    if spec.startswith((".", "/", "~")):
        raise DatasetError(f"BEIR folder not found: {spec.rpartition(':')[0] or spec}")
    return load_ir_dataset(spec)


def train_spec(spec: str) -> str | None:
    """The training split of the same collection, if it has one and `spec` is not already it:
    'DIR' / 'DIR:test' -> 'DIR:train'; 'beir/scifact/test' -> 'beir/scifact/train'."""
    folder = _folder_spec(spec)
    if folder is not None:
        root, split = folder
        return f"{root}:train" if split != "train" and "train" in BeirFolder(root).splits else None
    head, _, split = spec.rpartition("/")
    if not head or split == "train":
        return None
    import ir_datasets

    candidate = f"{head}/train"
    return candidate if candidate in ir_datasets.registry else None
