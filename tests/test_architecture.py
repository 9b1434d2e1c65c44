"""The package's structure, from its source (ast; nothing is imported): the layer rule
core <- experiments <- report <- cli, no import cycle, neural-tangents' and JAX's
internals touched only by ``_compat``, no private name imported across modules, and
every experiment following the protocol."""
import ast
import dataclasses
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "ntkequi"

#: layer of each top-level part of the package; a module may import only its own layer or lower
LAYERS = {"_compat": 0, "_validate": 0, "nt": 0, "groups": 0, "nn": 0, "kernels": 0, "ensembles": 0, "metrics": 0,
          "data": 0, "runs": 0, "distributed": 0, "experiments": 1, "report": 2, "cli": 3, "__main__": 3, "__init__": 0}
#: private modules whose names are meant to be shared inside the package
SHARED_PRIVATE = {"ntkequi._compat", "ntkequi._validate", "ntkequi.kernels._common"}


def _modules() -> dict:
    out = {}
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(PKG.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = f
    return out


MODS = _modules()


def _imports(name: str) -> list:
    """``(target module, imported name or None, lineno)`` of every import in module ``name``
    that resolves inside the package (relative imports resolved)."""
    f = MODS[name]
    is_pkg = f.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(f.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "ntkequi"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "ntkequi":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((sub, None, node.lineno) if sub in MODS else (target, a.name, node.lineno))
    return out


def _layer(mod: str) -> int:
    parts = mod.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else 0


def _graph() -> dict:
    g = {}
    for m in MODS:
        g[m] = set()
        for target, _, _ in _imports(m):
            while target not in MODS and "." in target:
                target = target.rsplit(".", 1)[0]
            # a package's __init__ importing its own submodules is its face, not a dependency
            if target != m and not (MODS[m].name == "__init__.py" and target.startswith(m + ".")):
                g[m].add(target)
    return g


def test_every_module_has_a_layer():
    unknown = sorted({m.split(".")[1] for m in MODS if "." in m} - set(LAYERS))
    assert not unknown, f"add {unknown} to LAYERS (and to the README's architecture section)"


def test_no_upward_import():
    bad = [(m, t) for m, ts in _graph().items() for t in ts if m != "ntkequi" and _layer(t) > _layer(m)]
    assert not bad, f"imports from a lower layer to a higher one: {bad}"


def test_no_import_cycle():
    g = _graph()
    state = {}

    def visit(m, path):
        state[m] = 1
        for t in sorted(g[m]):
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])


def test_no_cycle_between_core_subpackages():
    g = _graph()
    pkg = lambda m: m.split(".")[1] if m.count(".") else None
    edges = {(pkg(m), pkg(t)) for m, ts in g.items() for t in ts
             if pkg(m) and pkg(t) and pkg(m) != pkg(t) and _layer(m) == _layer(t) == 0}
    for a, b in edges:
        assert (b, a) not in edges, f"core subpackages {a} and {b} import each other"


def test_only_compat_touches_library_internals():
    bad = []
    for m, f in MODS.items():
        if m == "ntkequi._compat":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [(m, n) for n in names if "._src" in n or n.startswith(("jax.interpreters", "jax.core",
                                                                           "jax.extend", "neural_tangents._"))]
    assert not bad, f"only ntkequi._compat may import JAX or neural-tangents internals: {bad}"


def test_no_private_name_is_imported_across_modules():
    bad = []
    for m in MODS:
        aliases = {}
        for target, name, line in _imports(m):
            if name is not None and name.startswith("_") and target not in SHARED_PRIVATE:
                bad.append(f"{m}:{line} imports {target}.{name}")
        # module objects used for a private attribute: ``from . import ntk; ntk._x``
        tree = ast.parse(MODS[m].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    aliases[a.asname or a.name] = a.name
        mod_names = {alias for alias, real in aliases.items()
                     if any(t.endswith("." + real) and t in MODS for t, n, _ in _imports(m) if n is None)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in mod_names
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and aliases[node.value.id] not in {"_compat", "_validate", "_common"}):
                bad.append(f"{m}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not bad, bad


def test_every_experiment_follows_the_protocol():
    from ntkequi import experiments
    from ntkequi.experiments.protocol import Figure
    from ntkequi.runs import from_jsonable, to_jsonable
    files = {f.stem for f in (PKG / "experiments").glob("*.py")} - {"__init__"}
    assert not set(experiments.HELPERS) & set(experiments.NAMES)
    assert files == set(experiments.NAMES) | set(experiments.HELPERS), \
        "every module of experiments/ is a registered experiment or a declared helper"
    for h in experiments.HELPERS:                  # a helper is not a forgotten experiment
        assert not hasattr(importlib.import_module(f"ntkequi.experiments.{h}"), "NAME"), h
    for m in experiments.all_modules():
        assert m.NAME == m.__name__.rsplit(".", 1)[1]
        assert isinstance(m.USES_DATA, bool) and m.__doc__
        assert "small" in m.PRESETS and set(m.CPU_TIME) == set(m.PRESETS), m.NAME
        for name, cfg in m.PRESETS.items():
            assert dataclasses.is_dataclass(cfg) and type(cfg) is m.Config, (m.NAME, name)
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(cfg, dataclasses.fields(cfg)[0].name, None)
            # configs are read back as the same frozen dataclasses
            assert from_jsonable(m.Config, to_jsonable(cfg)) == cfg, (m.NAME, name)
        assert callable(m.run) and callable(m.summary)
        assert all(isinstance(f, Figure) for f in getattr(m, "FIGURES", ()))
        # precision is the runner's job
        assert "jax_enable_x64" not in (PKG / "experiments" / f"{m.NAME}.py").read_text(), m.NAME


def test_report_never_names_an_experiment():
    from ntkequi import experiments
    for f in (PKG / "report").glob("*.py"):
        text = f.read_text()
        named = [n for n in experiments.NAMES if f'"{n}"' in text or f"'{n}'" in text or f".{n}" in text]
        assert not named, f"{f.name} names experiments {named}: declare it beside the experiment instead"


def test_every_public_name_has_a_docstring():
    import importlib
    import inspect
    pkgs = ["ntkequi", "ntkequi.groups", "ntkequi.nn", "ntkequi.kernels", "ntkequi.kernels.matrix",
            "ntkequi.kernels.group_stax", "ntkequi.ensembles", "ntkequi.metrics", "ntkequi.data", "ntkequi.runs",
            "ntkequi.experiments", "ntkequi.experiments.protocol", "ntkequi.report", "ntkequi.report.build",
            "ntkequi.report.tables"]
    missing = []
    for name in pkgs:
        mod = importlib.import_module(name)
        assert (mod.__doc__ or "").strip(), name
        for n in mod.__all__:
            obj = getattr(mod, n)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            doc = (obj.__doc__ or "").strip()
            if not doc or (inspect.isclass(obj) and doc.startswith(obj.__name__ + "(")):   # dataclass default
                missing.append(f"{name}.{n}")
            if inspect.isclass(obj):
                # a method that overrides a documented one of a base class (a layer type's
                # ``kernel``) has that docstring: inspect.getdoc finds it
                missing += [f"{name}.{n}.{k}" for k, v in vars(obj).items() if not k.startswith("_")
                            and (inspect.isfunction(v) or isinstance(v, property))
                            and not (inspect.getdoc(getattr(obj, k) if inspect.isfunction(v) else v) or "").strip()]
    assert not missing, missing
