"""The layout holds: imports run one way, modules stay small, private Optuna use stays in one place."""

from __future__ import annotations

import ast
import pathlib

import networkx as nx

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hypernas"
TOP = ("hypernas.cli", "hypernas.plots", "hypernas.export")  # what only the command line (and the API) may use


def _module(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> nx.DiGraph:
    """module -> every hypernas module it imports, at the top or inside a function."""
    G = nx.DiGraph()
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    for name, path in modules.items():
        G.add_node(name)
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    G.add_edge(name, target)
    return G


def test_no_import_circle():
    G = _imports()
    # a package's __init__ re-exporting its modules is not a circle of meaning
    H = G.copy()
    H.remove_edges_from([(u, v) for u, v in G.edges if v.startswith(u + ".")])
    assert list(nx.simple_cycles(H)) == []


def test_nothing_below_the_command_line_reaches_up():
    G = _imports()
    allowed = {"hypernas.cli", "hypernas"}  # the package re-exports `load` for users
    for top in TOP:
        users = {u for u, _ in G.in_edges(top)} - allowed
        assert users == set(), f"{top} is imported by {sorted(users)}"


def test_the_package_holds_no_benchmark_and_never_imports_one():
    import tomllib

    assert not (PACKAGE / "bench").exists()
    assert not [p for p in PACKAGE.rglob("*") if p.suffix in (".csv", ".toml", ".anb")]  # no truth tables shipped
    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert found == ["hypernas*", "search_spaces*"]  # the wheel takes these two packages only
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "search_spaces").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] == "benchmarks"], path


def test_benchmarks_reach_no_private_name_of_the_package():
    for path in (ROOT / "benchmarks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hypernas"):
                assert not [a.name for a in node.names if a.name.startswith("_")], (path, node.module)
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                assert isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "sys", "os"), \
                    (path, node.attr)


def test_each_bench_is_a_config_a_run_and_a_markdown():
    import importlib

    for path in (ROOT / "benchmarks").glob("*.py"):
        if path.stem in ("__init__", "testsets", "cifar10_table"):
            continue
        bench = importlib.import_module(f"benchmarks.{path.stem}")
        assert {"Config", "run", "markdown", "main"} <= set(vars(bench)), path.stem


def test_modules_stay_small():
    big = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert big == {}


def test_optunas_private_api_is_used_in_one_module():
    private = ("._storage", "._study_id", "._trial_id", "storages._rdb", "artifacts._upload", "._backend")
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]:
        if path.name == "optuna_private.py":
            continue
        text = path.read_text()
        assert not [p for p in private if p in text], path


def test_the_readme_layout_names_every_module():
    text = (ROOT / "README.md").read_text()
    layout = text[text.index("## Layout"):]
    layout = layout[:layout.index("```", layout.index("```") + 3)]
    missing = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if p.name != "__init__.py" and p.name not in layout]
    assert not missing, f"README's layout does not name {missing}"
