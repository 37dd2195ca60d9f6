"""README.md stays true to the modules: each built-in module has a row in the Modules table (or
is among the automatic ones named above it), and every option a module declares is documented
(`name`, with its default beside it)."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
MODULES = sorted(p.name.removesuffix(".py") for p in (ROOT / "modules").glob("mod_*"))


def option_names(module: str) -> list[str]:
    options = getattr(importlib.import_module(f"modules.{module}"), "Options", None)
    if options is None:
        return []
    if dataclasses.is_dataclass(options):
        return [f.name for f in dataclasses.fields(options)]
    return list(getattr(options, "__struct_fields__", ()))


@pytest.mark.parametrize("module", MODULES)
def test_each_module_and_its_options_are_documented(module: str) -> None:
    name = module.removeprefix("mod_")
    automatic = README.split("| Module | What it does |")[0].rsplit("### Modules", 1)[1]
    row = re.search(rf"^\| `{name}` \| .*$", README, re.M)
    assert row is not None or f"`{name}`" in automatic, f"README: no row for {name}"
    for option in option_names(module):
        assert f"`{option}`" in README, f"README: {name}'s option {option} is not documented"
        if row is not None and f"`{option}`" not in row[0]:  # in a table of its own
            assert re.search(rf"^\| `{option}`( \(top level\))? \| ", README, re.M), option
