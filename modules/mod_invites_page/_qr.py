"""A QR code of an invite's landing URL, drawn on the server as inline SVG (segno): no script,
and a phone's camera app opens the page (or an XMPP app reads its Link header)."""

from __future__ import annotations

import segno


def qr_svg(url: str) -> str:
    code = segno.make(url, error="m", micro=False)
    svg: str = code.svg_inline(
        scale=1, border=4, omitsize=True, dark="#000000", light="#ffffff",
        svgclass="qr-code",
    )  # fmt: skip
    return svg.replace("<svg ", '<svg role="img" aria-label="QR code of this invite" ', 1)
