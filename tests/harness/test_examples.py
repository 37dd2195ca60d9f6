"""The tutorials in docs/examples run as users run them (an inner pytest session with the
plugin from its entry point): a tutorial that stopped working would fail here."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


@pytest.mark.parametrize(
    ("example", "tests"), [("test_echo_bot.py", 2), ("test_invite_expiry.py", 2)]
)
def test_a_tutorial(pytester: pytest.Pytester, example: str, tests: int) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(**{example[:-3]: (EXAMPLES / example).read_text()})
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=tests)
