"""The repository's own text files: no merge left its conflict markers behind (one did, in the
README and docs/modules.md, and nothing failed)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.M)


def text_files() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "server.toml", ROOT / "pyproject.toml"]
    for folder, pattern in (
        ("docs", "**/*.md"), ("docs", "**/*.py"), ("minixmpp", "**/*.py"), ("modules", "**/*.py"),
        ("tests", "**/*.py"), ("bench", "**/*.py"), ("tests/node", "*.mjs"),
    ):  # fmt: skip
        found += sorted((ROOT / folder).glob(pattern))
    return [p for p in found if "node_modules" not in p.parts and ".cache" not in p.parts]


def test_no_conflict_markers() -> None:
    files = text_files()
    assert len(files) > 100
    bad = [
        f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}"
        for path in files
        for text in [path.read_text(encoding="utf-8", errors="replace")]
        for m in MARKER.finditer(text)
    ]
    assert bad == []
