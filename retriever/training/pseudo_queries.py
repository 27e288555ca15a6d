"""Queries made from a corpus alone: its sentences, spans of words or keywords (for corpus-only experts
and for the pilots of a domain that has no queries)."""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from router_retriever.core.types import Document

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

PSEUDO_QUERY_KINDS = ("sentences", "spans", "keywords", "mixed")


def split_sentences(text: str, *, min_words: int = 4, max_words: int = 64) -> list[str]:
    """A text's sentences (split after ``.``, ``!`` or ``?``) of ``min_words`` to ``max_words`` words."""
    return [s.strip() for s in SENTENCE_END.split(text.strip())
            if min_words <= len(s.split()) <= max_words]


def pseudo_queries(doc: Document, kind: str, per_doc: int, *, seed: int = 0, min_words: int = 4,
                   span_words: tuple[int, int] = (6, 16), exclude: frozenset[str] = frozenset()) -> list[str]:
    """Up to ``per_doc`` distinct pseudo-queries drawn from one document (its title counts as a sentence).

    ``sentences``: whole sentences; ``spans``: random runs of ``span_words`` consecutive words;
    ``keywords``: the content words of a sentence (stop words and numbers dropped), in their order;
    ``mixed``: sentences and keywords alternately. The draw depends only on ``seed`` and the document id,
    so it does not change with the order of the corpus. Sentences in ``exclude`` are never drawn.
    """
    if kind not in PSEUDO_QUERY_KINDS:
        raise ValueError(f"unknown pseudo-query kind {kind!r}; one of {', '.join(PSEUDO_QUERY_KINDS)}")
    rng = random.Random(f"{seed}:{doc.id}")
    sentences = list(dict.fromkeys(([doc.title.strip()] if len(doc.title.split()) >= min_words else [])
                                   + split_sentences(doc.text, min_words=min_words)))
    sentences = [s for s in sentences if s not in exclude]
    if kind == "spans":
        words = doc.text.split()
        low, high = span_words
        if len(words) < low:
            return []
        spans = []
        for _ in range(per_doc * 3):
            length = rng.randint(low, min(high, len(words)))
            start = rng.randrange(len(words) - length + 1)
            spans.append(" ".join(words[start:start + length]))
        return list(dict.fromkeys(spans))[:per_doc]
    rng.shuffle(sentences)
    chosen = sentences[:per_doc]
    if kind == "sentences":
        return chosen
    keyworded = [_keywords(s) for s in chosen]
    if kind == "keywords":
        return [k for k in dict.fromkeys(keyworded) if len(k.split()) >= 2]
    mixed = [k if i % 2 else s for i, (s, k) in enumerate(zip(chosen, keyworded))]
    return [q for q in dict.fromkeys(mixed) if len(q.split()) >= 2]


def shared_sentences(docs: Sequence[Document], *, min_words: int = 4) -> frozenset[str]:
    """Sentences and titles found in more than one document (boilerplate): no query, as no single
    document answers them."""
    seen = Counter(s for doc in docs for s in {*split_sentences(doc.text, min_words=min_words), doc.title.strip()})
    return frozenset(s for s, n in seen.items() if n > 1)


def pilot_queries(docs: Iterable[Document], limit: int, *, seed: int = 0) -> list[str]:
    """One sentence of each of at most ``limit`` documents (a stable sample by id and seed): the pilot
    queries of a domain known only by its corpus."""
    docs = list(docs)
    shared = shared_sentences(docs)
    return [q for doc in sample_documents(docs, limit, seed=seed)
            for q in pseudo_queries(doc, "sentences", 1, seed=seed, exclude=shared)]


_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\-]*")
STOP_WORDS = frozenset([
    "a", "about", "above", "after", "again", "against", "all", "also", "although", "am", "an", "and", "any", "are",
    "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could",
    "did", "do", "does", "doing", "down", "during", "each", "either", "et", "etc", "few", "for", "from", "further",
    "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how",
    "however", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "may", "might", "more", "most", "much",
    "must", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our",
    "ours", "ourselves", "out", "over", "own", "same", "shall", "she", "should", "so", "some", "such", "than",
    "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those",
    "through", "thus", "to", "too", "under", "until", "up", "upon", "us", "very", "via", "was", "we", "were",
    "what", "when", "where", "which", "while", "who", "whom", "whose", "why", "will", "with", "within", "without",
    "would", "you", "your", "yours", "yourself", "yourselves"
])


def _keywords(sentence: str) -> str:
    """A sentence's content words in order: stop words, numbers and one-letter tokens dropped, lower-cased."""
    return " ".join(w.lower() for w in _WORD.findall(sentence) if len(w) > 1 and w.lower() not in STOP_WORDS)


def sample_documents(docs: Iterable[Document], limit: int, *, seed: int = 0) -> list[Document]:
    """At most ``limit`` documents (all when ``limit`` is 0 or more than there are), in their order: those whose
    hash of (seed, id) is smallest, so the sample depends on neither the corpus order nor its other documents."""
    docs = list(docs)
    if not limit or limit >= len(docs):
        return docs
    key = {d.id: hashlib.sha256(f"{seed}:{d.id}".encode()).digest() for d in docs}
    keep = set(sorted(key, key=key.__getitem__)[:limit])
    return [d for d in docs if d.id in keep]
