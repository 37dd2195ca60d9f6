"""minixmpp: a small, real asyncio XMPP server with Prosody-compatible invites."""

__version__ = "0.1.0"

__all__ = ["__version__"]
