"""Evaluation data: BEIR folders, installing them for ir-datasets, loading offline.

ir-datasets reads IR_DATASETS_HOME when it is first imported, so the module fixture below sets the
variable to a temporary folder and drops any already-imported ir_datasets modules: the next import
(inside router_retriever.eval.datasets) then reads and writes only the temporary home, never ~/.ir_datasets.
"""

import json
import re
import socket
import sys
import zipfile
from pathlib import Path

import pytest

from router_retriever.eval.datasets import DatasetError, install_beir_folder, load_collection

from conftest import SCIFACT, needs_scifact


def _forget_ir_datasets() -> None:
    for name in [m for m in sys.modules if m == "ir_datasets" or m.startswith("ir_datasets.")]:
        del sys.modules[name]


@pytest.fixture(scope="module", autouse=True)
def irds_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("ir_datasets_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IR_DATASETS_HOME", str(home))
        _forget_ir_datasets()
        yield home
    _forget_ir_datasets()


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def make_beir(root: Path, docs=None, queries=None, qrels=None, header="query-id\tcorpus-id\tscore") -> Path:
    """A tiny BEIR folder; qrels maps split -> list of (qid, doc id, score)."""
    docs = docs if docs is not None else [
        {"_id": "d1", "title": "Aspirin", "text": "Aspirin reduces fever.", "metadata": {"url": "http://a"}},
        {"_id": "d2", "title": "", "text": "Vitamin C and colds.", "metadata": {"url": "http://b"}},
    ]
    queries = queries if queries is not None else [
        {"_id": "1", "text": "fever drug", "metadata": {"url": "http://q1"}},
        {"_id": "2", "text": "colds", "metadata": {"url": "http://q2"}},
    ]
    qrels = qrels if qrels is not None else {"test": [("1", "d1", 1)], "train": [("2", "d2", 1)]}
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    for split, rows in qrels.items():
        lines = [header] + ["\t".join(map(str, row)) for row in rows]
        (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_load_small_folder_keeps_metadata_and_only_judged_queries(tmp_path):
    folder = make_beir(tmp_path / "mini")
    test = load_collection(str(folder))
    assert test.name == "mini/test"
    assert [d.id for d in test.docs] == ["d1", "d2"]
    assert test.docs[0].title == "Aspirin" and test.docs[0].metadata == {"url": "http://a"}
    assert test.queries == {"1": "fever drug"}
    assert test.qrels == {"1": {"d1": 1}}
    train = load_collection(f"{folder}:train")
    assert train.queries == {"2": "colds"} and train.qrels == {"2": {"d2": 1}}


@pytest.mark.parametrize(
    ("kwargs", "remove", "message"),
    [
        ({}, "corpus.jsonl", "missing corpus.jsonl"),
        ({}, "queries.jsonl", "missing queries.jsonl"),
        ({"header": "qid\tdocid\tscore"}, None, r"qrels header must be 'query-id\tcorpus-id\tscore'"),
        ({"docs": [{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}]}, None, "duplicate document id 'd1'"),
        ({"docs": [{"id": "d1", "text": "a"}]}, None, "a corpus row needs '_id' and 'text'"),
        ({"qrels": {"test": [("1", "d1", "yes")]}}, None, "score 'yes' is not an integer"),
        ({"qrels": {"test": [("7", "d1", 1)]}}, None, "absent from the queries"),
    ],
)
def test_install_rejects_bad_folders(tmp_path, irds_home, kwargs, remove, message):
    folder = make_beir(tmp_path / "scifact", **kwargs)
    if remove:
        (folder / remove).unlink()
    with pytest.raises(DatasetError, match=re.escape(message)):
        install_beir_folder(folder)
    assert not (irds_home / "beir" / "scifact" / "source.zip").exists()


def test_install_checks_metadata_the_dataset_needs(tmp_path):
    folder = make_beir(tmp_path / "mini", docs=[{"_id": "d1", "text": "no title, no url"}])
    with pytest.raises(DatasetError, match=re.escape("missing key ['title'] and 'metadata' key ['url'], which ir-datasets")):
        install_beir_folder(folder, name="nfcorpus")


def test_bad_specs(tmp_path):
    folder = make_beir(tmp_path / "mini")
    with pytest.raises(DatasetError, match="has no split 'dev'; available: test, train"):
        load_collection(f"{folder}:dev")
    with pytest.raises(DatasetError, match="BEIR folder not found"):
        load_collection(str(tmp_path / "absent") + ":test")
    with pytest.raises(DatasetError, match="neither a BEIR folder nor an ir-datasets"):
        load_collection("no-such-dataset/test")
    with pytest.raises(DatasetError, match="not a BEIR dataset ir-datasets knows"):
        install_beir_folder(folder)  # name defaults to "mini"


@pytest.mark.parametrize("dataset_id", ["beir/arguana/test", "vaswani"])
def test_missing_files_point_to_data_add(no_network, dataset_id):
    # BEIR ids are checked for their zip first; others fail inside ir-datasets' download attempt
    with pytest.raises(DatasetError, match="retriever data add PATH"):
        load_collection(dataset_id)


def test_reinstall_replaces_what_ir_datasets_cached(tmp_path, irds_home, no_network):
    small = make_beir(tmp_path / "v1" / "nfcorpus")
    assert install_beir_folder(small) == irds_home / "beir" / "nfcorpus" / "source.zip"
    first = load_collection("beir/nfcorpus/test")
    assert [(d.id, d.title, d.metadata) for d in first.docs] == [("d1", "Aspirin", {"url": "http://a"}), ("d2", "", {"url": "http://b"})]
    docs = [{"_id": f"d{i}", "title": "", "text": "x", "metadata": {"url": ""}} for i in range(1, 4)]
    bigger = make_beir(tmp_path / "v2" / "nfcorpus", docs=docs)
    install_beir_folder(bigger)
    assert len(load_collection("beir/nfcorpus/test").docs) == 3
    assert sorted(p.name for p in (irds_home / "beir" / "nfcorpus").glob("*.tmp")) == []


@needs_scifact
def test_scifact_folder_counts():
    test = load_collection(str(SCIFACT))
    assert (len(test.docs), len(test.queries), sum(map(len, test.qrels.values()))) == (5183, 300, 339)
    train = load_collection(f"{SCIFACT}:train")
    assert (len(train.queries), sum(map(len, train.qrels.values()))) == (809, 919)


@needs_scifact
def test_scifact_through_ir_datasets_offline(irds_home, no_network):
    zip_path = install_beir_folder(SCIFACT)
    assert zip_path == irds_home / "beir" / "scifact" / "source.zip"
    with zipfile.ZipFile(zip_path) as zf:
        assert sorted(zf.namelist()) == ["scifact/corpus.jsonl", "scifact/qrels/test.tsv", "scifact/qrels/train.tsv",
                                         "scifact/queries.jsonl"]
        assert zf.read("scifact/qrels/test.tsv").split(b"\n")[0].strip() == b"query-id\tcorpus-id\tscore"

    import ir_datasets

    ds = ir_datasets.load("beir/scifact/test")
    assert (ds.docs_count(), len(list(ds.queries_iter())), len(list(ds.qrels_iter()))) == (5183, 300, 339)

    for split in ("test", "train"):
        via_irds = load_collection(f"beir/scifact/{split}")
        direct = load_collection(f"{SCIFACT}:{split}")
        assert via_irds.name == f"beir/scifact/{split}"
        assert via_irds.queries == direct.queries and via_irds.qrels == direct.qrels
        assert sorted(via_irds.docs, key=lambda d: d.id) == sorted(direct.docs, key=lambda d: d.id)
