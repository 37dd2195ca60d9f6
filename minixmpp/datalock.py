"""One server per data folder: an exclusive ``flock`` on ``<data_path>/minixmpp.lock``.

A server holds the lock from start to exit. A CLI command that runs in-process (because no
server answers on the admin socket) holds it while it runs. So a second server sharing the
folder refuses to start instead of taking over the first one's admin socket; a starting server
waits for an in-process command to finish; and a command never runs in-process beside a server
that is still starting (its admin socket not yet open), whose caches would miss the change.

The holder writes ``<pid> <role>`` into the file, so whoever finds it locked can say who holds
it (the content is advisory: it may be empty or a previous holder's for an instant, which is
why callers retry). The kernel drops the lock with the process, so a killed server leaves
nothing stale. The file is never deleted: unlinking a lock file races with the next opener.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("minixmpp.datalock")

LOCK_NAME = "minixmpp.lock"
SERVER, COMMAND = "server", "command"


class DataFolderError(Exception):
    """The data folder cannot be created, or its lock file cannot be opened or locked."""


@dataclass(frozen=True)
class Holder:
    pid: int
    role: str

    def __str__(self) -> str:
        what = "server" if self.role == SERVER else "command"
        return f"a minixmpp {what} (pid {self.pid})"


class DataFolderBusy(DataFolderError):
    """Another process holds the data folder's lock."""

    def __init__(self, folder: Path, holder: Holder | None) -> None:
        self.folder = folder
        self.holder = holder
        who = str(holder) if holder else "another process"
        super().__init__(f"data folder {folder} is in use by {who}")


def create_folder(folder: Path) -> None:
    """Create the data folder owner-only (it holds SCRAM keys) if it does not exist."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DataFolderError(f"cannot create data folder {folder}: {exc.strerror}") from None
    if not folder.is_dir():  # exist_ok passes a symlink to a file as well
        raise DataFolderError(f"cannot create data folder {folder}: not a directory")


class DataLock:
    """The held lock; ``release()`` it (or let the process end)."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = folder
        self._fd: int | None = fd

    @classmethod
    def try_acquire(cls, folder: Path, role: str) -> DataLock:
        """Take the lock now, or raise DataFolderBusy naming the holder (DataFolderError when
        the folder or the lock file is unusable)."""
        create_folder(folder)
        path = folder / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DataFolderError(f"cannot open {path}: {exc.strerror}") from None
        try:
            _same_owner_as_folder(fd, folder)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataFolderBusy(folder, holder) from None
        except OSError as exc:
            os.close(fd)
            raise DataFolderError(f"cannot lock {path}: {exc.strerror}") from None
        with contextlib.suppress(OSError):  # a full disk: held all the same, holder unnamed
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {role}\n".encode(), 0)
        return cls(folder, fd)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # nobody reads a holder that is gone
        os.close(fd)  # closing the only descriptor drops the flock


def check_free(folder: Path) -> None:
    """Raise DataFolderBusy when a process holds the folder's lock; creates and writes
    nothing (for ``check-config``)."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return  # never locked
    except OSError as exc:
        raise DataFolderError(f"cannot open {folder / LOCK_NAME}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise DataFolderBusy(folder, _read_holder(fd)) from None
    except OSError as exc:
        raise DataFolderError(f"cannot lock {folder / LOCK_NAME}: {exc.strerror}") from None
    finally:
        os.close(fd)


async def acquire_for_server(folder: Path, *, wait: float = 30.0) -> DataLock:
    """The lock for a server: refused at once when another server holds it; an in-process
    command holding it is waited for (up to ``wait`` seconds), as it soon finishes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    told = False
    while True:
        try:
            return DataLock.try_acquire(folder, SERVER)
        except DataFolderBusy as busy:
            if (busy.holder is not None and busy.holder.role == SERVER) or loop.time() >= deadline:
                raise
            if not told and busy.holder is not None:
                log.info("waiting for %s to finish with data folder %s", busy.holder, folder)
                told = True
        await asyncio.sleep(0.05)


def _read_holder(fd: int) -> Holder | None:
    """Who holds the lock, if the file says so and that process lives; None when unknown: the
    holder has not written yet, or the file is a dead holder's (the lock is then held by a
    process that only looks, such as ``check-config``, or one that has just taken it)."""
    try:
        pid, role = os.pread(fd, 64, 0).decode().split()
        holder = Holder(int(pid), role)
    except (OSError, ValueError):
        return None
    if holder.pid <= 0:
        return None
    try:
        os.kill(holder.pid, 0)
    except PermissionError:
        pass  # alive, another user's
    except OSError:
        return None
    return holder


def _same_owner_as_folder(fd: int, folder: Path) -> None:
    """root running a command on a server's folder must not leave a lock file the server's
    own user cannot open."""
    if os.geteuid() != 0:
        return
    owner = folder.stat()
    if os.fstat(fd).st_uid != owner.st_uid:
        os.fchown(fd, owner.st_uid, owner.st_gid)
