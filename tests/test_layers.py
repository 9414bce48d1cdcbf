"""The package's layers import downwards only, and exactly one module touches SDK internals."""

from __future__ import annotations

import ast
from pathlib import Path

INTERNAL = Path(__file__).parent.parent / "otel_gitjob" / "_internal"

# Lower layers first; a module may import (at run time) only modules of earlier rows. Listener
# modules sit above the whole core.
LAYERS: list[set[str]] = [
    {"prometheus.health", "prometheus.sanitize", "prometheus.server"},
    {"core.errors", "core.identity", "core.points", "core.selfmetrics", "core.degraded"},
    {"prometheus._seam"},
    {"prometheus.renderer"},
    {"core.drops", "core._sdk", "prometheus.endpoint"},
    {"core.registry"},
    {"core.expiry"},
    {"core.views", "push"},
    {"core.hooks"},
    {"prometheus.reader", "push.exporter"},
    {"core.lifecycle"},
    {"fleet.gitjob"},
    {"app.setup"},
    {"app.demo"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def runtime_imports(path: Path) -> set[str]:
    """Internal modules imported at run time (imports under ``if TYPE_CHECKING:`` are for annotations)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            is_type_checking = isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            if isinstance(child, ast.ImportFrom) and not typing_only and child.module:
                if child.module.startswith("otel_gitjob._internal.push"):
                    found.add("push")
                elif child.module.count(".") == 2 and child.module.startswith("otel_gitjob._internal."):
                    found.update(child.module.split(".")[2] + "." + alias.name for alias in child.names)
                elif child.module.startswith("otel_gitjob._internal."):
                    found.add(".".join(child.module.split(".")[2:4]))
            visit(child, typing_only or is_type_checking)

    visit(tree, False)
    return found


def test_core_modules_import_downwards_only():
    for name, rank in RANK.items():
        path = INTERNAL / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = INTERNAL / name / "__init__.py"
        assert path.exists(), name
        for imported in runtime_imports(path) - {name}:
            assert imported in RANK, "%s imports %s, which is in no layer of this test" % (name, imported)
            # lifecycle builds the exporters lazily inside its methods: still a downward import.
            assert RANK[imported] < rank, "%s (layer %d) imports %s (layer %d)" % (
                name,
                rank,
                imported,
                RANK[imported],
            )


def test_only_the_sdk_seam_imports_sdk_internals():
    offenders = []
    for path in (INTERNAL.parent).rglob("*.py"):
        if path.name == "_sdk.py":
            continue
        text = path.read_text()
        if "opentelemetry.sdk.metrics._internal" in text or "_view_instrument_match" in text:
            offenders.append(str(path.relative_to(INTERNAL.parent)))
    assert offenders == []
