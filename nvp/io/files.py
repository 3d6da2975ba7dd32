"""File content hashes (input keys of stores, weight-file identities)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
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
