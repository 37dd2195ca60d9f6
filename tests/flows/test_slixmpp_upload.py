"""slixmpp's HTTP File Upload (xep_0363) end to end: it finds the service in the host's
disco#info, reads max-file-size from its form, asks for a slot, PUTs the file with the slot's
header, and the URL it hands back serves the file to anyone who has it."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import aiohttp
import pytest

from minixmpp.testing import running_server
from tests.xmpp import slix_login

PLUGINS = ("xep_0030", "xep_0199", "xep_0363")
# Plain-HTTP URLs: slixmpp PUTs with an aiohttp session of its own, which trusts only the
# system's CAs, not the test server's.
OPTIONS = {"http_file_share_size_limit": 1000, "https_ports": []}


async def test_slixmpp_upload_file(tmp_path: Path) -> None:
    from slixmpp.exceptions import IqError
    from slixmpp.plugins.xep_0363.http_upload import FileTooBig

    async with running_server(
        tmp_path, modules=["disco", "ping", "http_file_share"], options=OPTIONS
    ) as srv:
        await srv.create_user("alice", "pw")
        alice = await slix_login(
            srv.c2s_port, srv.ca_file, "alice@localhost/phone", "pw", plugins=PLUGINS
        )
        upload = alice.client.plugin["xep_0363"]
        data = "Grüße 👋\n".encode()
        url = await upload.upload_file(
            "grüße.txt", input_file=BytesIO(data), size=len(data), content_type="text/plain"
        )
        assert str(upload.upload_service) == "localhost"  # found on the host itself
        assert upload.max_file_size == 1000  # read from the disco#info form
        assert url.startswith(f"{srv.http_url}/file_share/") and url.endswith(
            "/gr%C3%BC%C3%9Fe.txt"
        )
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            assert await response.read() == data
            assert response.headers["Content-Type"] == "text/plain"
        # too large: slixmpp refuses by itself, knowing the limit; asked anyway, the server does
        with pytest.raises(FileTooBig):
            await upload.upload_file("big.bin", input_file=BytesIO(b"x" * 1001), size=1001)
        with pytest.raises(IqError) as refused:
            await upload.request_slot("localhost", "big.bin", 1001, timeout=10)
        error = refused.value.iq["error"]
        assert (error["type"], error["condition"], error["text"]) == (
            "modify",
            "not-acceptable",
            "File too large",
        )
