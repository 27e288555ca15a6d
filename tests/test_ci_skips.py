"""Tests that need what a fresh checkout may lack (the ../shared data, Ray, Chromium) skip there, and fail under
CI (``CI=true``, as ``.ci/run`` sets), where a skip would be a test that silently never ran (``conftest``)."""

from __future__ import annotations

import pytest

from conftest import import_or_unavailable, needs, pytest_runtest_setup, skip_unless_available


class _Item:
    """A stand-in for a collected test carrying the given markers."""

    def __init__(self, *marks: pytest.MarkDecorator) -> None:
        self.marks = [m.mark for m in marks]

    def iter_markers(self, name: str) -> list[pytest.Mark]:
        return [m for m in self.marks if m.name == name]


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), (None, pytest.skip.Exception),
                                         ("false", pytest.skip.Exception)])
def test_unavailable_skips_except_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str | None,
                                           outcome: type[BaseException]) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no Chromium"):
        skip_unless_available("no Chromium")
    with pytest.raises(outcome, match="no_such_module_for_this_test is not installed"):
        import_or_unavailable("no_such_module_for_this_test")
    with pytest.raises(outcome, match=r"\.\./shared missing"):
        pytest_runtest_setup(_Item(needs(True, "present"), needs(False, "../shared missing")))  # type: ignore[arg-type]
    pytest_runtest_setup(_Item(needs(True, "present")))  # type: ignore[arg-type]
    assert import_or_unavailable("json").__name__ == "json"
