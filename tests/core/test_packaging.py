"""The wheel carries the built-in modules where the loader looks for them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_the_built_in_modules(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("minixmpp-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    for source in (ROOT / "modules").glob("mod_*.py"):
        assert f"minixmpp/_modules/{source.name}" in names
    for source in (ROOT / "modules").glob("mod_*/**/*"):  # package modules, their data too
        if source.is_file() and "__pycache__" not in source.parts:
            assert f"minixmpp/_modules/{source.relative_to(ROOT / 'modules')}" in names
    assert "minixmpp/_modules/mod_invites_page/static/style.css" in names
    found = subprocess.run(
        [sys.executable, "-c", "from minixmpp.loader import builtin_module_dir as d; print(d())"],
        env={"PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert Path(found.stdout.strip()) == tmp_path / "site" / "minixmpp" / "_modules"
