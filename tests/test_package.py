"""Packaging contracts: a light core import, a version, the layering of the layers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mcrf

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("transformers", "datasets", "seqeval", "accelerate", "matplotlib")  # (torch itself imports tqdm)


def _python(code: str) -> str:
    """Run ``code`` in a fresh interpreter at the repository root; assert it succeeds; return its stdout."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_mcrf_loads_only_the_torch_core():
    code = (
        "import sys, mcrf, mcrf.crf.schemes, mcrf.data, mcrf.models\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(mcrf.__version__)"
    )
    assert _python(code).strip() == mcrf.__version__


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


#: The layers, lowest first. A module may import its own layer and the layers below, never above
#: (lazy and TYPE_CHECKING imports included). Modules within one layer may import each other one
#: way only (the cycle test below). docs/architecture.md explains each layer.
LAYERS = (
    ("errors", "io"),                   # the UserError family; the files mcrf writes (stdlib only)
    ("crf", "schemes"),                 # the CRF core: torch + the standard library (schemes: the old path)
    ("fields", "data", "evaluation"),   # config fields, readers and corpora, span scoring
    ("models",),                        # encoders, the tagger, save/load
    ("training", "predict", "hf"),      # the Accelerate loop; streaming prediction; the Hugging Face model class
    ("compare", "serve"),               # mcrf compare (over training); mcrf serve (over predict)
    ("cli", "__main__"),                # the command line
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _layer(rel_parts) -> str:
    return rel_parts[0].removesuffix(".py")


def test_every_module_belongs_to_a_layer_and_the_root_stays_small():
    root = ROOT / "mcrf"
    unknown = sorted({_layer(p.relative_to(root).parts) for p in root.rglob("*.py")} - set(RANK) - {"__init__"})
    assert not unknown, f"{unknown}: give each a place in LAYERS (and docs/architecture.md)"
    at_root = sorted(p.name for p in root.glob("*.py"))
    assert len(at_root) <= 6, at_root


def test_core_modules_import_only_torch_and_the_standard_library():
    allowed_roots = {"torch", "mcrf", "__future__"} | set(sys.stdlib_module_names)
    for path in (ROOT / "mcrf" / "crf").glob("*.py"):
        modules = set(_imports(path))
        roots = {module.split(".")[0] for module in modules}
        assert roots <= allowed_roots, (path.name, roots - allowed_roots)
        inner = {m for m in modules if m.startswith("mcrf") and not m.startswith("mcrf.crf")}
        assert not inner, (path.name, inner)


def test_layers_import_one_way():
    """errors/io <- crf <- data <- models <- training/predict <- compare/serve <- cli."""
    for path in (ROOT / "mcrf").rglob("*.py"):
        rel = path.relative_to(ROOT / "mcrf").parts
        own = RANK.get(_layer(rel), RANK["crf"])  # mcrf/__init__.py loads MaskedCRF lazily
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] != "mcrf" or len(parts) < 2:
                continue
            assert RANK[parts[1]] <= own, f"mcrf/{'/'.join(rel)} imports {module}, a higher layer"


def test_the_layer_check_sees_a_lazy_upward_import(tmp_path, monkeypatch):
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from mcrf.cli.app import main\n")
    assert "mcrf.cli.app" in set(_imports(module))


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


def test_the_package_imports_without_fcntl():
    """Windows has no ``fcntl``: importing mcrf and its layers must not need it (locks import it when taken)."""
    code = (
        "import sys\n"
        "class NoFcntl:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'fcntl':\n"
        "            raise ImportError('no fcntl here (as on Windows)')\n"
        "sys.modules.pop('fcntl', None)\n"
        "sys.meta_path.insert(0, NoFcntl())\n"
        "import mcrf, mcrf.models, mcrf.training, mcrf.cli, mcrf.io.outputs, mcrf.io.runfolder, mcrf.predict.stream\n"
        "assert 'fcntl' not in sys.modules\n"
    )
    _python(code)


def test_old_import_paths_users_hold_keep_working():
    """``mcrf.crf.MaskedCRF`` is the same class; ``mcrf.schemes`` re-exports ``mcrf.crf.schemes`` and
    ``mcrf.crf.spans`` (which held one module before) with a warning."""
    code = (
        "import warnings\n"
        "from mcrf import MaskedCRF\n"
        "from mcrf.crf import MaskedCRF as Old\n"
        "assert Old is MaskedCRF\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import mcrf.schemes as old\n"
        "import mcrf.crf.schemes as new, mcrf.crf.spans as spans\n"
        "assert old.allowed_transitions is new.allowed_transitions and old.get_spans is spans.get_spans\n"
        "assert set(old.__all__) == set(new.__all__) | set(spans.__all__)\n"
        "assert any('mcrf.crf.schemes' in str(w.message) for w in caught), caught\n"
    )
    _python(code)
