"""The floors of the package hold: who may import whom (docs/ARCHITECTURE.md), and no import circle.

Every ``import`` of every module, at any depth (function-level imports too), is an edge. The
floors, top to bottom: cli -> stages -> build -> {pipeline, cache, datasets} -> the bottom floor
(config, errors, fingerprint, atomic, progress, the package itself).
"""

from __future__ import annotations

import ast
from pathlib import Path

import clawcrane

ROOT = Path(clawcrane.__file__).parent
BOTTOM = {"clawcrane", "clawcrane.config", "clawcrane.errors", "clawcrane.fingerprint", "clawcrane.atomic",
          "clawcrane.progress"}
CLI = {"clawcrane.cli", "clawcrane.cli_options", "clawcrane.__main__"}
ORCHESTRATORS = {"clawcrane.stages.quickstart", "clawcrane.stages.ablate", "clawcrane.stages.segment",
                 "clawcrane.stages.report"}
STAGE_HELPERS = {"clawcrane.stages.detect_stream", "clawcrane.stages.sharding", "clawcrane.stages.render",
                 "clawcrane.stages.mask_files", "clawcrane.stages.report_page"}
"""Modules of stages/ that are not stages (no command of their own): any stage may use them."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The clawcrane modules ``path`` imports (``from x import y`` counts y when y is a module)."""
    me = module_name(path)
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("clawcrane")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                pkg = me.split(".")[: -node.level] if not path.name == "__init__.py" else me.split(".")[: len(me.split(".")) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            if not base.startswith("clawcrane"):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if (ROOT.parent / sub.replace(".", "/")).with_suffix(".py").is_file()
                        or (ROOT.parent / sub.replace(".", "/") / "__init__.py").is_file() else base)
    out.discard(me)
    return out


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in ROOT.rglob("*.py")}


def floor(name: str) -> str:
    if name in BOTTOM:
        return "bottom"
    if name in CLI:
        return "cli"
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "bottom"


def violations(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(g.items()):
        f = floor(mod)
        for dep in sorted(deps):
            d = floor(dep)
            if f == "bottom" and d != "bottom":
                bad.append(f"{mod} -> {dep}: the bottom floor imports nothing above it")
            elif f == "pipeline" and d not in ("pipeline", "bottom"):
                bad.append(f"{mod} -> {dep}: pipeline/ is pure and imports only itself and the bottom floor")
            elif f == "cache" and d not in ("cache", "bottom") and dep != "clawcrane.pipeline.masks":
                bad.append(f"{mod} -> {dep}: cache/ knows no model (only pipeline.masks, for RLE) and no other floor")
            elif f == "datasets" and d not in ("datasets", "bottom"):
                bad.append(f"{mod} -> {dep}: datasets/ imports only itself and the bottom floor")
            elif f == "build" and d in ("stages", "cli"):
                bad.append(f"{mod} -> {dep}: build/ sits below stages/")
            elif f in ("pipeline", "cache", "datasets", "build", "stages") and d == "cli":
                bad.append(f"{mod} -> {dep}: nothing below the CLI imports it")
            elif (f == "stages" and d == "stages" and mod not in ORCHESTRATORS and dep not in STAGE_HELPERS
                  and dep != "clawcrane.stages"):
                bad.append(f"{mod} -> {dep}: a stage imports another stage (only quickstart, ablate, segment and report orchestrate)")
    return bad


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Import circles (Tarjan's strongly connected components with more than one module)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_every_import_respects_the_floors():
    assert violations(graph()) == []


def test_there_is_no_import_circle():
    # package __init__ modules re-export nothing, so a package importing its own modules is not a circle
    g = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph().items()}
    assert cycles(g) == []


def test_the_checker_catches_what_it_should():
    """Hand-made graphs: each rule fires on the edge it forbids, and a circle is found."""
    bad = violations({
        "clawcrane.pipeline.head": {"clawcrane.cache.checkpoints"},
        "clawcrane.cache.checkpoints": {"clawcrane.pipeline.head", "clawcrane.pipeline.masks"},
        "clawcrane.datasets.a2d": {"clawcrane.cache.store"},
        "clawcrane.stages.track_rank": {"clawcrane.stages.train_head", "clawcrane.stages.render"},
        "clawcrane.build.heads": {"clawcrane.stages.train_head"},
    })
    edges = [b.split(":")[0] for b in bad]
    assert len(bad) == 5 and "clawcrane.cache.checkpoints -> clawcrane.pipeline.masks" not in edges
    assert "clawcrane.stages.track_rank -> clawcrane.stages.render" not in edges
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
