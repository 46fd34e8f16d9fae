"""The layering rules of the code base, read from the source with `ast` (no module is imported).

Data and calls flow one way: face (definitions, CLIs) -> sensors -> jobs -> assets (assets,
checks, minting) -> resources -> domain. Settings are read in one place and turned into
resources in one place. `violations(root)` lists every broken rule; the suite checks the real
tree, and a copy of it with a deliberate violation of each kind, so the checker itself cannot
silently pass.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from conftest import REPO

FACE = {
    "zimage_assets.definitions",
    "zimage_assets.cli",
    "zimage_assets.qc_cli",
    "zimage_assets.metrics_server",
    # the generations API and the RabbitMQ intake: how other systems ask for images
    "zimage_assets.api",
    "zimage_assets.api.app",
    "zimage_assets.api.auth",
    "zimage_assets.api.schemas",
    "zimage_assets.api.server",
    "zimage_assets.api.keys",
    "zimage_assets.api.intake",
}
SETTINGS = "zimage_assets.settings"


def layer_of(module: str) -> str:
    if module in FACE:
        return "face"
    if module == SETTINGS or module.startswith(SETTINGS + "."):
        return "settings"
    top = module.split(".")[0]
    if top in ("resources", "jobs", "sensors"):
        return top
    if module.startswith("zimage_assets.domain"):
        return "domain"
    if top == "zimage_assets":
        return "assets"  # assets/, checks/, minting, partitions, metadata
    return "external"


# layer -> layers (or top-level packages) it must never import
NEVER = {
    "domain": {"dagster", "resources", "assets", "jobs", "sensors", "face", "settings"},
    "settings": {"resources", "assets", "jobs", "sensors", "face"},
    "resources": {"assets", "jobs", "sensors", "face"},
    "assets": {"jobs", "sensors", "face"},
    "jobs": {"sensors", "face"},
    "sensors": {"face"},
}
PROJECT_PACKAGES = ("zimage_assets", "resources", "jobs", "sensors")


def project_modules(root: Path) -> dict[str, Path]:
    out = {}
    for package in PROJECT_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports_of(path: Path, module: str, known: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, at any depth (lazy imports count)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from package import submodule` imports the submodule
                candidate = f"{base}.{alias.name}"
                out.append((candidate if candidate in known else base, node.lineno))
    return out


def _forbidden(target: str, banned: set[str]) -> bool:
    top = target.split(".")[0]
    if top == "dagster" or top.startswith("dagster_"):
        return "dagster" in banned
    if top not in PROJECT_PACKAGES:
        return False
    return layer_of(target) in banned


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def violations(root: Path) -> list[str]:
    modules = project_modules(root)
    known = set(modules)
    problems = []
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        layer = layer_of(module)
        source = path.read_text()
        rel = path.relative_to(root)
        for target, line in imports_of(path, module, known):
            if target in known:
                graph.setdefault(module, set()).add(target)
            if _forbidden(target, NEVER.get(layer, set())):
                problems.append(f"{rel}:{line}: {layer} imports {target} ({layer_of(target) if target.split('.')[0] in PROJECT_PACKAGES else 'dagster'})")
            if layer == "resources" and module != "resources" and layer_of(target) == "settings":
                names = _imported_names(path, SETTINGS)
                if names & {"Settings", "definition_settings"}:
                    problems.append(f"{rel}:{line}: only resources/__init__.py turns Settings into resources")
        if "Settings.from_env(" in source and layer not in ("face", "settings"):
            problems.append(f"{rel}: calls Settings.from_env() (only zimage_assets/settings/ and the command entry points may)")
    for group in _cycles(graph):
        problems.append("import loop: " + " -> ".join(group))
    return problems


def _imported_names(path: Path, module: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == module:
            names |= {alias.name for alias in node.names}
    return names


def test_the_code_base_keeps_its_layers():
    assert violations(REPO) == []


def test_no_source_file_outgrows_a_room():
    long = []
    for path in sorted(project_modules(REPO).values()):
        lines = len(path.read_text().splitlines())
        if lines > 450:
            long.append(f"{path.relative_to(REPO)}: {lines} lines")
    assert long == []


@pytest.fixture
def tree_copy(tmp_path) -> Path:
    for package in PROJECT_PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "sample_data", "*.csv"))
    return tmp_path


@pytest.mark.parametrize(
    ("file", "line", "expected"),
    [
        ("zimage_assets/domain/specs.py", "import dagster", "domain imports dagster"),
        ("zimage_assets/domain/specs.py", "from resources.state_db import StateDB", "domain imports resources.state_db"),
        ("resources/generator.py", "from zimage_assets.assets.images import product_images", "resources imports zimage_assets.assets.images"),
        ("zimage_assets/assets/publish.py", "from sensors.launcher import launch_minted", "assets imports sensors.launcher"),
        ("jobs/retention.py", "from sensors import ALL_SENSORS", "jobs imports sensors"),
        ("resources/webhooks.py", "from zimage_assets.settings import Settings", "only resources/__init__.py turns Settings into resources"),
        ("zimage_assets/assets/catalog.py", "X = Settings.from_env()", "calls Settings.from_env()"),
        ("zimage_assets/domain/specs.py", "from zimage_assets.domain.verdicts import PASS", None),  # allowed: no violation
        ("zimage_assets/domain/verdicts.py", "from zimage_assets.domain.gates import summarise_gate", "import loop"),
    ],
)
def test_each_rule_catches_its_violation(tree_copy, file, line, expected):
    path = tree_copy / file
    path.write_text(path.read_text() + f"\n{line}\n")
    found = violations(tree_copy)
    if expected is None:
        assert found == []
    else:
        assert any(expected in problem for problem in found), found
