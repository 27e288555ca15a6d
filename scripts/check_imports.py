"""Fail if any two modules of the project import each other, directly or through others (grimp's graph,
function-level and TYPE_CHECKING imports included). The package layers are checked by `lint-imports`
(the contract in pyproject.toml). Both read the package from build/package-view (scripts/package_view.py), the
installed layout, which this script makes anew."""

from __future__ import annotations

import sys

import grimp
from package_view import make_view  # scripts/package_view.py

PACKAGES = ("router_retriever",)


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.find_modules_directly_imported_by(module):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def main() -> int:
    sys.setrecursionlimit(10_000)
    sys.path.insert(0, str(make_view()))
    graph = grimp.build_graph(*PACKAGES)
    found = cycles(graph)
    for group in found:
        print("import cycle: " + " <-> ".join(group), file=sys.stderr)
    if not found:
        print(f"no import cycle among {len(graph.modules)} modules of {', '.join(PACKAGES)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
