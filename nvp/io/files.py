"""File content hashes (input keys of stores, weight-file identities) and up-front checks of
output paths."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path, n_hex: int = 16) -> str:
    """Hex prefix of a file's SHA-256, cached per (path, size, mtime) within the process."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key][:n_hex]


def read_state_dict(path: str | Path, expected: str) -> Mapping[str, Any]:
    """``torch.load`` a weight file that must hold a state dict (a mapping of tensors).

    Args:
        path: an existing file (callers report a missing one in their own terms).
        expected: what the file should be, for the messages (e.g. "torchvision's
            vgg19-dcbb9e9d.pth").

    Raises:
        InputError: the file cannot be unpickled safely (a truncated download, an HTML
            error page, a pickled module) or holds something else than a mapping.
    """
    import torch

    from nvp.errors import InputError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputError(
            f"cannot read the weights ({type(exc).__name__}: {first}); expected {expected}",
            path=path,
        ) from exc
    if not isinstance(state, Mapping):
        raise InputError(
            f"not a state dict (got {type(state).__name__}); expected {expected}", path=path
        )
    return state


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Make sure ``path`` is a folder this process can write into, creating it (and its
    parents) when absent; returns it.

    Raises:
        InputError: ``path`` (or a parent) is a regular file, or the folder cannot be created
            or written (permissions, read-only file system); the message says what to do.
    """
    from nvp.errors import InputError

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"is a file, not a folder: choose another {what}", path=p)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:  # a parent is a file
        raise InputError(f"cannot create the {what}: a parent is a file", path=p) from exc
    except OSError as exc:
        raise InputError(
            f"cannot create the {what} ({exc.strerror or exc}): choose another path or fix "
            "its permissions",
            path=p,
        ) from exc
    try:
        with tempfile.NamedTemporaryFile(dir=p, prefix=".nvp-write-test-"):
            pass
    except OSError as exc:
        raise InputError(
            f"the {what} is not writable ({exc.strerror or exc}): choose another path or fix "
            "its permissions",
            path=p,
        ) from exc
    return p


def check_output_file(
    path: str | Path, suffixes: dict[str, str], what: str = "output file"
) -> Path:
    """Check an output file's path before any work: a known suffix (the format comes from
    it), not a folder, and a writable parent folder (created when absent); returns it.

    Args:
        path: the file to be written.
        suffixes: the accepted suffixes (lower case, with the dot) and what each writes.

    Raises:
        InputError: an unknown or missing suffix (the accepted ones are listed), a folder
            at ``path``, or a parent folder that cannot be written.
    """
    from nvp.errors import InputError

    p = Path(path)
    if p.suffix.lower() not in suffixes:
        known = ", ".join(f"{k} ({v})" for k, v in suffixes.items())
        got = f"{p.suffix!r}" if p.suffix else "no suffix"
        raise InputError(
            f"cannot tell the output format from {got}; end the name with one of {known}",
            path=p,
        )
    if p.is_dir():
        raise InputError(f"is a folder: give a file name for the {what}", path=p)
    check_output_dir(p.parent if str(p.parent) else Path("."), f"folder of the {what}")
    return p


def state_dict_problems(
    state: Mapping[str, Any],
    expected: Mapping[str, tuple[int, ...]],
    *,
    optional: Callable[[str], bool] = lambda key: False,
    strict: bool = False,
) -> list[str]:
    """What makes ``state`` not the state dict whose keys and shapes are ``expected``: keys
    missing or not tensors, shapes that differ and, with ``strict``, keys not expected.
    ``optional`` keys may be absent. The messages of weight loaders are built from these
    (the first few, and how many more)."""
    from torch import Tensor

    problems = []
    for key, shape in expected.items():
        value = state.get(key)
        if value is None and optional(key):
            continue
        if not isinstance(value, Tensor):
            problems.append(f"{key} missing")
        elif tuple(value.shape) != tuple(shape):
            problems.append(f"{key} has shape {tuple(value.shape)}, expected {tuple(shape)}")
    if strict:
        problems += [f"unexpected key {key}" for key in state if key not in expected]
    return problems


def summarize_problems(problems: list[str], most: int = 4) -> str:
    """The first ``most`` problems joined by ``; ``, and how many more there are."""
    more = f" (and {len(problems) - most} more)" if len(problems) > most else ""
    return "; ".join(problems[:most]) + more
