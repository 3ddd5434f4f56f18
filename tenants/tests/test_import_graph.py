"""The project's import picture, read from the source with `ast` (every import statement, those
inside functions and under TYPE_CHECKING too, and `import_module("...")` with a literal name):
the kernel (tenants/) imports no domain app, and no app's services import its own tasks."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNEL = "tenants"
# The project's apps: every top-level package with an apps.py. All but the kernel are domain apps.
APPS = sorted(path.parent.name for path in ROOT.glob("*/apps.py"))
DOMAIN_APPS = [app for app in APPS if app != KERNEL]


def source_files(package: str) -> Iterator[Path]:
    """The package's modules outside its tests and migrations."""
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if "tests" not in parts and "migrations" not in parts:
            yield path


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every module `path` imports, wherever the import is."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:  # `from agents import tasks` imports agents.tasks
                yield node.lineno, f"{node.module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def test_the_project_has_the_kernel_and_its_domain_apps() -> None:
    # Guards the walks below against finding nothing to walk.
    assert KERNEL in APPS
    assert {"agents", "approvals", "budgets", "catalog", "console", "evals", "gateway", "guardrails", "traces"} <= set(
        DOMAIN_APPS
    )
    assert len(list(source_files(KERNEL))) > 20


def test_the_kernel_imports_no_domain_app() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in source_files(KERNEL)
        for line, module in imported_modules(path)
        if module.split(".")[0] in DOMAIN_APPS
    ]
    assert found == [], "the kernel registers what it needs from apps (tenants.registry):\n" + "\n".join(found)


def test_no_app_service_imports_its_own_tasks() -> None:
    """Tasks call services; services enqueue tasks by name (tenants.queue), so neither imports the other."""
    services = [
        path
        for app in APPS
        for path in sorted((ROOT / app).glob("services*.py"))
        + sorted((ROOT / app).glob("services/**/*.py"))
        + sorted((ROOT / app).glob("runtime.py"))
    ]
    assert len(services) >= len(DOMAIN_APPS) - 2  # console has none; the walk found the apps' services
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in services
        for line, module in imported_modules(path)
        if module == f"{path.relative_to(ROOT).parts[0]}.tasks"
        or module.startswith(f"{path.relative_to(ROOT).parts[0]}.tasks.")
    ]
    assert found == [], "\n".join(found)


def test_the_walk_finds_imports_inside_functions_and_by_name(tmp_path: Path) -> None:
    module = tmp_path / "example.py"
    module.write_text(
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from agents.events import RunChanged\n"
        "def f():\n    from approvals import tasks\n    return importlib.import_module('evals.tasks')\n"
    )
    modules = {module for _, module in imported_modules(module)}
    assert {"agents.events", "approvals.tasks", "evals.tasks"} <= modules
