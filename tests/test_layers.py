"""The layers point one way (docs/architecture.md, "Layers"):

    pcm_lab (the `pcm` command)  ->  backend API, worker  ->  backend.store  ->  pcm_engine

Every import statement of the four packages is read with `ast` — at module level or inside a
function, `import x` or `from x import y`, absolute or relative — without importing anything, and
checked against the rules below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pcm_engine", "backend", "worker", "pcm_lab")


@dataclass(frozen=True)
class Rule:
    """Modules inside `layer` may not import anything inside `forbidden`, except inside `allowed`."""

    layer: str
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()

    def refuses(self, importer: str, imported: str) -> bool:
        return (
            within(importer, self.layer)
            and any(within(imported, f) for f in self.forbidden)
            and not any(within(imported, a) for a in self.allowed)
        )


RULES = (
    Rule("pcm_engine", ("backend", "worker", "pcm_lab", "fastapi", "starlette", "sqlalchemy", "celery")),
    Rule(
        "backend.store",
        ("backend", "worker", "pcm_lab", "fastapi", "starlette"),
        allowed=("backend.store",),
    ),
    Rule("backend", ("worker", "pcm_lab")),
    Rule("worker", ("backend", "pcm_lab"), allowed=("backend.store",)),
)


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything `path` imports; `from a import b` counts as `a.b`, the
    most specific name it may mean (a submodule or a name defined in `a`)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            origin = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                yield node.lineno, f"{origin}.{alias.name}" if alias.name != "*" else origin


def forbidden_edges(root: Path) -> list[str]:
    edges = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            importer = module_name(path, root)
            for line, imported in imported_modules(path, importer):
                if any(rule.refuses(importer, imported) for rule in RULES):
                    edges.append(f"{path.relative_to(root)}:{line}: {importer} -> {imported}")
    return edges


def test_no_import_crosses_a_layer_the_wrong_way() -> None:
    assert forbidden_edges(ROOT) == []


def test_the_walker_finds_every_kind_of_forbidden_import(tmp_path: Path) -> None:
    sources = {
        "pcm_engine/__init__.py": "",
        "pcm_engine/sink.py": "from sqlalchemy.orm import Session\nimport numpy\n",
        "backend/__init__.py": "",
        "backend/app.py": "def start():\n    from worker.app import app\n",
        "backend/store/__init__.py": "",
        "backend/store/launch.py": "import fastapi\nfrom .. import deps\nfrom . import lifecycle\n",
        "backend/store/lifecycle.py": "from backend.store.models import Run\n",
        "worker/__init__.py": "",
        "worker/runner.py": (
            "from backend.store import db\n"
            "class Runner:\n"
            "    def go(self):\n"
            "        import backend.api.routes.runs\n"
            "        from pcm_lab.cli import main\n"
        ),
        "pcm_lab/__init__.py": "",
        "pcm_lab/cli.py": "from backend.store.settings import get_settings\nimport worker.app\n",
    }
    for name, text in sources.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    assert forbidden_edges(tmp_path) == [
        "pcm_engine/sink.py:1: pcm_engine.sink -> sqlalchemy.orm.Session",
        "backend/app.py:2: backend.app -> worker.app.app",
        "backend/store/launch.py:1: backend.store.launch -> fastapi",
        "backend/store/launch.py:2: backend.store.launch -> backend.deps",
        "worker/runner.py:4: worker.runner -> backend.api.routes.runs",
        "worker/runner.py:5: worker.runner -> pcm_lab.cli.main",
    ]
