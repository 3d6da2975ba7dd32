"""File content hashes (input keys of stores, weight-file identities)."""

from __future__ import annotations

import hashlib
from pathlib import Path

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
