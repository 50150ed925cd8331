"""The house keeps its shape: imports point one way down the layers, and the README's drawing lists them in order."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Top to bottom; a module may import its own layer and any layer below it. settings and vocabulary
# are shared by all.
LAYERS = ("cli", "sandbox", "bot", "shop", "serving", "training", "storage")
SHARED = ("settings", "vocabulary")


def _layer(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in LAYERS or top in SHARED else None


def _sources() -> list[Path]:
    files = [REPO / f"{name}.py" for name in ("cli", *SHARED)]
    files += [path for name in LAYERS[1:] for path in sorted((REPO / name).rglob("*.py"))]
    return files


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names} if node.module in LAYERS else set()
    return found


def test_imports_point_down_the_layers() -> None:
    upward = []
    for path in _sources():
        here = _layer(".".join(path.relative_to(REPO).with_suffix("").parts))
        for module in sorted(_imports(path)):
            there = _layer(module)
            if there is None or there in SHARED or here == there:
                continue
            if here in SHARED or LAYERS.index(there) < LAYERS.index(here):
                upward.append(f"{path.relative_to(REPO)} imports {module}")
    assert upward == []


def test_the_readme_draws_every_layer_in_order() -> None:
    readme = REPO / "README.md"
    section = readme.read_text().split("## How it works", 1)[1]
    drawing = section.split("```", 2)[1]
    named = [match for match in re.findall(r"^([a-z]+)(?:/|\.py)", drawing, re.M) if match in LAYERS]
    assert named == list(LAYERS)
