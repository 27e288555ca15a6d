"""The documentation stays in step with the code: the configuration reference in docs/configuration.md is what
the config models generate (scripts/config_reference.py), every config field has a description, every config the
docs run (configs/*.toml) is valid, and every relative link of the README and docs/*.md reaches a file (and, with an
anchor, a heading of it)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from router_retriever import load_settings

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "ARCHITECTURE.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _config_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(config: Path) -> None:
    """Each config in configs/ loads: every key known, every expert a domain, the router or a partner names exists."""
    assert load_settings(config).experts


def test_every_config_field_has_a_description() -> None:
    assert _config_reference().missing_descriptions() == []


def test_the_configuration_reference_is_what_the_models_generate() -> None:
    reference = _config_reference()
    page = reference.PAGE.read_text()
    assert page.count(reference.BEGIN) == 1 and page.count(reference.END) == 1
    assert reference.updated(page) == page, (f"{reference.PAGE.relative_to(ROOT)} is stale: run "
                                             f"`{reference.REGENERATE}` and commit the result")


def test_the_check_mode_fails_on_a_stale_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    reference = _config_reference()
    stale = tmp_path / "docs" / "configuration.md"
    stale.parent.mkdir()
    page = reference.updated(reference.PAGE.read_text())
    stale.write_text(page.replace("| `top_m` |", "| `top_n` |"))
    monkeypatch.setattr(reference, "ROOT", tmp_path)
    monkeypatch.setattr(reference, "PAGE", stale)
    assert reference.main(["--check"]) == 1
    assert "is stale" in capsys.readouterr().err
    assert reference.main([]) == 0 and stale.read_text() == page
    assert reference.main(["--check"]) == 0


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", _prose(page.read_text(), inline=False), re.MULTILINE):
        base = slug(heading)
        name, n = base, 0
        while name in found:
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def _prose(text: str, inline: bool = True) -> str:
    """``text`` without fenced code blocks (their lines blanked, so line numbers stay) and, with ``inline``,
    without the contents of inline code."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else re.sub(r"`[^`]*`", "``", line) if inline else line)
    return "\n".join(lines)


def relative_links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every link of ``page`` that is not a URL (``http:``, ``mailto:``, ...)."""
    return [(n, target) for n, line in enumerate(_prose(page.read_text()).splitlines(), 1)
            for target in LINK.findall(line) if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for line, target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{page.relative_to(ROOT)}:{line}: {target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{page.relative_to(ROOT)}:{line}: {target} (no heading with that anchor in {file.name})")
    assert not broken, "\n".join(broken)


def test_the_link_check_sees_broken_links(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A title: `x`\n\n[ok](b.md#b-one) [ok](#a-title-x) ![img](missing.png)\n"
                                   "[web](https://example.com) `[code](nowhere.md)`\n```\n[fenced](nowhere.md)\n```\n"
                                   "[bad anchor](b.md#nope)\n")
    (tmp_path / "b.md").write_text("## B one\n")
    assert relative_links(tmp_path / "a.md") == [(3, "b.md#b-one"), (3, "#a-title-x"), (3, "missing.png"),
                                                  (8, "b.md#nope")]
    assert anchors(tmp_path / "a.md") == {"a-title-x"} and anchors(tmp_path / "b.md") == {"b-one"}
