"""Sequence stores (one zarr v3 group per video) and the dataset manifest.

A store ``<dataset>/<name>.zarr`` holds, chunked along time (sharded, zstd):

============== ======================== ===============================================
array          shape, dtype             meaning
============== ======================== ===============================================
frames         (N, H, W, 3) uint8       face crops, RGB
uv             (N, H, W, 2) float16     texture coordinates in [0, 1], -1 = background
mask           (N, H, W) uint8          0 background, 1 face, 2 mouth (lips + interior)
landmarks      (N, 468, 3) float32      MediaPipe landmarks, crop pixels (z in x units)
face_flag      (N,) uint8               0 detected, 1 interpolated, 2 missing
crop           (N, 3) float32           crop square in the source frame: x0, y0, side (px)
pose           (N, 7) float32           s (px/mm), axis-angle (rad), t (px); see tracking.fit
identity       (468, 3) float32         the sequence's neutral shape, model mm
expression     (N, K) float32           expression coefficients in the face model's basis
audio_features (N, W, D) float16        per-frame audio feature windows
audio          (S,) int16               the audio track, 16 kHz mono
============== ======================== ===============================================

Attributes: ``complete`` (True only once every array is written), ``fps``,
``size``, ``n_frames``, ``sample_rate``, ``source`` (path, sha256, size,
original fps and resolution), ``face_model`` (name, hash, K), ``features``
(extractor signature), ``input_key`` (hash of source + settings: a rerun with
the same key skips the store), ``splits``, ``nvp_version``.

Atomicity: a store is built under a hidden temporary name and renamed into
place only when complete; array replacement (``nvp build-face-model``) writes
the new array beside the old one and swaps directories, updating the
``face_model`` attribute last. A store whose ``complete`` attribute is not true
is never opened as finished.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from nvp import __version__
from nvp.config import atomic_write_text
from nvp.errors import InputError
from nvp.io.lock import writer_lock

STORE_SUFFIX = ".zarr"
MANIFEST = "dataset.json"
FACE_MODEL_FILE = "face_model.npz"


def _compressor(clevel: int) -> BloscCodec:
    return BloscCodec(cname="zstd", clevel=clevel, shuffle="bitshuffle")


#: Arrays every finished store holds, and the number of dimensions of each.
ARRAYS = {
    "frames": 4,
    "uv": 4,
    "mask": 3,
    "landmarks": 3,
    "face_flag": 1,
    "crop": 2,
    "pose": 2,
    "identity": 2,
    "expression": 2,
    "audio_features": 3,
    "audio": 1,
}


def store_problems(group: zarr.Group) -> list[str]:
    """What makes a store's arrays disagree with each other or with its recorded settings
    (an empty list for a consistent store). Reads array metadata only (no chunks).

    Checked: every array of :data:`ARRAYS` exists with its rank; every per-frame array has
    ``n_frames`` rows; ``frames`` / ``uv`` / ``mask`` are ``size`` x ``size`` (= the recorded
    ``crop.size``) with 3 / 2 channels; ``expression`` has the face model's K columns;
    ``audio_features`` has the recorded window and dimension; the audio is not empty.
    """
    attrs = dict(group.attrs)
    found = set(group.array_keys())
    problems = [f"array {k!r} is missing" for k in ARRAYS if k not in found]
    shapes = {k: tuple(group[k].shape) for k in ARRAYS if k in found}
    for k, shape in shapes.items():
        if len(shape) != ARRAYS[k]:
            problems.append(f"{k} has shape {shape}, expected {ARRAYS[k]} dimensions")
    if problems:
        return problems
    n, size = attrs.get("n_frames"), attrs.get("size")
    if not isinstance(n, int) or not isinstance(size, int):
        return ["the n_frames / size attributes are missing"]
    for k in ("frames", "uv", "mask", "landmarks", "face_flag", "crop", "pose", "expression"):
        if shapes[k][0] != n:
            problems.append(f"{k} has {shapes[k][0]} frames, the store {n}")
    if shapes["audio_features"][0] != n:
        problems.append(f"audio_features has {shapes['audio_features'][0]} frames, the store {n}")
    for k, channels in (("frames", (3,)), ("uv", (2,)), ("mask", ())):
        want = (size, size, *channels)
        if shapes[k][1:] != want:
            problems.append(f"{k} is {shapes[k][1:]} per frame, expected {want} (size {size})")
    crop = (attrs.get("crop") or {}).get("size")
    if crop is not None and crop != size:
        problems.append(f"the recorded crop.size {crop} is not the store size {size}")
    k_fm = (attrs.get("face_model") or {}).get("n_components")
    if k_fm is not None and shapes["expression"][1] != k_fm:
        problems.append(
            f"expression has {shapes['expression'][1]} coefficients, the face model {k_fm}"
        )
    feats = attrs.get("features") or {}
    for axis, key in ((1, "window"), (2, "dim")):
        want = feats.get(key)
        if isinstance(want, int) and shapes["audio_features"][axis] != want:
            problems.append(
                f"audio_features has {key} {shapes['audio_features'][axis]}, the recorded "
                f"features {want}"
            )
    if shapes["audio"][0] == 0:
        problems.append("the audio track is empty")
    return problems


class SequenceStore:
    """Read access to one finished sequence store (random access by frame index).

    Arrays are opened lazily; ``store["frames"][i]`` reads one frame (one chunk),
    so memory stays bounded however long the sequence is.
    """

    def __init__(self, path: str | Path, *, mode: str = "r", require_complete: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError("sequence store not found", path=self.path)
        try:
            self.group = zarr.open_group(str(self.path), mode=mode, zarr_format=3)
        except Exception as exc:
            raise InputError(
                f"not a readable zarr v3 sequence store ({exc})", path=self.path
            ) from exc
        if require_complete and not self.group.attrs.get("complete", False):
            raise InputError(
                "store is incomplete (an interrupted or failed preprocessing run); "
                "rerun `nvp preprocess` to rebuild it",
                path=self.path,
            )
        if require_complete and (problems := store_problems(self.group)):
            raise InputError(
                f"store is inconsistent ({'; '.join(problems[:3])}); rerun `nvp preprocess` "
                "to rebuild it",
                path=self.path,
            )

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(STORE_SUFFIX)

    @property
    def n_frames(self) -> int:
        return int(self.group.attrs["n_frames"])

    @property
    def fps(self) -> float:
        return float(self.group.attrs["fps"])

    @property
    def size(self) -> int:
        return int(self.group.attrs["size"])

    def __getitem__(self, key: str) -> zarr.Array:
        try:
            return self.group[key]
        except KeyError:
            raise KeyError(f"{self.path}: no array {key!r} (has {sorted(self.keys())})") from None

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def keys(self) -> list[str]:
        return sorted(self.group.array_keys())

    def split_range(self, split: str) -> tuple[int, int]:
        """Frame range [start, stop) of ``train``, ``val`` or ``test``."""
        splits = self.group.attrs.get("splits", {})
        if split not in splits:
            raise KeyError(f"{self.path}: no split {split!r} (has {sorted(splits)})")
        a, b = splits[split]
        return int(a), int(b)


#: The arrays each resumable preprocessing stage writes.
STAGE_ARRAYS = {"track": ("landmarks", "face_flag", "crop"), "frames": ("frames",)}


class StoreWriter:
    """Builds a sequence store under a temporary name; :meth:`finalize` renames it into place.

    The caller holds the store's writer lock (:func:`store_lock`) for the writer's lifetime.

    Args:
        final_path: ``<dataset>/<name>.zarr``.
        input_key: hash of the inputs and settings. An existing temporary store with the
            same key is reused (its finished stages are kept, see :meth:`stage_done`); one
            with another key is deleted.
        clevel, chunk_frames, shard_frames: storage layout (see ``StoreConfig``).
    """

    def __init__(
        self,
        final_path: str | Path,
        *,
        input_key: str,
        clevel: int = 3,
        chunk_frames: int = 1,
        shard_frames: int = 64,
    ) -> None:
        self.final_path = Path(final_path)
        self.tmp_path = self.final_path.with_name(f".{self.final_path.name}.partial")
        self.clevel = clevel
        self.chunk_frames = chunk_frames
        self.shard_frames = shard_frames
        self.input_key = input_key
        for stale in self.final_path.parent.glob(f".{self.final_path.name}.old-*"):
            shutil.rmtree(stale, ignore_errors=True)  # a replaced store an earlier run left
        if self.tmp_path.exists():
            try:
                g = zarr.open_group(str(self.tmp_path), mode="r", zarr_format=3)
                same = g.attrs.get("input_key") == input_key
            except Exception:
                same = False
            if not same:
                shutil.rmtree(self.tmp_path)
        self.group = zarr.open_group(str(self.tmp_path), mode="a", zarr_format=3)
        self.group.attrs.update({"complete": False, "input_key": input_key})

    def stage_done(self, stage: str) -> bool:
        """Whether a resumable stage was completed by an earlier, interrupted run (marked done
        and its arrays present)."""
        if stage not in self.group.attrs.get("stages", []):
            return False
        have = set(self.group.array_keys())
        return all(k in have for k in STAGE_ARRAYS.get(stage, ()))

    def mark_stage(self, stage: str) -> None:
        stages = list(self.group.attrs.get("stages", []))
        if stage not in stages:
            stages.append(stage)
        self.group.attrs["stages"] = stages

    def create(self, name: str, shape: tuple[int, ...], dtype: Any, *, time_chunked: bool = True):
        """Create (or overwrite) an array chunked along its first axis."""
        return create_array(
            self.group,
            name,
            shape,
            dtype,
            clevel=self.clevel,
            chunk_frames=self.chunk_frames if time_chunked else None,
            shard_frames=self.shard_frames,
        )

    def write(self, name: str, data: np.ndarray, *, time_chunked: bool = True) -> None:
        arr = self.create(name, data.shape, data.dtype, time_chunked=time_chunked)
        arr[...] = data

    def set_attrs(self, **attrs: Any) -> None:
        self.group.attrs.update(attrs)

    def finalize(self) -> Path:
        """Check that the arrays agree (:func:`store_problems`), mark complete and move into
        place (replacing an older finished store).

        Raises:
            RuntimeError: the arrays disagree (a bug: the temporary store is kept for
                inspection and rebuilt by the next run).
        """
        if problems := store_problems(self.group):
            raise RuntimeError(f"{self.tmp_path}: not marked complete: {'; '.join(problems)}")
        self.group.attrs.update({"complete": True, "nvp_version": __version__})
        self.group.attrs.pop("stages", None)
        old = None
        if self.final_path.exists():
            old = self.final_path.with_name(f".{self.final_path.name}.old-{os.getpid()}")
            os.replace(self.final_path, old)
        os.replace(self.tmp_path, self.final_path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final_path

    def discard(self) -> None:
        """Remove the temporary store (after a failure that a rerun cannot resume)."""
        shutil.rmtree(self.tmp_path, ignore_errors=True)


def create_array(
    group: zarr.Group,
    name: str,
    shape: tuple[int, ...],
    dtype: Any,
    *,
    clevel: int = 3,
    chunk_frames: int | None = 1,
    shard_frames: int = 64,
) -> zarr.Array:
    """Create an array chunked along time (``chunk_frames`` per chunk, ``shard_frames`` per
    shard file) or, with ``chunk_frames=None``, as a single chunk."""
    shape = tuple(int(s) for s in shape)
    if chunk_frames is None or len(shape) == 0 or shape[0] == 0:
        chunks = tuple(max(1, s) for s in shape) or None
        return group.create_array(
            name,
            shape=shape,
            dtype=dtype,
            chunks=chunks,
            compressors=_compressor(clevel),
            overwrite=True,
        )
    per_frame = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if per_frame < 4096:  # small per-frame records (landmarks, pose): larger chunks
        chunk_frames = max(chunk_frames, 256)
    chunk_frames = min(chunk_frames, shape[0])
    shard = max(chunk_frames, (min(shard_frames, shape[0]) // chunk_frames) * chunk_frames)
    if per_frame < 4096:
        shard = chunk_frames
    return group.create_array(
        name,
        shape=shape,
        dtype=dtype,
        chunks=(chunk_frames, *shape[1:]),
        shards=(shard, *shape[1:]) if shard != chunk_frames else None,
        compressors=_compressor(clevel),
        overwrite=True,
    )


def swap_in(store_path: str | Path, staged: dict[str, str], attrs: dict[str, Any]) -> None:
    """Replace arrays of a finished store by staged ones, then update its attributes.

    ``staged`` maps an array name to the name of a fully written replacement in the
    same group. Each swap is two directory renames; the attributes (e.g. the
    face-model hash) are written last, so an interrupted job leaves a store whose
    attributes still name the old model and is redone when rerun.
    """
    path = Path(store_path)
    for name, tmp in staged.items():
        old = path / f"_old_{name}"
        if (path / name).exists():
            os.replace(path / name, old)
        os.replace(path / tmp, path / name)
        shutil.rmtree(old, ignore_errors=True)
    group = zarr.open_group(str(path), mode="a", zarr_format=3)
    group.attrs.update(attrs)


def find_stores(dataset: str | Path, *, complete_only: bool = True) -> list[Path]:
    """Finished stores of a dataset folder (sorted by name)."""
    out = []
    for p in sorted(Path(dataset).glob(f"*{STORE_SUFFIX}")):
        if p.name.startswith("."):
            continue
        if complete_only:
            try:
                g = zarr.open_group(str(p), mode="r", zarr_format=3)
            except Exception:
                continue
            if not g.attrs.get("complete", False):
                continue
        out.append(p)
    return out


def time_splits(n_frames: int, train: float, val: float, test: float) -> dict[str, list[int]]:
    """Contiguous frame ranges ``{"train": [0, a], "val": [a, b], "test": [b, n]}``.

    Fractions are normalised to sum to 1; every non-zero fraction gets at least one frame
    when the sequence is long enough.
    """
    fr = np.array([train, val, test], np.float64)
    if (fr < 0).any() or fr.sum() <= 0:
        raise ValueError(f"split fractions must be >= 0 and not all 0, got {fr.tolist()}")
    fr = fr / fr.sum()
    a = round(n_frames * fr[0])
    b = round(n_frames * (fr[0] + fr[1]))
    if fr[2] > 0 and b >= n_frames and n_frames >= 3:
        b = n_frames - 1
    if fr[1] > 0 and a >= b and n_frames >= 3:
        a = b - 1
    return {"train": [0, int(a)], "val": [int(a), int(b)], "test": [int(b), int(n_frames)]}


def store_lock(path: str | Path, timeout: float = -1):
    """The writer lock of a sequence store (see :func:`nvp.io.lock.writer_lock`)."""
    return writer_lock(path, what="sequence store", timeout=timeout)


def write_manifest(dataset: str | Path) -> Path:
    """(Re)write ``dataset.json`` from the finished stores of a dataset folder (atomically,
    under the manifest's writer lock)."""
    dataset = Path(dataset)
    with writer_lock(dataset / MANIFEST, what="dataset manifest"):
        return _write_manifest(dataset)


def _write_manifest(dataset: Path) -> Path:
    seqs = []
    for p in find_stores(dataset):
        s = SequenceStore(p)
        a = s.attrs
        seqs.append(
            {
                "name": s.name,
                "store": p.name,
                "frames": s.n_frames,
                "fps": s.fps,
                "size": s.size,
                "source": a.get("source", {}).get("path"),
                "face_model_hash": a.get("face_model", {}).get("hash"),
                "features": a.get("features", {}).get("name"),
                "splits": a.get("splits", {}),
            }
        )
    fm = dataset / FACE_MODEL_FILE
    manifest = {
        "format": "nvp-dataset",
        "version": 1,
        "nvp_version": __version__,
        "face_model": FACE_MODEL_FILE if fm.exists() else None,
        "sequences": seqs,
    }
    return atomic_write_text(dataset / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def read_manifest(dataset: str | Path) -> dict:
    path = Path(dataset) / MANIFEST
    if not path.is_file():
        raise InputError(
            "no dataset.json: not an nvp dataset folder (run `nvp preprocess` first)",
            path=Path(dataset),
        )
    return json.loads(path.read_text())


def iter_stores(dataset: str | Path) -> Iterator[SequenceStore]:
    for p in find_stores(dataset):
        yield SequenceStore(p)
