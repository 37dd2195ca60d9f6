"""Uploaded files on disk: ``<data_path>/http_file_share/<host>/<slot>.bin``, written as
``<slot>.part`` and renamed once whole, so a file with the final name is always complete.

A body is streamed to disk as it arrives (never held whole in memory) and cut off as soon as
it is longer than the slot's size. File system calls run in worker threads, so a slow disk does
not stall the event loop. The database is the truth: ``reconcile`` removes every file that no
slot names any more (a slot expired or deleted with its account while the server was down or
the harness reset the database) and every ``.part`` no upload is writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

FINAL, PART = ".bin", ".part"


class TooLong(Exception):
    """The body is longer than the slot's size."""


def _create(path: Path) -> BinaryIO:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


def _finish(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _publish(part: Path, final: Path, mtime: float) -> None:
    os.utime(part, (mtime, mtime))  # Last-Modified: when the slot was issued (the clock's)
    os.replace(part, final)


def _listing(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


class Files:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.busy: set[str] = set()  # slots being written now (the PUT handler keeps it)

    def path(self, slot: str) -> Path:
        return self.folder / f"{slot}{FINAL}"

    async def exists(self, slot: str) -> bool:
        return await asyncio.to_thread(self.path(slot).is_file)

    async def receive(self, slot: str, body: AsyncIterator[bytes], size: int, mtime: float) -> int:
        """Write the body into the slot's file; the number of bytes it had. The file is kept
        only if that is exactly ``size``; TooLong as soon as it is more (nothing kept)."""
        part = self.folder / f"{slot}{PART}"
        kept = False
        try:
            handle = await asyncio.to_thread(_create, part)
            try:
                received = 0
                async for chunk in body:
                    received += len(chunk)
                    if received > size:
                        raise TooLong()
                    await asyncio.to_thread(handle.write, chunk)
                if received == size:
                    await asyncio.to_thread(_finish, handle)
            finally:
                await asyncio.to_thread(handle.close)
            if received == size:
                await asyncio.to_thread(_publish, part, self.path(slot), mtime)
                kept = True
            return received
        finally:
            if not kept:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(part.unlink, True)

    async def remove(self, slot: str) -> bool:
        """Delete a slot's file (True if it is gone now, also if there was none)."""
        try:
            await asyncio.to_thread(self.path(slot).unlink, True)
        except OSError:
            return False
        return True

    async def reconcile(self, existing: Callable[[list[str]], Awaitable[set[str]]]) -> int:
        """Delete the files of slots that do not exist and stray ``.part`` files; how many."""
        names = await asyncio.to_thread(_listing, self.folder)
        finals = [n.removesuffix(FINAL) for n in names if n.endswith(FINAL)]
        known = await existing(finals) if finals else set()
        gone = [self.folder / f"{s}{FINAL}" for s in finals if s not in known]
        gone += [
            self.folder / n
            for n in names
            if n.endswith(PART) and n.removesuffix(PART) not in self.busy
        ]
        for path in gone:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(path.unlink, True)
        return len(gone)
