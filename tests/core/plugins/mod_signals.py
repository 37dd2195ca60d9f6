"""A test module: the server process sends itself signals at a given moment of its life, so a
test can hit the moments a signal from outside could only hit by chance."""

import os
import signal
from dataclasses import dataclass, field

from minixmpp.events import SERVER_STARTED, SERVER_STOPPING, ServerEvent
from minixmpp.module import Module


@dataclass
class Options:
    signals_when_started: list[str] = field(default_factory=list)  # e.g. ["SIGTERM"]
    signals_when_stopping: list[str] = field(default_factory=list)


def load(module: Module) -> None:
    opts = module.options(Options)

    def send(names: list[str]) -> None:
        for name in names:
            os.kill(os.getpid(), getattr(signal, name))

    @module.hook(SERVER_STARTED)
    async def started(_event: ServerEvent) -> None:
        send(opts.signals_when_started)

    @module.hook(SERVER_STOPPING)
    async def stopping(_event: ServerEvent) -> None:
        send(opts.signals_when_stopping)
