"""Make the shipped database-operations corpus from the PostgreSQL 15 HTML documentation.

One document per server setting (each GUC entry of the "Server Configuration" pages) and one per
section of the operations chapters (monitoring, WAL, backup, replication, vacuum, authentication,
performance, server tools). Provenance script, not used at run time:

    apt-get download postgresql-doc-15 && dpkg -x postgresql-doc-15_*.deb pgdoc
    python scripts/make_postgres_corpus.py pgdoc/usr/share/doc/postgresql-doc-15/html retriever/data/postgres-ops
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

XHTML = "{http://www.w3.org/1999/xhtml}"
PAGES = ("runtime-config-", "monitoring", "wal", "backup", "continuous-archiving", "hot-standby", "high-availability",
         "warm-standby", "different-replication", "routine-", "performance-tips", "populate", "using-explain",
         "kernel-resources", "server-shutdown", "server-start", "disk-", "auth-pg-hba-conf", "client-authentication",
         "logical-replication", "app-pg")
SECTIONS = {"sect1", "sect2", "sect3"}
SKIPPED = SECTIONS | {"variablelist", "navheader", "navfooter", "titlepage", "toc"}
HEADINGS = {f"{XHTML}h{level}" for level in range(1, 6)}
MIN_CHARS, MAX_CHARS = 150, 2000


def text_of(element: ET.Element) -> str:
    return re.sub(r"\s+", " ", "".join(element.itertext())).strip()


def own_text(section: ET.Element) -> str:
    """The section's text without its subsections and setting lists (those are documents of their own)."""
    parts = []
    if section.text:
        parts.append(section.text)
    for child in section:
        if child.tag != f"{XHTML}div" or child.get("class") not in SKIPPED:
            parts.append(text_of(child))
        if child.tail:
            parts.append(child.tail)
    return re.sub(r"\s+", " ", " ".join(parts)).strip()


def documents(page: Path, version: str) -> Iterator[dict]:
    root = ET.parse(page).getroot()
    meta = {"source": f"PostgreSQL {version} documentation", "page": page.name}
    for section in root.iter(f"{XHTML}div"):
        if section.get("class") not in SECTIONS or not section.get("id"):
            continue
        heading = next((h for h in section.iter() if h.tag in HEADINGS), None)
        title = re.sub(r"^([A-Z]\.)?[\d.]+\s+", "", text_of(heading)) if heading is not None else ""
        yield {"_id": f"pg-{section.get('id', '').lower()}", "title": title, "text": own_text(section), "metadata": meta}
    for entries in root.iter(f"{XHTML}dl"):
        for term, body in itertools.pairwise(entries):
            if term.tag == f"{XHTML}dt" and body.tag == f"{XHTML}dd" and (term.get("id") or "").startswith("GUC-"):
                yield {"_id": f"pg-{term.get('id', '').lower()}", "title": text_of(term), "text": text_of(body),
                       "metadata": meta}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path, help="the html/ folder of postgresql-doc-15")
    parser.add_argument("out", type=Path, help="output folder (corpus.jsonl is written there)")
    args = parser.parse_args()
    index_title = text_of(next(ET.parse(args.html / "index.html").getroot().iter(f"{XHTML}title")))
    version = index_title.split()[1]  # "PostgreSQL 15.18 Documentation"
    seen: set[str] = set()
    rows = []
    for page in sorted(p for p in args.html.glob("*.html") if p.name.startswith(PAGES)):
        for doc in documents(page, version):
            if len(doc["text"]) >= MIN_CHARS and doc["_id"] not in seen:
                seen.add(doc["_id"])
                rows.append(doc | {"text": doc["text"][:MAX_CHARS]})
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "corpus.jsonl", "w") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    print(f"{len(rows)} documents from PostgreSQL {version} -> {args.out / 'corpus.jsonl'}")


if __name__ == "__main__":
    main()
