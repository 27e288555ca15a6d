"""A BM25 (sparse, lexical) index over one corpus, keyed by the document store's int64 ids.

Built on ``bm25s`` (eager sparse scoring: every document-term BM25 weight is precomputed into a CSC
matrix) with PyStemmer's Snowball stemmers. Its defaults: k1 0.9, b 0.4, Lucene's BM25, English stopwords
and Snowball stemming over ``Document.content``; how it compares with Pyserini/Lucene: ``bench/bm25_choice.py``.

Layout of an index folder (the folder belongs to this index alone): ``manifest.json`` plus
content-addressed files, ``<role>-<sha12>.<ext>``: bm25s's own files (score matrix ``data``/``indices``/
``indptr``, ``vocab``, ``params``, and ``nonoccurrence`` for BM25L/BM25+) written by ``bm25s.BM25.save``
and read back by ``bm25s.BM25.load``, and ``docs`` (row -> iid, and each row's token ids, the forward
index that ``add`` rebuilds from). Every file is written atomically (temp file, fsync, rename); the
manifest, which names each file with its SHA-256, is written last and is the commit point: a crash at any
moment leaves the previous complete index in force. Files the new manifest does not name are deleted
after it is in place.

Changes (BM25 statistics, document frequencies and average length, are corpus-wide):

- ``add`` rebuilds the score matrix at once from the stored token ids of the live documents plus the new
  ones (only the new texts are tokenized), so statistics are exact and the new documents are searchable
  as soon as ``add`` returns. Its cost grows linearly with the corpus, almost all of it bm25s's own
  indexing (0.8-1.3 s for one document added to 5,183 SciFact documents on a busy 2-core machine:
  ``bench/bm25_choice.py`` measures it), so add in batches.
- ``remove`` only tombstones: the rows stay, get weight 0 through bm25s's ``weight_mask`` and are never
  returned again; the tombstones are saved in the manifest. Until the next ``add``, ``build`` or
  ``compact`` (which drop the tombstoned rows), the statistics still count the removed documents, as
  Lucene's do until a segment merge.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any, Literal

import bm25s
import numpy as np
import Stemmer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from router_retriever.core.errors import IndexCorruptError, IndexMismatchError, IndexNotBuiltError, InvalidRequestError
from router_retriever.indexes.atomic import atomic_write_bytes, read_checked

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PAD_SCORE = 0.0  # score of an empty slot (its iid is -1); real hits score above 0

# role -> (file name bm25s.BM25.save writes, keyword naming it in bm25s.BM25.load)
_BM25S_FILES = {
    "data": ("data.csc.index.npy", "data_name"),
    "indices": ("indices.csc.index.npy", "indices_name"),
    "indptr": ("indptr.csc.index.npy", "indptr_name"),
    "vocab": ("vocab.index.json", "vocab_name"),
    "params": ("params.index.json", "params_name"),
    "nonoccurrence": ("nonoccurrence_array.index.npy", "nnoc_name"),
}
_SUFFIX = {"data": ".npy", "indices": ".npy", "indptr": ".npy", "vocab": ".json", "params": ".json",
           "nonoccurrence": ".npy", "docs": ".npz"}


class SparseConfig(BaseModel):
    """BM25 parameters and text analysis; an index built with other settings is refused on load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k1: float = Field(default=0.9, ge=0, description="BM25 term-frequency saturation")
    b: float = Field(default=0.4, ge=0, le=1, description="BM25 document-length normalisation (0: none, 1: full)")
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = Field(
        default="lucene", description="bm25s's BM25 variant"
    )
    stemmer: str | None = Field(default="english", description="a PyStemmer (Snowball) algorithm; None: no stemming")
    stopwords: str | None = Field(default="en", description="a bm25s stopword list ('en', 'de', ...); None: keep all")

    @field_validator("stemmer")
    @classmethod
    def _known_stemmer(cls, value: str | None) -> str | None:
        if value is not None and value not in Stemmer.algorithms():
            raise ValueError(f"unknown stemmer {value!r}; PyStemmer has {', '.join(Stemmer.algorithms())}")
        return value

    @field_validator("stopwords")
    @classmethod
    def _known_stopwords(cls, value: str | None) -> str | None:
        if value is not None:
            bm25s.tokenize("", stopwords=value, show_progress=False)  # raises ValueError naming the known lists
        return value


class FileEntry(BaseModel):
    name: str
    sha256: str


class SparseManifest(BaseModel):
    """What an index was built with, its files and checksums, and the removed (tombstoned) iids."""

    format_version: int = FORMAT_VERSION
    config: SparseConfig
    bm25s_version: str
    count: int = Field(description="live documents")
    rows: int = Field(description="documents in the score matrix, tombstoned ones included")
    tombstones: list[int] = Field(default_factory=list)
    files: dict[str, FileEntry]


@dataclasses.dataclass(frozen=True)
class _State:
    """One immutable version of the index: searches read it without a lock, changes replace it."""

    bm25: Any  # bm25s.BM25; None when no row has a token
    iids: np.ndarray  # (rows,) int64: row -> iid
    tokens: np.ndarray  # (total tokens,) int32: every row's token ids, concatenated
    offsets: np.ndarray  # (rows + 1,) int64: row r's tokens are tokens[offsets[r]:offsets[r + 1]]
    vocab: dict[str, int]  # token -> id (bm25s's vocab_dict, the score matrix's columns)
    tombstones: frozenset[int] = frozenset()
    mask: np.ndarray | None = None  # (rows,) float32: 0 for a tombstoned row, 1 otherwise; None if no tombstones

    @property
    def count(self) -> int:
        return len(self.iids) - len(self.tombstones)


class SparseIndex:
    """BM25 over one corpus, keyed by the document store's int64 ids (see the module docstring)."""

    def __init__(self, folder: Path, config: SparseConfig) -> None:
        self.folder = folder
        self.config = config
        self._state: _State | None = None
        self._lock = threading.RLock()  # serializes changes; searches read self._state as it is
        self._save_lock = threading.Lock()
        self._local = threading.local()  # a PyStemmer instance per thread (they are not thread-safe)

    @property
    def exists(self) -> bool:
        return (self.folder / MANIFEST).is_file()

    @property
    def count(self) -> int:
        """Live (not removed) documents."""
        state = self._state
        return 0 if state is None else state.count

    @property
    def is_empty(self) -> bool:
        return self.count == 0

    def ids(self) -> np.ndarray:
        """Every live (not removed) id the index holds (int64)."""
        state = self._state
        if state is None:
            return np.zeros(0, dtype=np.int64)
        return state.iids[~np.isin(state.iids, np.fromiter(state.tombstones, dtype=np.int64))]

    def build(self, iids: np.ndarray, texts: list[str]) -> None:
        """Replace the in-memory index with one over ``texts`` under ``iids`` (call ``save`` to persist)."""
        iids = self._check_new(iids, texts, None)
        state = self._compose(None, iids, texts)
        with self._lock:
            self._state = state

    def add(self, iids: np.ndarray, texts: list[str]) -> None:
        """Add documents, rebuilding the score matrix at once (searchable on return; tombstoned rows are
        dropped). An iid already live in the index is refused: remove it first."""
        with self._lock:
            iids = self._check_new(iids, texts, self._state)
            if len(iids):
                self._state = self._compose(self._state, iids, texts)

    def remove(self, iids: np.ndarray | list[int]) -> int:
        """Tombstone these iids (never returned again); returns how many were live in the index."""
        wanted = np.unique(np.asarray(iids, dtype=np.int64))
        with self._lock:
            state = self._state
            if state is None or not len(wanted):
                return 0
            hit = np.isin(state.iids, wanted)
            new = frozenset(int(i) for i in state.iids[hit]) - state.tombstones
            if not new:
                return 0
            tombstones = state.tombstones | new
            mask = np.isin(state.iids, np.fromiter(tombstones, dtype=np.int64), invert=True).astype(np.float32)
            self._state = dataclasses.replace(state, tombstones=tombstones, mask=mask)
            return len(new)

    def compact(self) -> None:
        """Drop tombstoned rows and recompute the statistics over the live documents only."""
        with self._lock:
            if self._state is not None and self._state.tombstones:
                self._state = self._compose(self._state, np.zeros(0, dtype=np.int64), [])

    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, iids) per query, each of shape (len(queries), k): float32 BM25 scores best first,
        int64 iids; slots past the matching documents have iid -1 and score 0. A query with no indexed
        term (empty, only stopwords, unknown words) and an empty index give rows of -1."""
        if k < 0:
            raise InvalidRequestError(f"k must be >= 0, got {k}")
        n = len(queries)
        scores = np.full((n, k), PAD_SCORE, dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        state = self._state
        if state is None or state.bm25 is None or state.count == 0 or n == 0 or k == 0:
            return scores, ids
        depth = min(k, len(state.iids))
        rows, found = state.bm25.retrieve(
            self._tokenize(queries), k=depth, show_progress=False, n_threads=0,
            backend_selection="numpy", weight_mask=state.mask,
        )
        found = np.asarray(found, dtype=np.float32)
        hit = found > 0  # no matching term, or tombstoned (weight 0): not a hit
        scores[:, :depth] = np.where(hit, found, PAD_SCORE)
        ids[:, :depth] = np.where(hit, state.iids[np.asarray(rows)], -1)
        return scores, ids

    def save(self) -> SparseManifest:
        """Persist atomically: every file first (temp + fsync + rename), then the manifest naming them."""
        with self._save_lock:
            state = self._state
            if state is None:
                raise IndexNotBuiltError(f"sparse index {self.folder} has nothing to save: build it first")
            self.folder.mkdir(parents=True, exist_ok=True)
            blobs = {"docs": _docs_bytes(state)}
            if state.bm25 is not None:
                staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.folder))
                try:
                    state.bm25.save(staging, show_progress=False)
                    for role, (name, _) in _BM25S_FILES.items():
                        if (staging / name).is_file():
                            blobs[role] = (staging / name).read_bytes()
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
            files = {}
            for role, data in blobs.items():
                digest = hashlib.sha256(data).hexdigest()
                files[role] = FileEntry(name=f"{role}-{digest[:12]}{_SUFFIX[role]}", sha256=digest)
                atomic_write_bytes(self.folder / files[role].name, data)
            manifest = SparseManifest(
                config=self.config, bm25s_version=bm25s.__version__, count=state.count, rows=len(state.iids),
                tombstones=sorted(state.tombstones), files=files,
            )
            atomic_write_bytes(self.folder / MANIFEST, manifest.model_dump_json(indent=2).encode())
            self._remove_unnamed({entry.name for entry in files.values()})
            return manifest

    def remove_orphans(self) -> None:
        """Delete what a crash (``kill -9``) left that the committed manifest does not name (every file of ours
        without one; nothing when it cannot be read): earlier versions, temp files, staging folders. Writers only."""
        if not self.folder.is_dir():
            return
        try:
            named = {entry.name for entry in self._read_manifest().files.values()} if self.exists else set()
        except IndexCorruptError:
            return
        self._remove_unnamed(named)

    def _remove_unnamed(self, named: set[str]) -> None:
        """Delete files of earlier versions and leftovers of an interrupted save (temp files, staging folders)."""
        for path in self.folder.iterdir():
            if path.is_file() and path.name not in named and (_is_ours(path.name) or _is_temp(path.name)):
                path.unlink(missing_ok=True)
            elif path.name.startswith(".staging-") and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)

    def load(self) -> SparseManifest:
        """Load from disk, refusing an index of other settings or a missing, truncated or corrupt file."""
        manifest = self._read_manifest()
        if manifest.format_version != FORMAT_VERSION:
            raise IndexMismatchError(
                f"sparse index in {self.folder} has format {manifest.format_version}, this code reads {FORMAT_VERSION}; rebuild it"
            )
        if manifest.config != self.config:
            found, wanted = manifest.config.model_dump(), self.config.model_dump()
            diff = ", ".join(f"{key}: index has {found[key]!r}, config wants {wanted[key]!r}"
                             for key in wanted if found[key] != wanted[key])
            raise IndexMismatchError(f"sparse index in {self.folder} does not match its configuration ({diff}); rebuild it")
        if "docs" not in manifest.files:
            raise IndexCorruptError(f"sparse index manifest {self.folder / MANIFEST} names no docs file")
        for entry in manifest.files.values():
            read_checked(self.folder / entry.name, entry.sha256, "sparse index")
        iids, tokens, offsets = self._read_docs(self.folder / manifest.files["docs"].name)
        bm25 = self._read_bm25(manifest) if "params" in manifest.files else None
        vocab = {} if bm25 is None else bm25.vocab_dict
        tombstones = frozenset(manifest.tombstones)
        consistent = (len(iids) == manifest.rows and tombstones <= set(iids.tolist())
                      and (bm25.scores["num_docs"] == len(iids) if bm25 is not None else not len(tokens))
                      and (not len(tokens) or int(tokens.max()) < len(vocab)))
        if not consistent:
            raise IndexCorruptError(f"sparse index in {self.folder} is inconsistent: manifest, docs and score matrix disagree")
        mask = np.isin(iids, np.fromiter(tombstones, dtype=np.int64), invert=True).astype(np.float32) if tombstones else None
        state = _State(bm25, iids, tokens, offsets, vocab, tombstones, mask)
        with self._lock:
            self._state = state
        return manifest

    # -- internals ---------------------------------------------------------------------------------

    def _stemmer(self) -> Any:
        if self.config.stemmer is None:
            return None
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = Stemmer.Stemmer(self.config.stemmer)
        return stemmer

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        """Lowercase, split into words of 2+ characters, drop stopwords, stem (bm25s.tokenize)."""
        tokens: list[list[str]] = bm25s.tokenize(
            texts, stopwords=self.config.stopwords, stemmer=self._stemmer(), return_ids=False, show_progress=False,
        )
        return tokens

    def _compose(self, base: _State | None, iids: np.ndarray, texts: list[str]) -> _State:
        """A new state: ``base``'s live rows (their stored tokens) followed by the new documents."""
        if base is not None and base.tombstones:
            live = base.mask.astype(bool) if base.mask is not None else np.ones(len(base.iids), dtype=bool)
            lengths = np.diff(base.offsets)
            old_iids, old_tokens, old_lengths = base.iids[live], base.tokens[np.repeat(live, lengths)], lengths[live]
        elif base is not None:
            old_iids, old_tokens, old_lengths = base.iids, base.tokens, np.diff(base.offsets)
        else:
            old_iids, old_tokens, old_lengths = np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
        vocab = dict(base.vocab) if base is not None else {}
        new_tokens, new_lengths = np.zeros(0, np.int32), np.zeros(0, np.int64)
        if texts:
            tokenized = bm25s.tokenize(texts, stopwords=self.config.stopwords, stemmer=self._stemmer(), show_progress=False)
            to_ours = np.zeros(len(tokenized.vocab), dtype=np.int32)  # tokenizer's ids -> ids in ``vocab``
            for token, tid in tokenized.vocab.items():
                to_ours[tid] = vocab.setdefault(token, len(vocab))
            new_lengths = np.fromiter(map(len, tokenized.ids), dtype=np.int64, count=len(tokenized.ids))
            flat = np.fromiter(itertools.chain.from_iterable(tokenized.ids), dtype=np.int64, count=int(new_lengths.sum()))
            new_tokens = to_ours[flat]
        all_tokens = np.concatenate([old_tokens.astype(np.int32), new_tokens])
        lengths = np.concatenate([old_lengths, new_lengths])
        all_iids = np.concatenate([old_iids, iids]).astype(np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # renumber the tokens still in use 0..m-1: the score matrix has one column per vocabulary entry
        used, column = np.unique(all_tokens, return_inverse=True)
        by_id = np.empty(len(vocab), dtype=object)
        by_id[list(vocab.values())] = list(vocab)
        new_vocab = {str(token): i for i, token in enumerate(by_id[used])}
        column = column.astype(np.int32)
        if not len(column):  # no documents, or none with an indexable word: nothing can match
            return _State(None, all_iids, column, offsets, new_vocab)
        bm25 = bm25s.BM25(k1=self.config.k1, b=self.config.b, method=self.config.method, backend="numpy")
        rows = [column[offsets[r]:offsets[r + 1]].tolist() for r in range(len(all_iids))]
        bm25.index((rows, new_vocab), create_empty_token=False, show_progress=False)
        return _State(bm25, all_iids, column, offsets, bm25.vocab_dict)

    @staticmethod
    def _check_new(iids: np.ndarray, texts: list[str], base: _State | None) -> np.ndarray:
        iids = np.asarray(iids)
        if iids.ndim != 1 or (len(iids) and not np.issubdtype(iids.dtype, np.integer)):
            raise InvalidRequestError(f"iids must be a 1-D integer array, got shape {iids.shape} dtype {iids.dtype}")
        iids = iids.astype(np.int64)
        if len(iids) != len(texts):
            raise InvalidRequestError(f"{len(iids)} iids for {len(texts)} texts")
        if len(iids) and iids.min() < 0:
            raise InvalidRequestError("iids must be >= 0 (-1 marks an empty result slot)")
        if len(np.unique(iids)) != len(iids):
            raise InvalidRequestError("iids must be unique")
        if base is not None:
            present = set(base.iids[np.isin(base.iids, iids)].tolist()) - base.tombstones
            if present:
                raise InvalidRequestError(f"{len(present)} iids are already in the sparse index, e.g. {sorted(present)[:3]}")
        return iids

    def _read_manifest(self) -> SparseManifest:
        path = self.folder / MANIFEST
        try:
            text = path.read_text()
        except FileNotFoundError as exc:
            raise IndexNotBuiltError(f"no sparse index in {self.folder}: build it first") from exc
        try:
            return SparseManifest(**json.loads(text))
        except (json.JSONDecodeError, ValidationError, TypeError) as exc:
            raise IndexCorruptError(f"sparse index manifest {path} is corrupt: {exc}") from exc

    @staticmethod
    def _read_docs(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            with np.load(path, allow_pickle=False) as npz:
                iids, tokens, offsets = npz["iids"], npz["tokens"], npz["offsets"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise IndexCorruptError(f"sparse index file {path} cannot be read: {exc}") from exc
        if len(offsets) != len(iids) + 1 or (len(offsets) and offsets[-1] != len(tokens)):
            raise IndexCorruptError(f"sparse index file {path} is inconsistent")
        return iids.astype(np.int64), tokens.astype(np.int32), offsets.astype(np.int64)

    def _read_bm25(self, manifest: SparseManifest) -> Any:
        names = {keyword: manifest.files[role].name for role, (_, keyword) in _BM25S_FILES.items() if role in manifest.files}
        try:
            return bm25s.BM25.load(self.folder, mmap=False, load_corpus=False, show_progress=False, **names)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"sparse index in {self.folder} cannot be read by bm25s: {exc}") from exc


def _docs_bytes(state: _State) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, iids=state.iids, tokens=state.tokens, offsets=state.offsets)
    return buffer.getvalue()


def _is_temp(name: str) -> bool:
    """A temp file of an interrupted atomic write (``router_retriever.indexes.atomic``): ``.<name>.<random>.tmp``."""
    return name.startswith(".") and name.endswith(".tmp")


def _is_ours(name: str) -> bool:
    """A content-addressed file this class writes: ``<role>-<12 hex digits><suffix>``."""
    stem, _, rest = name.partition("-")
    digest = rest[:12]
    return (stem in _SUFFIX and rest == digest + _SUFFIX[stem]
            and len(digest) == 12 and all(c in "0123456789abcdef" for c in digest))
