"""Packaging contracts: a light core import, a version, the layering of the layers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mcrf

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("transformers", "datasets", "seqeval", "accelerate", "matplotlib")  # (torch itself imports tqdm)


def test_import_mcrf_loads_only_the_torch_core():
    code = (
        "import sys, mcrf, mcrf.schemes, mcrf.data, mcrf.models\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(mcrf.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == mcrf.__version__


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_core_modules_import_only_torch_and_the_standard_library():
    allowed_roots = {"torch", "mcrf", "__future__"} | set(sys.stdlib_module_names)
    for name in ("crf.py", "crf_ops.py", "crf_checks.py", "crf_scan.py", "viterbi.py", "schemes.py"):
        roots = {module.split(".")[0] for module in _imports(ROOT / "mcrf" / name)}
        assert roots <= allowed_roots, (name, roots - allowed_roots)
        inner = {m for m in _imports(ROOT / "mcrf" / name) if m.startswith("mcrf.")}
        assert inner <= {"mcrf.crf_ops", "mcrf.crf_checks", "mcrf.crf_scan", "mcrf.viterbi", "mcrf.schemes", "mcrf.crf"}, (name, inner)


def test_layers_import_one_way():
    """core <- data <- models <- training/predict <- cli: no module imports a higher layer."""
    rank = {"data": 1, "models": 2, "training": 3, "evaluation": 3, "predict": 3, "formats": 3, "records": 3,
            "html": 3, "serve": 3, "predict_dist": 3, "compare": 3, "cli": 4, "cli_serve": 4, "cli_compare": 4,
            "cli_util": 4, "__main__": 4}
    for path in (ROOT / "mcrf").rglob("*.py"):
        rel = path.relative_to(ROOT / "mcrf").parts
        own = rank.get(rel[0].removesuffix(".py"), 0)
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] != "mcrf" or len(parts) < 2:
                continue
            assert rank.get(parts[1], 0) <= own, f"{'/'.join(rel)} imports {module}"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = ROOT) -> dict:
    """``{module: {mcrf modules it imports}}`` over every import statement: top-level, inside functions
    (lazy) and under ``if TYPE_CHECKING`` alike. ``from pkg import sub`` counts as importing ``pkg.sub``."""
    modules = {_module_name(p, root): p for p in (root / "mcrf").rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    edges.add(sub if sub in modules else node.module)
        graph[name] = {m for m in edges if m in modules and m != name}
    return graph


def find_cycle(graph: dict):
    """One import cycle as a list of modules (first == last), or ``None``."""
    state = {}  # module -> 1 on the current path, 2 done

    def visit(module, path):
        state[module] = 1
        for nxt in sorted(graph[module]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_no_import_cycles_even_within_a_layer():
    """Same-layer modules may import each other one way only (lazy and TYPE_CHECKING imports included),
    with a package's ``__init__`` counted as a module of its own."""
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_sees_lazy_and_type_checking_imports(tmp_path):
    package = tmp_path / "mcrf"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "formats.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                        "    from mcrf.predict import Prediction\n")
    (package / "predict.py").write_text("def f():\n    from mcrf import formats\n")
    (package / "other.py").write_text("import mcrf.predict\n")
    assert find_cycle(import_graph(tmp_path)) == ["mcrf.formats", "mcrf.predict", "mcrf.formats"]
    (package / "formats.py").write_text("")
    assert find_cycle(import_graph(tmp_path)) is None
