"""Training samples for the Audio2Expression stage, drawn from a dataset of sequence stores.

A sample is centred on a frame t of one sequence and holds what the loss needs
for frames t-1, t and t+1: the audio feature windows of the T + 2 frames
``t-1-c … t+1-c+T-1`` (c = ``current_slot``; the temporal-filter windows of the
three frames overlap in T frames), clamped at the sequence ends like the
authors' datasets, and the tracked expressions of t-1, t, t+1. t is drawn so
that t-1 and t+1 lie in the same split of the same sequence and have a face:
temporal pairs never cross a sequence boundary.

Sampling picks a sequence (``sequence_weight``: uniform over sequences as the release, or
in proportion to their frames or its square root), then a frame uniformly, re-drawn every
epoch from ``seed + epoch``.
Under DDP every rank draws the same epoch list and takes its share r, r + W, ...
(:class:`nvp.data.sampling.StridedShard`): W processes with batch b train on the
samples one process with batch W x b trains on; ``samples_per_epoch`` is global.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from nvp.a2e.config import A2EDataConfig
from nvp.data.sampling import EpochSeeded, shard_for
from nvp.data.store import FACE_MODEL_FILE, SequenceStore, find_stores
from nvp.errors import InputError
from nvp.nets.audio2expression import A2ENetConfig
from nvp.tracking.face_model import FaceModel
from nvp.tracking.landmarks import FACE_MISSING

log = logging.getLogger(__name__)


def feature_groups(names: list[str], signatures: list[dict | None], most: int = 4) -> str:
    """Stores grouped by audio-feature signature, for messages, e.g. ``whisper (window 16, dim
    384): a, b; mel (window 16, dim 80): c``. Groups that agree on name, window and dimension
    but differ in other settings are told apart by a short hash of their signature."""
    groups: dict[str, tuple[dict, list[str]]] = {}
    for name, sig in zip(names, signatures):
        key = json.dumps(sig, sort_keys=True, default=str)
        groups.setdefault(key, (sig or {}, []))[1].append(name)

    def label(sig: dict) -> str:
        return f"{sig.get('name', '?')} (window {sig.get('window')}, dim {sig.get('dim')}"

    labels = [label(sig) for sig, _ in groups.values()]
    parts = []
    for (key, (_, members)), lab in zip(groups.items(), labels):
        if labels.count(lab) > 1:
            lab += f", settings {hashlib.sha256(key.encode()).hexdigest()[:8]}"
        more = f" and {len(members) - most} more" if len(members) > most else ""
        parts.append(f"{lab}): {', '.join(members[:most])}{more}")
    return "; ".join(parts)


@dataclass
class Sequence:
    """One store's arrays needed for A2E training."""

    name: str
    path: Path
    features: np.ndarray | None
    """(N, W, D) float16 in RAM, or None when read from the store per sample."""
    expression: np.ndarray
    """(N, K) float32."""
    valid: np.ndarray
    """(N,) bool: a face was detected or interpolated."""
    splits: dict[str, list[int]]
    n_frames: int
    _array: object = None

    def windows(self, frames: np.ndarray) -> np.ndarray:
        """Feature windows of the given frame indices: (len, W, D) float32."""
        if self.features is not None:
            return self.features[frames].astype(np.float32)
        if self._array is None:  # opened once per sequence (and worker process)
            self._array = SequenceStore(self.path)["audio_features"]
        arr = self._array
        lo, hi = int(frames.min()), int(frames.max()) + 1
        block = np.asarray(arr[lo:hi])
        return block[frames - lo].astype(np.float32)


def sample_frames(seq: Sequence, split: str) -> np.ndarray:
    """Frames t of a split whose t-1, t, t+1 lie in the split and have a face: (n,) int64."""
    a, b = seq.splits[split]
    t = np.arange(a + 1, b - 1)
    ok = seq.valid[t - 1] & seq.valid[t] & seq.valid[t + 1]
    return t[ok]


class A2EWindows(Dataset):
    """(sequence, frame) samples of one split; see the module docstring.

    Each item is a dict: ``windows`` (T+2, W, D) float32, ``expression`` (3, K) float32,
    ``sequence`` int64 (index into the datamodule's sequences), ``frame`` int64 (t).
    """

    def __init__(self, seqs: list[Sequence], split: str, seq_len: int, current_slot: int):
        self.seqs = seqs
        self.seq_len = seq_len
        self.current_slot = current_slot
        items = [(i, t) for i, s in enumerate(seqs) for t in sample_frames(s, split)]
        self.items = np.array(items, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        si, t = (int(x) for x in self.items[i])
        s = self.seqs[si]
        frames = np.clip(t - 1 - self.current_slot + np.arange(self.seq_len + 2), 0, s.n_frames - 1)
        return {
            "windows": torch.from_numpy(s.windows(frames)),
            "expression": torch.from_numpy(s.expression[t - 1 : t + 2].copy()),
            "sequence": torch.tensor(si, dtype=torch.int64),
            "frame": torch.tensor(t, dtype=torch.int64),
        }


#: Exponent of a sequence's item count in its share of an epoch, per ``sequence_weight``.
SEQUENCE_WEIGHT_POWER = {"uniform": 0.0, "sqrt": 0.5, "frames": 1.0}


class BalancedSampler(EpochSeeded):
    """Draws ``num_samples`` items per epoch: a sequence with share p_s, then uniform over its
    frames.

    Args:
        sequence_of_item: (n_items,) sequence index of each dataset item.
        num_samples: items per epoch.
        seed: base seed; epoch e uses ``seed + e`` (call :meth:`set_epoch`).
        weighting: the share p_s of a sequence with n_s items: ``uniform`` (1, every sequence
            alike), ``sqrt`` (sqrt(n_s)) or ``frames`` (n_s: every item alike).
    """

    def __init__(
        self,
        sequence_of_item: np.ndarray,
        num_samples: int,
        seed: int = 0,
        weighting: str = "uniform",
    ) -> None:
        super().__init__(seed)
        if weighting not in SEQUENCE_WEIGHT_POWER:
            raise ValueError(
                f"weighting must be one of {sorted(SEQUENCE_WEIGHT_POWER)}, got {weighting!r}"
            )
        counts = np.bincount(sequence_of_item).astype(np.float64)
        w = counts[sequence_of_item] ** (SEQUENCE_WEIGHT_POWER[weighting] - 1.0)
        self.weights = torch.as_tensor(w / w.sum(), dtype=torch.float64)
        self.num_samples = int(num_samples)

    def draw(self, generator: torch.Generator) -> list[int]:
        return torch.multinomial(self.weights, self.num_samples, True, generator=generator).tolist()

    def __len__(self) -> int:
        return self.num_samples


def _train_mean_expression(path: Path) -> np.ndarray:
    """Mean tracked expression (K,) float32 over the frames with a face of a store's training
    split (all its frames with a face when the split has none)."""
    st = SequenceStore(path)
    e = np.asarray(st["expression"][...], np.float32)
    ok = np.asarray(st["face_flag"][...]) != FACE_MISSING
    a, b = st.split_range("train")
    sel = np.zeros(len(e), bool)
    sel[a:b] = True
    sel &= ok
    if not sel.any():
        sel = ok if ok.any() else np.ones(len(e), bool)
    return e[sel].mean(0)


class A2EDataModule(pl.LightningDataModule):
    """The stores of a dataset folder as A2E training / validation samples.

    The constructor reads only metadata (names, face model, feature signature), so the
    LightningModule can be built from it; :meth:`setup` loads the arrays.

    Args:
        dataset: folder with ``dataset.json``, the stores and ``face_model.npz``.
        cfg: sampling settings.
        net: network settings (window length and slots).
        seed: sampling seed.

    Raises:
        InputError: no stores, no face model with a basis, stores fitted with another face
            model or with different audio features, or features that do not match ``net``.
    """

    def __init__(self, dataset: str | Path, cfg: A2EDataConfig, net: A2ENetConfig, seed: int = 0):
        super().__init__()
        self.dataset = Path(dataset)
        self.cfg = cfg
        self.net = net
        self.seed = seed
        paths = find_stores(self.dataset)
        names = [p.name.removesuffix(".zarr") for p in paths]
        unknown = sorted(set(cfg.sequences) - set(names)) + sorted(set(cfg.exclude) - set(names))
        if unknown:
            raise InputError(f"no stores named {unknown} (has {names})", path=self.dataset)
        keep = [
            (n, p)
            for n, p in zip(names, paths)
            if (not cfg.sequences or n in cfg.sequences) and n not in cfg.exclude
        ]
        if not keep:
            raise InputError("no finished sequence stores to train on", path=self.dataset)
        self.names = [n for n, _ in keep]
        self.paths = [p for _, p in keep]
        fm_path = self.dataset / FACE_MODEL_FILE
        if not fm_path.exists():
            raise InputError(
                "no face_model.npz: run `nvp build-face-model` on the dataset first",
                path=self.dataset,
            )
        self.face_model = FaceModel.load(fm_path)
        if self.face_model.n_components == 0:
            raise InputError("the face model has no expression basis", path=fm_path)
        sigs, hashes = [], []
        for p in self.paths:
            a = SequenceStore(p).attrs
            hashes.append(a.get("face_model", {}).get("hash"))
            sigs.append(a.get("features"))
        stale = [n for n, h in zip(self.names, hashes) if h != self.face_model.hash]
        if stale:
            raise InputError(
                f"stores {stale} were fitted with another face model than face_model.npz "
                f"({self.face_model.hash}); rerun `nvp build-face-model`",
                path=self.dataset,
            )
        if any(s != sigs[0] for s in sigs):
            raise InputError(
                f"the stores hold different audio features ({feature_groups(self.names, sigs)}); "
                "preprocess them with the same audio settings",
                path=self.dataset,
            )
        self.feature_signature = sigs[0]
        first = SequenceStore(self.paths[0])["audio_features"]
        _, w, d = first.shape
        if (w, d) != (net.window, net.feature_dim):
            raise InputError(
                f"the stores' feature windows are {w} x {d} but the network expects "
                f"{net.window} x {net.feature_dim} (set net.feature_dim={d} net.window={w})",
                path=self.dataset,
            )
        self.seqs: list[Sequence] = []
        self.identities = np.stack(
            [np.asarray(SequenceStore(p)["identity"][...]) for p in self.paths]
        )

    def mean_expressions(self) -> np.ndarray:
        """(n_sequences, K) mean tracked expression of each store's training frames (the
        per-sequence offsets of ``sequence_offset``)."""
        return np.stack([_train_mean_expression(p) for p in self.paths])

    @property
    def n_sequences(self) -> int:
        return len(self.paths)

    def setup(self, stage: str | None = None) -> None:
        if self.seqs:
            return
        total = 0
        stores = [SequenceStore(p) for p in self.paths]
        for s in stores:
            n, w, d = s["audio_features"].shape
            total += n * w * d * 2
        in_memory = total <= self.cfg.in_memory_mb * 2**20
        if not in_memory:
            log.info("features (%.0f MB) are read from the stores per sample", total / 2**20)
        for name, s in zip(self.names, stores):
            flags = np.asarray(s["face_flag"][...])
            self.seqs.append(
                Sequence(
                    name=name,
                    path=s.path,
                    features=np.asarray(s["audio_features"][...]) if in_memory else None,
                    expression=np.asarray(s["expression"][...], dtype=np.float32),
                    valid=flags != FACE_MISSING,
                    splits=s.attrs["splits"],
                    n_frames=s.n_frames,
                )
            )
        self.train_set = A2EWindows(self.seqs, "train", self.net.seq_len, self.net.current_slot)
        self.val_set = A2EWindows(self.seqs, "val", self.net.seq_len, self.net.current_slot)
        if len(self.train_set) == 0:
            raise InputError("no training frames (sequences too short?)", path=self.dataset)

    def train_dataloader(self) -> DataLoader:
        n = self.cfg.samples_per_epoch or len(self.train_set)
        sampler = BalancedSampler(
            self.train_set.items[:, 0], n, self.seed, self.cfg.sequence_weight
        )
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.batch_size,
            sampler=shard_for(sampler, self.trainer),
            num_workers=self.cfg.num_workers,
            drop_last=False,
            persistent_workers=self.cfg.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set,
            batch_size=max(self.cfg.batch_size, 64),
            shuffle=False,
            num_workers=self.cfg.num_workers,
        )
