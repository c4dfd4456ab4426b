"""The package's shape: imports point downward only, no cycles, small files and functions.

Imports are read with `ast`, those inside functions included, so a cycle
hidden by a function-level import is still a cycle. The ranks follow
`shared/docs/design.md` §2: cli -> visualization -> {training, serving,
converters, evaluation, prediction} -> features -> {caffe, cuda_convnet,
data, model, pretrained} -> {layers, variants, weights, registry}, refined
so that every pair of units has one direction.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "alexnet_keras"

# The unit of a module is its top-level file or folder under alexnet_keras/.
# A module may import units of a lower rank, and modules of its own unit.
RANKS = {
    "version": 0, "_runtime": 0, "resources": 0, "progress": 0, "files": 0, "variants": 0,
    "limits": 0,
    "geometry": 1, "safe_pickle": 1, "image_header": 1,
    "layers": 2, "registry": 2, "weights": 2,
    "caffe": 3,
    "preprocessing": 4,
    "data": 5,
    "cuda_convnet": 6,
    "pretrained": 7,
    "model": 8,
    "features": 9,
    "converters": 10, "training": 10, "serving": 10, "evaluation": 10, "prediction": 10,
    "summary": 10,
    "visualization": 11,
    "cli": 12, "__main__": 13,
}  # fmt: skip
MAX_TOP_LEVEL_MODULES = 20
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules(root=PACKAGE):
    """`{dotted name: path}` of every module of the package."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path, name, modules):
    """The package modules that `path` imports, with line numbers (every import statement)."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".")[: len(name.split(".")) - node.level + is_package]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module
                       for a in node.names]  # fmt: skip
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, node.lineno))
    return found


def import_graph(root=PACKAGE):
    """`{module: [(imported module, line)]}` for every module of the package."""
    modules = _modules(root)
    return {name: _imports(path, name, modules) for name, path in modules.items()}, modules


def _unit(name):
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package's own __init__


def direction_errors(graph):
    """Every import that points upward or sideways, as readable lines."""
    errors = []
    for source, targets in graph.items():
        for target, line in targets:
            src, dst = _unit(source), _unit(target)
            if src is None:
                continue  # alexnet_keras/__init__.py: the lazy public facade
            if dst is None:
                errors.append(f"{source}:{line} imports the package facade `alexnet_keras`; "
                              "import the defining module instead")  # fmt: skip
                continue
            if src not in RANKS or dst not in RANKS:
                errors.append(f"{source}:{line} -> {target}: unit without a rank in RANKS")
            elif src != dst and RANKS[dst] >= RANKS[src]:
                errors.append(f"{source}:{line} -> {target}: {src} (rank {RANKS[src]}) may not "
                              f"import {dst} (rank {RANKS[dst]})")  # fmt: skip
    return errors


def find_cycle(graph):
    """One import cycle between modules as a list of names, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target, _ in graph.get(node, ()):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in graph:
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _code_lines(node, lines):
    """Lines of code of a function: not blank, not a comment, not its docstring."""
    doc = set()
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        if isinstance(first.value.value, str):
            doc = set(range(first.lineno, first.end_lineno + 1))
    count = 0
    for number in range(node.lineno, node.end_lineno + 1):
        text = lines[number - 1].strip()
        if number not in doc and text and not text.startswith("#"):
            count += 1
    return count


def long_functions(root=PACKAGE, limit=MAX_FUNCTION_LINES):
    out = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text("utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _code_lines(node, lines)
                if n > limit:
                    where = f"{path.relative_to(root.parent)}:{node.lineno}"
                    out.append(f"{where} {node.name}: {n} lines")
    return out


def test_no_import_cycle():
    graph, _ = import_graph()
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_imports_point_downward():
    graph, _ = import_graph()
    errors = direction_errors(graph)
    assert not errors, "\n".join(errors)


def test_every_unit_has_a_rank():
    units = {_unit(name) for name in _modules()} - {None}
    assert units <= set(RANKS), sorted(units - set(RANKS))


def test_at_most_20_top_level_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_no_file_over_400_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text("utf-8").splitlines())) > MAX_FILE_LINES}  # fmt: skip
    assert not long, long


def test_no_function_over_60_lines_of_code():
    assert not long_functions(), "\n".join(long_functions())


# The checks themselves can fail: each planted fault is caught.


def _write(root, files):
    for rel, text in files.items():
        path = root / "alexnet_keras" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "alexnet_keras"


def test_a_planted_upward_import_is_caught(tmp_path):
    # A function-level import, as the registry <-> converters cycle was hidden.
    root = _write(tmp_path, {
        "__init__.py": "",
        "registry.py": "def f():\n    from alexnet_keras.converters import convert\n",
        "converters/__init__.py": "",
        "converters/convert.py": "from alexnet_keras import registry\n",
    })  # fmt: skip
    graph, _ = import_graph(root)
    errors = direction_errors(graph)
    assert any("registry:2 -> alexnet_keras.converters.convert" in e for e in errors), errors
    assert find_cycle(graph) is not None


def test_a_planted_sideways_import_and_facade_import_are_caught(tmp_path):
    root = _write(tmp_path, {
        "__init__.py": "",
        "prediction.py": "from alexnet_keras.serving.graph import class_labels\n",
        "serving/__init__.py": "",
        "serving/graph.py": "import alexnet_keras\n",
    })  # fmt: skip
    errors = direction_errors(import_graph(root)[0])
    assert len(errors) == 2, errors


def test_a_planted_long_function_is_caught(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(61))
    root = _write(tmp_path, {"__init__.py": "", "m.py": f'def f():\n    """Doc."""\n{body}'})
    assert long_functions(root) == ["alexnet_keras/m.py:1 f: 62 lines"]


@pytest.mark.parametrize("text", ["from . import sibling\n", "from .sibling import x\n"])
def test_relative_imports_are_resolved(tmp_path, text):
    root = _write(tmp_path, {
        "__init__.py": "", "cli.py": "", "data/__init__.py": "", "data/sibling.py": "x = 1\n",
        "data/user.py": text + "from alexnet_keras import cli\n",
    })  # fmt: skip
    graph, _ = import_graph(root)
    assert [t for t, _ in graph["alexnet_keras.data.user"]] == [
        "alexnet_keras.data.sibling",
        "alexnet_keras.cli",
    ]
