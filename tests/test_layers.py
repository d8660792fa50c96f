"""The package's import structure: no cycles, and each layer imports only those below it.

Imports are read from the source (module level and inside functions alike), so a lazy
import cannot hide a cycle. Layers, top to bottom:

    cli  >  package root (and its re-exports)  >  apps  >  api, numba  >  backends  >
    mappings  >  leaves (_checks, _layout, _jit)

``numba/`` (the gufuncs and overloads) may import the public ``api`` (the overloads
register against its functions), and the package root re-exports; nothing below ``api``
imports it, and the Dask backend reaches other backends only through the backend table.
"""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "sparsemax_nb"
RANK = {"leaf": 0, "mappings": 1, "backends": 2, "numba": 3, "api": 3, "apps": 4,
        "root": 5, "cli": 6}


def _module_name(path):
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path, name):
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("sparsemax_nb"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("sparsemax_nb"):
                continue
            for a in node.names:  # "from . import x" may name a submodule
                sub = f"{mod}.{a.name}"
                out.add(sub if (PKG.parent / (sub.replace(".", "/") + ".py")).exists()
                        or (PKG.parent / sub.replace(".", "/")).is_dir() else mod)
    return out


def _graph():
    graph = {}
    for path in PKG.rglob("*.py"):
        name = _module_name(path)
        graph[name] = {m for m in _imports(path, name) if m != name}
    return graph


def _layer(name):
    parts = name.split(".")
    if len(parts) == 1:
        return "root"
    if parts[1] in ("_checks", "_layout", "_jit"):
        return "leaf"
    if parts[1] in ("gufuncs", "multilabel", "datasets", "attention"):
        return "root"  # compatibility re-exports
    if parts[1] in ("__main__",):
        return "cli"
    return parts[1]


def test_no_import_cycle():
    graph = _graph()
    state = {}

    def visit(n, stack):
        state[n] = "open"
        for m in graph.get(n, ()):
            # importing a package runs its __init__: an edge to the package too
            for dep in {m} | ({m.rsplit(".", 1)[0]} if "." in m else set()):
                if dep == n or dep not in graph or n.startswith(dep + "."):
                    continue
                if state.get(dep) == "open":
                    raise AssertionError("import cycle: " + " -> ".join(stack + [n, dep]))
                if dep not in state:
                    visit(dep, stack + [n])
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n, [])


def test_layers_import_downward():
    bad = []
    for name, deps in _graph().items():
        for dep in deps:
            if dep not in _graph():
                continue
            a, b = _layer(name), _layer(dep)
            if name.startswith(dep + "."):
                continue  # a module's own package
            if RANK[b] > RANK[a] or (RANK[b] == RANK[a] and a != b and {a, b} != {"numba", "api"}):
                bad.append(f"{name} ({a}) imports {dep} ({b})")
            if a == "numba" and b == "api" and "overloads" not in name:
                bad.append(f"{name} imports the public api")
    assert not bad, "\n".join(sorted(bad))


def test_leaves_import_no_package_module_but_leaves():
    for name, deps in _graph().items():
        if _layer(name) == "leaf":
            assert all(_layer(d) == "leaf" for d in deps), (name, deps)


def test_dask_backend_never_calls_the_public_api():
    deps = _graph()["sparsemax_nb.backends.dask"]
    assert not any(d in ("sparsemax_nb.api", "sparsemax_nb") for d in deps), deps
