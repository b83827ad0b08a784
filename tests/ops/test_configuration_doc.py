"""docs/configuration.md lists every environment variable the code reads, and nothing else.

Names read: every ``env_str/env_bool/env_int/env_float/env_list/env_secret("NAME"...)`` call
(core/env.py's typed readers) and every ``os.environ.get("NAME")`` / ``os.getenv("NAME")``
in the project's own Python (not tests, benchmarks or migrations). Names documented: the
back-quoted names in the first column of the document's tables.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from tests.helpers import ROOT

DOC = ROOT / "docs" / "configuration.md"
SKIPPED_DIRS = {"tests", "bench", "migrations", ".venv", "node_modules", "var", "frontend"}
READS = re.compile(
    r"""(?:\benv_(?:str|bool|int|float|list|secret)|os\.environ\.get|os\.getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
)
FIRST_COLUMN = re.compile(r"^\|([^|]*)\|", re.MULTILINE)
NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")


def names_read() -> dict[str, list[str]]:
    """Each name the code reads, with where (path:line)."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if SKIPPED_DIRS & set(relative.parts):
            continue
        text = path.read_text()
        for match in READS.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found[match.group(1)].append(f"{relative}:{line}")
    return dict(found)


def names_documented(text: str) -> set[str]:
    return {name for cell in FIRST_COLUMN.findall(text) for name in NAME.findall(cell)}


def test_every_setting_the_code_reads_is_documented() -> None:
    read = names_read()
    assert "SECRET_KEY" in read  # the scan itself works
    missing = sorted(set(read) - names_documented(DOC.read_text()))
    assert not missing, (
        f"{len(missing)} setting(s) read by the code but missing from docs/configuration.md "
        "(add a table row naming each in its first column):\n"
        + "\n".join(f"  {name}  read at {', '.join(read[name])}" for name in missing)
    )


def test_every_documented_setting_is_read_by_the_code() -> None:
    stale = sorted(names_documented(DOC.read_text()) - set(names_read()))
    assert not stale, (
        f"{len(stale)} setting(s) in docs/configuration.md that no code reads (renamed or "
        f"removed? fix or drop their rows): {', '.join(stale)}"
    )


def test_the_scan_finds_names_in_every_form_it_claims(tmp_path: Path) -> None:
    sample = (
        'A = env_int("ONE", 1, minimum=0)\nB = env_secret(\n    "TWO", debug=True)\n'
        'C = os.environ.get(\'THREE\')\nD = os.getenv("FOUR")\nE = env_str(f"{x}_FILE")\n'
    )
    assert [m.group(1) for m in READS.finditer(sample)] == ["ONE", "TWO", "THREE", "FOUR"]
    table = "| variable | default |\n|---|---|\n| `A_B` / `C` | `NOT_ME` |\n"
    assert names_documented(table) == {"A_B", "C"}
