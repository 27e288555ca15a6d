"""Issue #11, items 6 to 9: a CLI that tells the truth. Options go before or after the command; an empty
or missing data directory says so and what to run; bad flags are refused before anything is opened or any
model loads; `retriever experts` says which experts the router cannot reach and how to reach them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import router_retriever.encoding.encoders as encoders
from router_retriever.cli import main
from router_retriever.config import DEFAULT_CONFIG, Settings, load_settings
from router_retriever.experts import router_identity
from router_retriever.routing.pilots import PilotLibrary

from conftest import copy_small, small_config


@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any model is loaded."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(encoders, "_load", refuse)


def test_options_go_before_or_after_the_command(small_built: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Item 6 (already done; this keeps it working): --config and --data-dir before or after the command;
    given after it, they win over the ones before it."""
    config = copy_small(small_built, tmp_path / "copy")
    data = str(tmp_path / "copy" / "data")
    elsewhere = str(tmp_path / "nowhere")
    runs = [["--config", str(config), "search", "tape backup", "-k", "2", "--json"],
            ["search", "--config", str(config), "--data-dir", data, "tape backup", "-k", "2", "--json"],
            ["--config", str(config), "--data-dir", elsewhere, "search", "--data-dir", data, "tape backup", "-k", "2",
             "--json"]]
    outputs = []
    for argv in runs:
        assert main(argv) == 0, capsys.readouterr().err
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1] == outputs[2] and len(outputs[0]["hits"]) == 2
    assert not Path(elsewhere).exists()


def test_a_relative_data_dir_option_is_taken_from_the_working_directory(small_built: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`--data-dir data` with `--config configs/x.toml` is ./data, not configs/data (the config's own data_dir
    stays relative to its file)."""
    config = copy_small(small_built, tmp_path / "copy")
    monkeypatch.chdir(tmp_path / "copy")
    assert main(["--config", str(config), "--data-dir", "data", "search", "tape backup", "-k", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["hits"]) == 2
    monkeypatch.chdir(tmp_path)
    assert main(["--config", str(config), "--data-dir", "copy/data", "search", "tape backup", "-k", "2",
                 "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["hits"]) == 2
    assert not (config.parent / "copy").exists()


def test_search_without_data_says_what_to_run_and_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  no_models: None,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Item 7: `retriever search` from another directory (the packaged config's data dir is ./data/demo)
    says there is nothing to search and what to run, creates no ./data/demo and loads no model."""
    monkeypatch.chdir(tmp_path)
    assert main(["search", "pod keeps crashing"]) == 2
    err = capsys.readouterr().err
    assert f"nothing to search: the data directory {tmp_path / 'data' / 'demo'} does not exist" in err
    assert "Run `retriever build`" in err
    assert not (tmp_path / "data").exists()
    empty = small_config(tmp_path / "empty")
    (tmp_path / "empty" / "data").mkdir()
    assert main(["--config", str(empty), "build", "--corpus", str(_empty_corpus(tmp_path))]) == 0
    capsys.readouterr()
    assert main(["--config", str(empty), "search", "anything"]) == 2
    assert "holds no documents. Run `retriever build`" in capsys.readouterr().err


def test_build_without_a_corpus_says_how_to_configure_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Item 7: `retriever build` with no corpus configured and an empty store says how to configure one
    (it used to print "indexes up to date")."""
    config = small_config(tmp_path)
    assert main(["--config", str(config), "build"]) == 2
    err = capsys.readouterr().err
    assert "holds no documents and no corpus is configured: set `corpus = " in err
    assert str(config) in err and "--corpus DIR|corpus.jsonl" in err


def test_ray_flags_without_ray_say_which_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """``build --ray`` where Ray is not installed: refused before the data directory is opened or created."""
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the [ray] extra imports
    config = small_config(tmp_path)
    assert main(["--config", str(config), "build", "--ray"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --ray needs ray") and "pip install 'router-retriever[ray]'" in err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("flags, message", [
    (["--top-k", "0"], "--top-k must be an integer between 1 and 100 (got 0)"),
    (["-k", "101"], "--top-k must be an integer between 1 and 100 (got 101)"),
    (["--top-m", "9"], "--top-m must be between 1 and 1 (got 9)"),
    (["--top-m", "0"], "--top-m must be between 1 and 1 (got 0)"),
    (["--expert", "legal"], "unknown expert 'legal'; configured: general"),
])
def test_bad_flags_are_refused_before_anything_opens(tmp_path: Path, no_models: None, flags: list[str], message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Item 8: flag values are checked against the settings' limits and the number of experts first: the
    error names the flag, no model loads and the data directory is not even opened (nor created)."""
    config = small_config(tmp_path)
    assert main(["--config", str(config), "search", "x", *flags]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"
    assert not (tmp_path / "data").exists()


def test_experts_says_the_general_expert_is_the_fallback(tmp_path: Path, no_models: None,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Item 9: with the packaged default config (pilots for scifact, postgres and sre only) `general` has no
    pilots of its own and is listed as the router's fallback for queries unlike every domain."""
    settings = load_settings(DEFAULT_CONFIG, data_dir=tmp_path)
    _save_random_library(settings, tmp_path)
    assert main(["--data-dir", str(tmp_path), "experts"]) == 0
    out = capsys.readouterr().out
    general = out.split("general:")[1].split("\nscifact:")[0]
    assert "router: the router's fallback: queries unlike every domain's pilots come here" in general
    for name, domain in (("scifact", "science"), ("postgres", "database"), ("sre", "sre")):
        assert f"{name}:" in out and f"router: routable (domains: {domain})" in out.split(f"{name}:")[1]


def test_experts_says_how_to_reach_an_expert_without_pilots(tmp_path: Path, no_models: None,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Without a fallback, an expert with no pilots is listed as not routable, with the one way to reach it
    as configured (--expert; top-m fusion does not reach it either) and how to make it routable."""
    config = tmp_path / "experts.toml"
    config.write_text(DEFAULT_CONFIG.read_text().replace('fallback = "general"', "#"))
    settings = load_settings(config, data_dir=tmp_path)
    assert settings.router.fallback is None
    _save_random_library(settings, tmp_path)
    assert main(["--config", str(config), "--data-dir", str(tmp_path), "experts"]) == 0
    general = capsys.readouterr().out.split("general:")[1].split("\nscifact:")[0]
    assert "router: not routable: no pilots; reach it with `--expert general`" in general
    assert "top-m fusion only choose among experts with pilots" in general
    assert 'add a [[domains]] table with expert = "general" and run `retriever pilots build`' in general


def test_experts_names_each_partner_from_both_sides(tmp_path: Path, no_models: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """With [router.partners], the routed expert lists its partner and the partner the expert it searches with."""
    config = tmp_path / "experts.toml"
    config.write_text(DEFAULT_CONFIG.read_text().replace(
        'fallback = "general"', 'fallback = "general"\npartners = {scifact = {expert = "general", share = 0.2}}'))
    settings = load_settings(config, data_dir=tmp_path)
    _save_random_library(settings, tmp_path)
    assert main(["--config", str(config), "--data-dir", str(tmp_path), "experts"]) == 0
    out = capsys.readouterr().out
    general, scifact = out.split("general:")[1].split("\nscifact:")[0], out.split("scifact:")[1].split("\npostgres:")[0]
    assert "partner of scifact (share 0.2): searches every query routed there" in general
    assert "partner: general (share 0.2) searches every query routed here; the two lists are fused" in scifact
    assert "partner" not in out.split("postgres:")[1].split("\npilot:")[0]


def _save_random_library(settings: Settings, folder: Path) -> None:
    rng = np.random.default_rng(0)
    groups = [(d.name, d.expert, rng.normal(size=(3, 384))) for d in settings.domains]
    PilotLibrary.from_vectors(groups, router_identity(settings)).save(folder / "pilots.npz")


def _empty_corpus(folder: Path) -> Path:
    path = folder / "empty.jsonl"
    path.write_text("")
    return path


def test_demo_builds_with_every_build_option_at_its_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`retriever demo` builds first through `build.run`: it must hand over every option build reads (a
    build option added without the demo knowing of it once broke `retriever demo`)."""
    from router_retriever.cli import build

    seen: dict[str, object] = {}

    def fake_build(args: object) -> int:
        seen.update(vars(args))
        raise SystemExit(0)

    monkeypatch.setattr(build, "run", fake_build)
    with pytest.raises(SystemExit):
        main(["--data-dir", str(tmp_path / "demo"), "demo"])
    parser = argparse.ArgumentParser()
    build._add_options(parser)
    assert {k: seen[k] for k in vars(parser.parse_args([]))} == vars(parser.parse_args([]))
    assert seen["data_dir"] == tmp_path / "demo"


def test_a_fallback_route_says_so() -> None:
    """A query the router sent to its fallback expert is printed as such, with the scores that sent it there."""
    from router_retriever.cli.common import format_result
    from router_retriever.core.types import Route, SearchResult

    route = Route(experts=("general",), scores={"scifact": 0.104, "sre": -0.026}, fallback=True)
    text = format_result(SearchResult(query="q", hits=[], route=route, mode="hybrid"))
    assert "route: general (fallback: unlike every domain's pilots; router scores: scifact 0.104, sre -0.026)" in text
    routed = format_result(SearchResult(query="q", hits=[], route=Route(experts=("scifact",), scores={"scifact": 0.3})))
    assert "fallback" not in routed
