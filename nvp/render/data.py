"""Training frames of one target store for the neural renderer.

Each item reads one frame from the store (one chunk per array), so memory does not
grow with the video length. Splits are the store's time-based ranges. Training frames
are shuffled by :class:`EpochPermutation`; under DDP every rank takes its share of the same
permutation (:class:`nvp.data.sampling.StridedShard`), so W processes with batch b see the
frames one process with batch W x b sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from nvp.data.sampling import EpochSeeded, shard_for
from nvp.data.store import SequenceStore
from nvp.errors import InputError
from nvp.render.config import RenderDataConfig
from nvp.tracking.landmarks import FACE_MISSING


class ItemKey(NamedTuple):
    """A training item as :class:`EpochPermutation` yields it: the item, and where it stands
    in the global list of its epoch (which fixes its random crop)."""

    index: int
    epoch: int
    position: int


class RendererFrames(Dataset):
    """Frames of a split of one store.

    Items are dicts: ``image`` (3, H, W) float32 in [-1, 1], ``uv`` (H, W, 2) float32
    (-1 on background), ``face`` (1, H, W) float32 face mask, ``mouth`` (1, H, W) float32,
    ``expression`` (K,) float32 tracked coefficients, ``frame`` int64, ``crop_xy`` (2,) int64
    (the crop's top-left corner, 0 without crops). With ``crop`` > 0 every image array is cut
    at the same random square.

    Items are read by index or by :class:`ItemKey`. For a key, the crop is drawn from
    ``(seed, epoch, position)``: the same on a rerun and after resuming, independent of the
    data-loader workers, and, under DDP (where each rank reads other positions of the same
    global list), different on every rank, equal to the crops of one process with the whole
    batch. For a plain index, from the dataset's own generator (a fresh crop per read).

    Args:
        store: path of a finished sequence store.
        frames: frame indices of the items.
        crop: side of random crops (0 = full frames).
        seed: seed of the crop positions.
    """

    def __init__(self, store: str | Path, frames: np.ndarray, crop: int = 0, seed: int = 0):
        self.path = Path(store)
        self.frames = np.asarray(frames, dtype=np.int64)
        self.crop = crop
        self._store: SequenceStore | None = None
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    @property
    def store(self) -> SequenceStore:
        if self._store is None:  # opened lazily: once per worker process
            self._store = SequenceStore(self.path)
        return self._store

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, key: int | ItemKey | tuple[int, int, int]) -> dict[str, torch.Tensor]:
        if isinstance(key, tuple):
            i, epoch, position = (int(v) for v in key)
            rng = np.random.default_rng([self.seed, epoch, position])
        else:
            i, rng = int(key), self._rng
        t = int(self.frames[i])
        s = self.store
        img = np.asarray(s["frames"][t])
        uv = np.asarray(s["uv"][t]).astype(np.float32)
        mask = np.asarray(s["mask"][t])
        y = x = 0
        if self.crop:
            h, w = mask.shape
            c = min(self.crop, h, w)
            y = int(rng.integers(0, h - c + 1))
            x = int(rng.integers(0, w - c + 1))
            img, uv, mask = (
                img[y : y + c, x : x + c],
                uv[y : y + c, x : x + c],
                mask[y : y + c, x : x + c],
            )
        image = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 127.5 - 1
        return {
            "image": image,
            "uv": torch.from_numpy(np.ascontiguousarray(uv)),
            "face": torch.from_numpy((mask > 0).astype(np.float32))[None],
            "mouth": torch.from_numpy((mask == 2).astype(np.float32))[None],
            "expression": torch.from_numpy(np.asarray(s["expression"][t], np.float32)),
            "frame": torch.tensor(t, dtype=torch.int64),
            "crop_xy": torch.tensor([x, y], dtype=torch.int64),
        }


class EpochPermutation(EpochSeeded):
    """A fresh random permutation of ``n`` items per epoch, drawn from ``seed + epoch``; with
    ``keys`` the items come as :class:`ItemKey` (index, epoch, position in the epoch's list).

    A sampler of its own rather than ``shuffle=True``: under DDP every rank takes the items
    r, r + W, r + 2W, ... of the same permutation (:class:`nvp.data.sampling.StridedShard`),
    so a step of W processes with b items each covers the items one process with W x b items
    covers (Lightning would replace a shuffling DataLoader's sampler by a
    ``DistributedSampler`` with its own order). Drawing from the epoch also makes a resumed run
    see the epochs' orders it would have seen without the interruption.
    """

    def __init__(self, n: int, seed: int = 0, *, keys: bool = False) -> None:
        super().__init__(seed)
        self.n = int(n)
        self.keys = keys

    def draw(self, generator: torch.Generator) -> list:
        perm = torch.randperm(self.n, generator=generator).tolist()
        if not self.keys:
            return perm
        return [ItemKey(i, self.drawn_epoch, pos) for pos, i in enumerate(perm)]

    def __len__(self) -> int:
        return self.n


def split_frames(store: SequenceStore, split: str) -> np.ndarray:
    """Frames of ``split`` that have a face (detected or interpolated)."""
    a, b = store.split_range(split)
    flags = np.asarray(store["face_flag"][a:b])
    return np.arange(a, b)[flags != FACE_MISSING]


class RendererDataModule(pl.LightningDataModule):
    """Train / validation frames of one target store.

    Raises:
        InputError: the store has no frames in the training split, or a crop larger than the
            frames.
    """

    def __init__(self, store: str | Path, cfg: RenderDataConfig, seed: int = 0) -> None:
        super().__init__()
        self.store_path = Path(store)
        self.cfg = cfg
        self.seed = seed
        st = SequenceStore(self.store_path)
        self.size = st.size
        self.train_frames = split_frames(st, cfg.train_split)
        val = split_frames(st, cfg.val_split)
        if len(val) > cfg.max_val_frames:
            val = val[np.linspace(0, len(val) - 1, cfg.max_val_frames).round().astype(int)]
        self.val_frames = val
        if len(self.train_frames) == 0:
            raise InputError(f"no frames in split {cfg.train_split!r}", path=self.store_path)
        if cfg.crop > self.size:
            raise InputError(
                f"data.crop={cfg.crop} exceeds the frame size {self.size}", path=self.store_path
            )

    def setup(self, stage: str | None = None) -> None:
        self.train_set = RendererFrames(
            self.store_path, self.train_frames, self.cfg.crop, self.seed
        )
        self.val_set = RendererFrames(self.store_path, self.val_frames, 0, self.seed)

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.batch_size,
            sampler=shard_for(
                EpochPermutation(len(self.train_set), self.seed, keys=True), self.trainer
            ),
            num_workers=self.cfg.num_workers,
            generator=g,
            persistent_workers=self.cfg.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set,
            batch_size=self.cfg.batch_size,
            shuffle=False,
            num_workers=self.cfg.num_workers,
        )
