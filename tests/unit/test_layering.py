"""The import graph of ``src/bragi``, read from the source (every import: top level, inside
functions, and under ``TYPE_CHECKING``), keeps its layers: no package imports one that
imports it back, and the few module cycles left are the ones named here."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "bragi"

#: Module cycles left on purpose, each with why.
KNOWN_MODULE_CYCLES = {
    # A torch backend loads its engine module lazily, inside load(): the engine module
    # runs only in the worker, and takes the backend's options class from it.
    frozenset({"bragi.backends.speechbrain", "bragi.backends.speechbrain_engine"}),
    frozenset({"bragi.backends.xtts", "bragi.backends.xtts_engine"}),
    frozenset({"bragi.backends.qwen3tts", "bragi.backends.qwen3tts_engine"}),
    frozenset({"bragi.backends.f5", "bragi.backends.f5_engine"}),
    frozenset({"bragi.backends.fish", "bragi.backends.fish_engine"}),
    # hub_errors names HubSource in annotations only (TYPE_CHECKING).
    frozenset({"bragi.models.hub_errors", "bragi.models.store"}),
    # A Wyoming connection owns its speech-in and speech-out halves, which name it in
    # annotations only (TYPE_CHECKING) to send on it.
    frozenset({"bragi.wyoming.connection", "bragi.wyoming.stt", "bragi.wyoming.tts"}),
    # The realtime service keeps its open sessions, and each session names the service
    # that limits it, both in annotations only (TYPE_CHECKING).
    frozenset({"bragi.realtime.service", "bragi.realtime.session"}),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(module: str, path: Path) -> Iterator[str]:
    """The Bragi modules ``module`` imports (a name imported from a package counts as its
    submodule when there is one)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != module:
                yield target


GRAPH = {module: set(imported(module, path)) for module, path in MODULES.items()}


def layer(module: str) -> str:
    """``bragi.api.routes.speech`` -> ``bragi.api``; ``bragi.config`` stays itself."""
    return ".".join(module.split(".")[:2])


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_the_source() -> None:
    assert "bragi.backends.protocol" in GRAPH["bragi.backends.registry"]
    assert "bragi.cli.common" in GRAPH["bragi.cli.serve"]  # a lazy import counts
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [frozenset({"a", "b"})]


def test_no_package_imports_one_that_imports_it_back() -> None:
    packages: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        packages.setdefault(layer(module), set()).update(
            layer(target) for target in targets if layer(target) != layer(module)
        )
    assert cycles(packages) == []


def test_module_cycles_are_only_the_known_ones() -> None:
    assert set(cycles(GRAPH)) <= KNOWN_MODULE_CYCLES


@pytest.mark.parametrize(
    ("module", "never"),
    [
        ("bragi.types", "bragi."),  # underneath everything
        ("bragi.errors", "bragi."),
        ("bragi.audio", "bragi.backends"),
        ("bragi.devices", "bragi.backends"),
        ("bragi.runners", "bragi.config"),  # imported inside workers: no server settings
        ("bragi.runners", "bragi.api"),
        ("bragi.runners", "bragi.models"),
        ("bragi.models", "bragi.api"),
        ("bragi.cli", "bragi.api."),  # bragi.api itself (create_app) for `serve` only
    ],
)
def test_a_layer_never_imports_what_sits_above_it(module: str, never: str) -> None:
    offending = sorted(
        f"{source} -> {target}"
        for source, targets in GRAPH.items()
        if source == module or source.startswith(module + ".")
        for target in targets
        if target.startswith(never) and layer(target) != layer(module)
    )
    assert offending == []
