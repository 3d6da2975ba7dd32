"""Writer locks: one process at a time writes a sequence store, a dataset's shared files or a
training run's folder.

Built on the ``filelock`` package (an OS-level ``fcntl`` / ``msvcrt`` lock on a hidden
``.<name>.lock`` file beside the locked path). The operating system releases the lock when
its holder exits, however it exits (SIGKILL included), so a crashed run never leaves a stale
lock behind. Beside the lock file the holder writes ``.<name>.lock.json`` (process id, host,
command line, start time) so that a second writer can say who it waits for.

A second writer either waits (``timeout`` < 0, the default of the commands: parallel jobs
serialise on one store) or stops after ``timeout`` seconds with an :class:`InputError`
naming the holder.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from nvp.errors import InputError

log = logging.getLogger(__name__)


def lock_path(path: str | Path) -> Path:
    """The lock file of ``path``: ``.<name>.lock`` in the same folder."""
    p = Path(path)
    return p.with_name(f".{p.name}.lock")


def holder_path(path: str | Path) -> Path:
    """The holder record of ``path``'s lock: ``.<name>.lock.json``."""
    p = Path(path)
    return p.with_name(f".{p.name}.lock.json")


def describe_holder(path: str | Path) -> str:
    """Who holds ``path``'s lock, from its holder record (``"an unknown process"`` without)."""
    try:
        h = json.loads(holder_path(path).read_text())
    except (OSError, ValueError):
        return "an unknown process"
    cmd = h.get("command") or "?"
    if len(cmd) > 160:
        cmd = cmd[:157] + "..."
    return f"process {h.get('pid')} on {h.get('host')} since {h.get('started')} ({cmd})"


@contextmanager
def writer_lock(path: str | Path, *, what: str, timeout: float = -1) -> Iterator[None]:
    """Hold the exclusive writer lock of ``path`` for the block.

    Args:
        path: the store, dataset file or folder to be written (it need not exist; its parent
            folder must).
        what: what ``path`` is, for the messages (``"sequence store"``).
        timeout: seconds to wait for another holder; < 0 waits as long as it takes (saying
            so once), 0 stops at once.

    Raises:
        InputError: the lock is still held by another process after ``timeout`` seconds
            (the message names the holder), or the folder does not allow a lock file.
    """
    p = Path(path)
    lock = FileLock(str(lock_path(p)))
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = describe_holder(p)
            if timeout == 0:
                raise InputError(
                    f"another nvp process is writing this {what}: {holder}; wait for it to "
                    "finish, or stop it",
                    path=p,
                ) from None
            log.warning("%s: waiting for %s, which is writing this %s", p, holder, what)
            try:
                lock.acquire(timeout=timeout)
            except Timeout:
                raise InputError(
                    f"this {what} is still being written by {holder} after {timeout:g} s",
                    path=p,
                ) from None
    except PermissionError as exc:
        raise InputError(
            f"cannot create the lock file {lock_path(p).name} (permission denied): the folder "
            "is not writable",
            path=p.parent,
        ) from exc
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": " ".join(sys.argv),
    }
    try:
        holder_path(p).write_text(json.dumps(record))
        yield
    finally:
        holder_path(p).unlink(missing_ok=True)
        lock.release()
