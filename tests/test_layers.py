"""The package's structure, read from its code: layers that only point down, no import cycle, no
hidden import inside a function, and no library default that could disagree with the schema.

Run ``python -m pytest tests/test_layers.py -v`` to see the graph checked; :data:`LAYERS` is the
intended order, bottom first.
"""
import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "twindnn"

# Bottom first. A module may import modules of lower layers only; a package whose __init__ imports
# its modules (twindnn.data) sits above them. The software and hardware halves share the layers.
LAYERS = [
    # 0: facts and formulas, importing nothing of the package
    ["twindnn", "twindnn.system", "twindnn.hardware", "twindnn.steps", "twindnn.device", "twindnn.snakemake_io",
     "twindnn.plotting", "twindnn.system.model", "twindnn.system.host_loop", "twindnn.hardware.boards",
     "twindnn.hardware.finn_env", "twindnn.data.base", "twindnn.data.split", "twindnn.stats"],
    # 1: networks, fused quantizers, gates, provenance, decoding, FINN+ steps, the board link, FIFO
    # costs, the optimizer, the run's answer
    ["twindnn.models", "twindnn.fused_quant", "twindnn.operating_points", "twindnn.provenance", "twindnn.data.decode",
     "twindnn.data.imagenet", "twindnn.hardware.streamline", "twindnn.hardware.board_timing",
     "twindnn.hardware.fifo", "twindnn.hardware.optimize", "twindnn.answer"],
    # 2: readers, the system simulation, table files, the config boundary, the estimate path, export
    ["twindnn.cascade", "twindnn.data.readers", "twindnn.table_io", "twindnn.hardware.estimate",
     "twindnn.hardware.export"],
    # 3: the dataset cache, the per-network search and resource bound, the builds
    ["twindnn.config", "twindnn.system.simulate", "twindnn.data.cache", "twindnn.hardware.search",
     "twindnn.hardware.bounds", "twindnn.hardware.finn_build", "twindnn.hardware.multi_dnn"],
    # 4: the data package's API, the pair search, the reports of both halves
    ["twindnn.data", "twindnn.hardware.colocate", "twindnn.hardware.tables", "twindnn.hardware.figures",
     "twindnn.report"],
    # 5: training and timing
    ["twindnn.train", "twindnn.throughput"],
    # 6: what the steps hand each other
    ["twindnn.artifacts"],
    # 7: the steps of both halves (the rule scripts call these)
    ["twindnn.steps.software", "twindnn.steps.fpga"],
    # 8: entry points (the JPEG copy of CIFAR-10 among them)
    ["twindnn.launch", "twindnn.benchmark", "twindnn.publish", "twindnn.data.jpeg_copy"],
    ["twindnn.cli"],
]
LAYER = {module: i for i, names in enumerate(LAYERS) for module in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """The package modules an ``import from`` names (``from . import x`` may name a module x)."""
    if node.level:
        base = module.split(".")
        if MODULES[module].name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("twindnn"):
        return []
    names = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
    return names or [target]


def imports(module: str) -> list[tuple[str, ast.stmt, bool]]:
    """(imported package module, node, inside a function) for every import of ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    inside = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out += [(t, node, id(node) in inside) for t in resolve(module, node)]
        elif isinstance(node, ast.Import):
            out += [(a.name, node, id(node) in inside) for a in node.names if a.name.startswith("twindnn")]
    return out


def test_every_module_has_a_layer():
    assert sorted(set(MODULES) - set(LAYER)) == [], "add the new modules to LAYERS"
    assert sorted(set(LAYER) - set(MODULES)) == [], "LAYERS names modules that do not exist"


def test_imports_point_down_only():
    upward = []
    for module in MODULES:
        for target, node, _ in imports(module):
            if target in LAYER and LAYER[target] >= LAYER[module] and not module.startswith(target + "."):
                # a package's modules may not import their own package's __init__ either
                upward.append(f"{module} (layer {LAYER[module]}) imports {target} (layer {LAYER[target]}) "
                              f"at line {node.lineno}")
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    graph = {m: {t for t, _, _ in imports(m) if t in MODULES and t != m} for m in MODULES}
    state, cycles = {}, []

    def visit(m, path):
        state[m] = "open"
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(" -> ".join(path[path.index(t):] + [t]) if t in path else f"{m} -> {t}")
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_no_package_import_inside_a_function():
    hidden = [f"{m}:{node.lineno} imports {t}" for m in MODULES for t, node, inside in imports(m) if inside]
    assert not hidden, "\n".join(hidden)


def test_deferred_imports_say_why():
    """A third-party import inside a function defers a heavy or set-up-dependent package (FINN+
    after its set-up, Brevitas, torchvision); the line, or the comment just above it, says so."""
    silent = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    first = node.lineno - 1
                    block = [lines[first]]
                    j = first - 1
                    while j >= 0 and (lines[j].strip().startswith(("import ", "from ", "#"))
                                      or lines[j].strip().endswith(",")):
                        block.append(lines[j])
                        j -= 1
                    end = getattr(node, "end_lineno", node.lineno)
                    block += lines[first:end]
                    if not any("#" in line for line in block):
                        silent.append(f"{module}:{node.lineno}: {lines[first].strip()}")
    assert not silent, "deferred imports without a reason:\n" + "\n".join(sorted(set(silent)))


def schema_keys_with_defaults() -> set[str]:
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    keys = set()

    def walk(node):
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if isinstance(prop, dict) and "default" in prop:
                    keys.add(name)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return keys


# Modules that read dictionaries whose keys share a name with a config key but are not the config
# (a board's driver report, board files); elsewhere such a line says so with "# not the config".
NOT_CONFIG = {"twindnn.hardware.board_timing", "twindnn.hardware.boards"}


def test_no_library_default_for_a_schema_key():
    """The schema is the only home of defaults (Snakemake's validate fills them in): the library
    reads config keys directly, so a default of its own can never disagree with the schema."""
    keys = schema_keys_with_defaults()
    found = []
    for module, path in MODULES.items():
        if module in NOT_CONFIG:
            continue
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if "# not the config" in lines[node.lineno - 1] if hasattr(node, "lineno") else False:
                continue
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in keys):
                found.append(f"{module}:{node.lineno}: .get({node.args[0].value!r}, ...)")
    assert not found, "index schema keys directly:\n" + "\n".join(found)


@pytest.mark.parametrize("field, key", [
    ("ternary", "ternary"), ("edge_bits", "edge_bits"), ("stream_bits", "stream_bits"),
    ("weight_scaling", "weight_scaling"),
])
def test_quant_spec_defaults_are_the_schemas(field, key):
    """The one dataclass that keeps defaults for config keys (tests and notebooks build specs by
    hand) keeps the schema's."""
    import dataclasses

    from twindnn.models import QuantSpec

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    twin_entry = schema["properties"]["twins"]["additionalProperties"]["properties"]
    default = {f.name: f.default for f in dataclasses.fields(QuantSpec)}[field]
    assert default == twin_entry[key]["default"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module):
    """Each module imports on its own (a moved name shows up here, not in a rule's job)."""
    import importlib

    importlib.import_module(module)
