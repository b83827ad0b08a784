"""The house rules that keep the code easy to change (docs/architecture.md#import-rules): the
import contracts hold, no import hides inside a function to break a cycle, and no module grows
past 450 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hestami_ai", "core", "librechat", "users", "chat", "code_interpreter")
# An import inside a function is allowed only here, each with its reason. AppConfig.ready() is
# always allowed: it is where Django says an app imports its signal receivers and registrations.
FUNCTION_IMPORTS_ALLOWED: dict[str, str] = {}
MAX_LINES = 450
# Modules allowed to be longer, each with its reason.
LONG_MODULES_ALLOWED = {
    # One settings module, environment only (docs/configuration.md lists every variable).
    "hestami_ai/settings.py": "the project's one settings module",
}


def _modules() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def _function_imports(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and path.name == "apps.py":
            # AppConfig.ready(): mark its imports as seen, so the walk below skips them.
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "ready":
                    for sub in ast.walk(item):
                        sub._allowed = True  # type: ignore[attr-defined]
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import | ast.ImportFrom) and not getattr(sub, "_allowed", False):
                where = f"{path.relative_to(root)}:{sub.lineno}"
                if where.split(":")[0] not in FUNCTION_IMPORTS_ALLOWED:
                    found.append(f"{where}: {ast.unparse(sub)}")
    return found


def test_no_import_inside_a_function() -> None:
    found = sorted({line for path in _modules() for line in _function_imports(path)})
    assert found == [], "imports inside functions (move them to the top of the module):\n" + (
        "\n".join(found)
    )


def test_the_rule_finds_an_import_inside_a_function_but_not_in_ready(tmp_path: Path) -> None:
    (tmp_path / "module.py").write_text("def f():\n    from users import models\n")
    (tmp_path / "apps.py").write_text(
        "class Config:\n    def ready(self):\n        from users import signals\n"
    )
    assert _function_imports(tmp_path / "module.py", tmp_path) == [
        "module.py:2: from users import models"
    ]
    assert _function_imports(tmp_path / "apps.py", tmp_path) == []


def test_no_module_is_over_450_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in _modules()
        if len(path.read_text().splitlines()) > MAX_LINES
    }
    assert set(long) <= set(LONG_MODULES_ALLOWED), f"modules over {MAX_LINES} lines: {long}"


def test_the_import_contracts_hold() -> None:
    """Apps never import each other except chat -> users; core and librechat import no app
    (the contracts: [tool.importlinter] in pyproject.toml)."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
