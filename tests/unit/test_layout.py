"""The shape of the Python packages: layers without cycles, upstream's paths that only re-export,
files of one job each (read from the sources, so it holds for every module, imported or not)."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p.parent for p in (ROOT / "py").glob("*/runai_model_streamer*/__init__.py"))
CORE = ROOT / "py" / "runai_model_streamer" / "runai_model_streamer"
#: upstream's module paths, kept so that callers' imports work; the core defines everything
UPSTREAM_PATHS = ("distributed_streamer", "file_streamer", "s3_utils", "safetensors_streamer")


def _module_name(package: Path, path: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(package, path): path for package in PACKAGES for path in package.rglob("*.py")
    }


def _imports(path: Path, module: str, modules: Iterable[str]) -> set[str]:
    """Every module of the packages that ``module`` imports, at any depth of its code (imports
    inside functions and under TYPE_CHECKING count: a cycle they hide is still a cycle)."""
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # a submodule imported by name, else its module
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {m for m in _imports(path, name, modules) if m in modules and m != name}
        for name, path in modules.items()
    }


def test_the_modules_are_found() -> None:
    names = set(_modules())
    assert {"runai_model_streamer", "runai_model_streamer._reader"} <= names
    assert {"runai_model_streamer_s3", "runai_model_streamer_azure"} <= names


def _is_upstream_path(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "runai_model_streamer" and len(parts) > 1 and parts[1] in UPSTREAM_PATHS


def test_no_import_cycle() -> None:
    graph = _graph()
    # Only the imports written in the sources are edges, not the implicit import of a
    # submodule's package __init__ (which loads its names lazily).
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_core_module_imports_an_upstream_path_module() -> None:
    graph = _graph()
    offenders = {
        module: sorted(t for t in targets if _is_upstream_path(t))
        for module, targets in graph.items()
        if not _is_upstream_path(module) and any(_is_upstream_path(t) for t in targets)
    }
    assert offenders == {}


@pytest.mark.parametrize("module", sorted(m for m in _modules() if _is_upstream_path(m)), ids=str)
def test_upstream_path_modules_only_re_export(module: str) -> None:
    """A docstring, imports from the core and ``__all__``: nothing is defined there."""
    path = _modules()[module]
    tree = ast.parse(path.read_text(), str(path))
    for statement in tree.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # the docstring
        if isinstance(statement, ast.ImportFrom):
            source = statement.module or ""
            own = source.startswith(module + ".")  # a package re-exporting its own module
            assert own or not _is_upstream_path(source), f"{module} imports {source}"
            continue
        is_all = isinstance(statement, ast.Assign) and [
            getattr(t, "id", None) for t in statement.targets
        ] == ["__all__"]  # a list of names, or the names of another module's __all__
        assert is_all, f"{module} line {statement.lineno} defines something"


MAX_LINES = 450


def test_no_python_file_is_over_the_line_limit() -> None:
    sources = [p for package in PACKAGES for p in package.rglob("*.py")]
    sources += [*(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
    sources += [ROOT / "scripts" / "rehearse-release", *(ROOT / "scripts").glob("*.py")]
    counts = {str(p.relative_to(ROOT)): p.read_text().count("\n") for p in sources}
    assert len(counts) > 50
    assert {path: n for path, n in counts.items() if n > MAX_LINES} == {}, "split them by job"


def test_no_cpp_file_is_over_the_line_limit_without_a_reason() -> None:
    """A C++ file over the limit says why in its opening comment ("Over 450 lines: ...")."""
    sources = [*(ROOT / "cpp").rglob("*.cc"), *(ROOT / "cpp").rglob("*.h")]
    assert len(sources) > 50
    over = {}
    for path in sources:
        text = path.read_text()
        opening = "".join(line for line in text.splitlines(True)[:20] if line.startswith("//"))
        if text.count("\n") > MAX_LINES and f"Over {MAX_LINES} lines:" not in opening:
            over[str(path.relative_to(ROOT))] = text.count("\n")
    assert over == {}, "split them by job, or say why not in the opening comment"
