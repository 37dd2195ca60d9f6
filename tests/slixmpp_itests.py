"""slixmpp's own integration tests (``itests/`` in its sdist) against a minixmpp server.

They are written for a live server: each test logs in ``CI_ACCOUNT1`` (and ``CI_ACCOUNT2``)
with ``CI_ACCOUNT1_PASSWORD``… from the environment and connects with ``client.connect()``,
i.e. to the JID's domain on port 5222 (5223 for direct TLS), or with ``connect(host=domain,
port=…)``. To run them against a test server, this file, run as a script in a process of its
own (they run their own event loops), points ``ClientXMPP.connect`` at the server and its test
CA, then runs one itests file with unittest and prints one JSON line: ``{test id: "ok" |
"fail" | "error" | "skip"}``. The JID's domain stands for the server's ADDRESS (as DNS would
resolve it) and ports 5222 and 5223 for its PORT and DIRECT_TLS_PORT (the same numbers for a
server listening on the standard ports); other hosts and ports are left alone (an itest
connecting to port 9999 must fail). ``fetch_itests()`` gets the itests of the installed slixmpp
from its sdist (``pip download``, once, into ``tests/.cache/``).

    python -m tests.slixmpp_itests ADDRESS PORT DIRECT_TLS_PORT CA_FILE ITESTS_PARENT test_ping.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import unittest
from importlib import import_module, metadata
from pathlib import Path

CACHE = Path(__file__).parent / ".cache"


def fetch_itests() -> Path:
    """The folder holding ``itests/`` of the installed slixmpp's sdist (downloaded once)."""
    version = metadata.version("slixmpp")
    target = CACHE / f"slixmpp-{version}"
    if (target / "itests").is_dir():
        return target
    CACHE.mkdir(exist_ok=True)
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", f"slixmpp=={version}", "-d", str(CACHE),
        ],
        check=True,
        timeout=300,
    )  # fmt: skip
    with tarfile.open(CACHE / f"slixmpp-{version}.tar.gz") as sdist:
        members = [m for m in sdist.getmembers() if m.name.startswith(f"slixmpp-{version}/itests/")]
        sdist.extractall(CACHE, members=members, filter="data")
    return target


def run(
    address: str, c2s_port: int, direct_port: int, ca_file: Path, parent: Path, name: str
) -> dict[str, str]:
    from slixmpp import ClientXMPP

    original = ClientXMPP.connect
    ports = {5222: c2s_port, 5223: direct_port}  # the CI server's ports: the test server's

    # The parameters keep slixmpp's names: reconnect() and some itests pass them by name
    def connect(self: ClientXMPP, host: str | None = None, port: int | None = None) -> object:
        self.ca_certs = ca_file
        if host is None or port is None:  # the JID's domain, by DNS
            host = address
            port = direct_port if self.enable_direct_tls else c2s_port
        elif host == self.boundjid.host:
            host = address
            port = ports.get(port, port)
        return original(self, host, port)

    ClientXMPP.connect = connect  # type: ignore[method-assign]
    sys.path.insert(0, str(parent))
    module = import_module(f"itests.{Path(name).stem}")
    outcome: dict[str, str] = {}

    class Result(unittest.TextTestResult):
        def addSuccess(self, test: unittest.TestCase) -> None:
            super().addSuccess(test)
            outcome[test.id()] = "ok"

        def addFailure(self, test: unittest.TestCase, err: object) -> None:
            super().addFailure(test, err)  # type: ignore[arg-type]
            outcome[test.id()] = "fail"

        def addError(self, test: unittest.TestCase, err: object) -> None:
            super().addError(test, err)  # type: ignore[arg-type]
            outcome[test.id()] = "error"

        def addSkip(self, test: unittest.TestCase, reason: str) -> None:
            super().addSkip(test, reason)
            outcome[test.id()] = "skip"

    unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=Result).run(module.suite)
    return outcome


if __name__ == "__main__":
    address, port, direct, ca, parent, name = sys.argv[1:7]
    print(json.dumps(run(address, int(port), int(direct), Path(ca), Path(parent), name)))
