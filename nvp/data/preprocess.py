"""``nvp preprocess``: talking-head videos to sequence stores.

Per video, in stages (each resumable within an interrupted run's temporary store):

1. ``track``: decode at the target fps (by timestamps), MediaPipe landmarks on the
   full frame, gap filling, the smoothed face track and the crop squares.
2. ``frames``: decode again, cut and resize the crops, write ``frames``.
3. ``audio``: the audio track at 16 kHz mono and the per-frame feature windows.
4. ``geometry``: rigid pose, identity, expression against the face model, and the
   rasterized UV maps and masks (re-run by ``nvp build-face-model``).

Videos run in parallel processes; a video that fails reports one clear line and
leaves no store that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from nvp.config import PreprocessConfig, RasterConfig, TrackingConfig
from nvp.data.crop import crop_squares, cut_crop, landmarks_to_crop
from nvp.data.store import (
    FACE_MODEL_FILE,
    STORE_SUFFIX,
    SequenceStore,
    StoreWriter,
    create_array,
    find_stores,
    store_lock,
    swap_in,
    time_splits,
    write_manifest,
)
from nvp.errors import InputError, NvpError
from nvp.io.files import check_output_dir, file_sha256
from nvp.tracking.face_model import FaceModel, template_face_model
from nvp.tracking.fit import SequenceFit, fit_sequence
from nvp.tracking.landmarks import FACE_DETECTED, LandmarkDetector, fill_gaps

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv"}


# --------------------------------------------------------------------------------------- inputs


def collect_inputs(inputs: list[str | Path]) -> list[Path]:
    """Expand folders into the video files they hold (by extension, sorted); keep files as given.

    Raises:
        InputError: a path that does not exist, or a folder without videos.
    """
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            vids = sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES)
            if not vids:
                raise InputError(
                    f"folder holds no video files ({', '.join(sorted(VIDEO_SUFFIXES))})", path=p
                )
            out.extend(vids)
        elif p.exists():
            out.append(p)
        else:
            raise InputError("no such file or folder", path=p)
    return out


def store_names(paths: list[Path]) -> list[str]:
    """One store name per input: the file stem (sanitised), prefixed by the parent folder where
    two inputs share a stem."""

    def clean(s: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._") or "video"

    stems = [clean(p.stem) for p in paths]
    names = []
    for p, s in zip(paths, stems):
        names.append(f"{clean(p.parent.name)}_{s}" if stems.count(s) > 1 else s)
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    return names


def settings_signature(cfg: PreprocessConfig) -> dict[str, Any]:
    """The settings that determine a store's content (``workers`` and device choices excluded)."""
    d = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    d.pop("workers", None)
    d.pop("face_model", None)
    d["raster"].pop("device", None)
    d["raster"].pop("batch", None)
    return d


def face_model_path(cfg: PreprocessConfig, dataset: Path) -> Path | None:
    """The face model file a preprocessing run uses: ``cfg.face_model``, else the dataset's
    ``face_model.npz``, else None (the built-in template, K = 0)."""
    if cfg.face_model:
        return Path(cfg.face_model)
    fm = dataset / FACE_MODEL_FILE
    return fm if fm.exists() else None


def load_face_model(path: str | Path | None) -> FaceModel:
    """:meth:`FaceModel.load`, or the built-in template for None."""
    return FaceModel.load(path) if path else template_face_model()


# --------------------------------------------------------------------------------- checks

#: Audio and video lengths that differ by more than this many frames get a warning.
AV_MISMATCH_FRAMES = 2


def check_av_lengths(src: Path, audio_s: float, video_s: float, fps: float) -> float:
    """Warn when the audio track and the video of ``src`` differ in length by more than
    :data:`AV_MISMATCH_FRAMES` frames (a truncated download, a damaged or badly muxed file);
    the feature windows of the frames without audio then see silence. Returns the difference
    audio - video in seconds."""
    diff = audio_s - video_s
    if abs(diff) > AV_MISMATCH_FRAMES / fps:
        log.warning(
            "%s: the audio track is %.2f s long, the video %.2f s (%d frames at %g fps): a "
            "truncated or damaged file? %s",
            src,
            audio_s,
            video_s,
            round(video_s * fps),
            fps,
            "the last frames' audio features see silence"
            if diff < 0
            else "audio after the last frame is not used",
        )
    return diff


# ------------------------------------------------------------------------------------ geometry


def fit_geometry(
    landmarks: np.ndarray, flags: np.ndarray, model: FaceModel, cfg: TrackingConfig
) -> SequenceFit:
    return fit_sequence(
        landmarks,
        flags,
        model,
        points=list(cfg.pose_points),
        pose_sigma=cfg.pose_smooth_sigma,
        closed_fraction=cfg.identity_closed_fraction,
    )


def rasterize_into(
    uv_arr: zarr.Array,
    mask_arr: zarr.Array,
    fit: SequenceFit,
    model: FaceModel,
    size: int,
    cfg: RasterConfig,
    *,
    block: int = 64,
    desc: str = "raster",
    position: int = 0,
) -> None:
    """Rasterize the posed model of every frame into ``uv`` / ``mask`` arrays, block by block
    (bounded memory)."""
    from nvp.raster import render_uv_mask

    n = len(fit.pose)
    device = torch.device(cfg.device)
    faces = torch.as_tensor(model.triangles, dtype=torch.int64, device=device)
    uvs = torch.as_tensor(model.uv, device=device)
    labels = torch.as_tensor(model.triangle_labels, device=device)
    bar = tqdm(total=n, desc=desc, unit="frame", position=position, leave=False)
    for a in range(0, n, block):
        b = min(n, a + block)
        uv_out = np.empty((b - a, size, size, 2), np.float16)
        mask_out = np.empty((b - a, size, size), np.uint8)
        for c in range(a, b, cfg.batch):
            d = min(b, c + cfg.batch)
            verts = torch.as_tensor(fit.vertices(model, slice(c, d)), device=device)
            uv, mask = render_uv_mask(verts, faces, uvs, labels, (size, size), backend=cfg.backend)
            uv_out[c - a : d - a] = uv.cpu().numpy().astype(np.float16)
            mask_out[c - a : d - a] = mask.cpu().numpy()
            bar.update(d - c)
        uv_arr[a:b] = uv_out
        mask_arr[a:b] = mask_out
    bar.close()


def model_attrs(model: FaceModel) -> dict[str, Any]:
    return {"name": model.name, "hash": model.hash, "n_components": model.n_components}


# ----------------------------------------------------------------------------------- one video


@dataclass
class VideoResult:
    """Outcome of preprocessing one video."""

    source: str
    name: str
    status: str  # "done", "skipped", "failed"
    store: str | None = None
    message: str = ""
    n_frames: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def preprocess_video(
    src: Path,
    name: str,
    dataset: Path,
    cfg: PreprocessConfig,
    model: FaceModel,
    *,
    position: int = 0,
) -> VideoResult:
    """Build (or skip, or resume) the store ``dataset/name.zarr`` for one video, holding the
    store's writer lock (:func:`~nvp.data.store.store_lock`) throughout.

    Raises:
        InputError: the video cannot be used (with the file and the reason); no finished store
            is left behind. Also when ``cfg.lock_timeout`` runs out while another process
            writes the store (the message names it).
    """
    with store_lock(dataset / f"{name}{STORE_SUFFIX}", cfg.lock_timeout):
        return _preprocess_locked(src, name, dataset, cfg, model, position)


def _preprocess_locked(
    src: Path, name: str, dataset: Path, cfg: PreprocessConfig, model: FaceModel, position: int
) -> VideoResult:
    from nvp.audio import extract_windows, feature_signature
    from nvp.io import iter_frames, load_audio, probe, resampled_frame_count

    t_start = time.perf_counter()
    info = probe(src)
    if not info.has_audio:
        raise InputError("no audio track: nvp needs the speech that goes with the face", path=src)
    n = resampled_frame_count(info, cfg.fps)
    min_frames = max(int(np.ceil(cfg.min_seconds * cfg.fps)), cfg.audio.window)
    if n < min_frames:
        raise InputError(
            f"clip too short: {n} frames at {cfg.fps:g} fps ({n / cfg.fps:.2f} s); "
            f"at least {min_frames} frames are needed (min_seconds={cfg.min_seconds:g}, "
            f"feature window {cfg.audio.window})",
            path=src,
        )
    source_hash = file_sha256(src, 64)
    feat_sig = feature_signature(cfg.audio)
    key_src = json.dumps(
        {
            "source": source_hash,
            "settings": settings_signature(cfg),
            "features": feat_sig,
            "face_model": model.hash,
            "format": 1,
        },
        sort_keys=True,
        default=str,
    )
    input_key = hashlib.sha256(key_src.encode()).hexdigest()[:32]
    final = dataset / f"{name}{STORE_SUFFIX}"
    if final.exists():
        try:
            old = SequenceStore(final)
            if old.attrs.get("input_key") == input_key:
                return VideoResult(str(src), name, "skipped", str(final), "unchanged", old.n_frames)
        except InputError:
            pass  # an unreadable or incomplete store is rebuilt
    w = StoreWriter(
        final,
        input_key=input_key,
        clevel=cfg.store.clevel,
        chunk_frames=cfg.store.chunk_frames,
        shard_frames=cfg.store.shard_frames,
    )
    timings: dict[str, float] = {}
    size = cfg.crop.size
    try:
        # 1. audio first: cheap, and a clip without usable audio fails before the long passes.
        t0 = time.perf_counter()
        audio = load_audio(src, cfg.sample_rate)
        timings["audio_decode"] = time.perf_counter() - t0
        check_av_lengths(src, len(audio) / cfg.sample_rate, n / cfg.fps, cfg.fps)

        # 2. landmarks on the full frames, gap filling, crop squares.
        if not w.stage_done("track"):
            t0 = time.perf_counter()
            decode_time = 0.0
            lms: list[np.ndarray | None] = []
            several = 0
            with LandmarkDetector(
                refine=cfg.landmarks.refine,
                max_faces=cfg.landmarks.max_faces,
                min_detection_confidence=cfg.landmarks.min_detection_confidence,
                min_tracking_confidence=cfg.landmarks.min_tracking_confidence,
            ) as det:
                bar = tqdm(
                    total=n, desc=f"{name}: landmarks", unit="frame", position=position, leave=False
                )
                it = iter_frames(src, cfg.fps)
                while True:
                    td = time.perf_counter()
                    item = next(it, None)
                    decode_time += time.perf_counter() - td
                    if item is None:
                        break
                    lms.append(det(item[2]))
                    bar.update(1)
                bar.close()
                several = det.frames_with_several_faces
            if len(lms) != n:
                raise InputError(
                    f"decoded {len(lms)} frames where the container promised {n} "
                    "(truncated or corrupt video)",
                    path=src,
                )
            detected = sum(x is not None for x in lms)
            frac = detected / n
            if detected == 0:
                raise InputError("no face found in any frame", path=src)
            if frac < cfg.landmarks.min_face_fraction:
                raise InputError(
                    f"a face was found in only {detected} of {n} frames ({100 * frac:.0f} %, "
                    f"below landmarks.min_face_fraction={cfg.landmarks.min_face_fraction:g})",
                    path=src,
                )
            if several:
                log.warning(
                    "%s: %d frames show several faces; the largest face is used", src, several
                )
            full, flags = fill_gaps(lms, cfg.landmarks.max_gap)
            squares = crop_squares(
                full, scale=cfg.crop.scale, mode=cfg.crop.mode, sigma=cfg.crop.smooth_sigma
            )
            w.write("landmarks", landmarks_to_crop(full, squares, size))
            w.write("face_flag", flags)
            w.write("crop", squares)
            w.set_attrs(frames_with_several_faces=several)
            w.mark_stage("track")
            timings["decode"] = decode_time
            timings["landmarks"] = time.perf_counter() - t0 - decode_time
        squares = np.asarray(w.group["crop"][...])

        # 3. the crops.
        if not w.stage_done("frames"):
            t0 = time.perf_counter()
            arr = w.create("frames", (n, size, size, 3), np.uint8)
            blk = max(1, cfg.store.shard_frames)
            buf = np.empty((blk, size, size, 3), np.uint8)
            bar = tqdm(total=n, desc=f"{name}: crops", unit="frame", position=position, leave=False)
            i = 0
            for i, _, frame in iter_frames(src, cfg.fps):
                buf[i % blk] = cut_crop(frame, squares[i], size)
                if i % blk == blk - 1:
                    arr[i - blk + 1 : i + 1] = buf
                bar.update(1)
            rest = n % blk
            if rest:
                arr[n - rest : n] = buf[:rest]
            bar.close()
            w.mark_stage("frames")
            timings["crop_write"] = time.perf_counter() - t0

        # 4. audio and features.
        t0 = time.perf_counter()
        feats = extract_windows(audio, cfg.sample_rate, n, cfg.fps, cfg.audio)
        timings["features"] = time.perf_counter() - t0
        w.write("audio", np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16))
        w.write("audio_features", feats.astype(np.float16))

        # 5. geometry against the face model and rasterization.
        t0 = time.perf_counter()
        landmarks = np.asarray(w.group["landmarks"][...])
        flags = np.asarray(w.group["face_flag"][...])
        fit = fit_geometry(landmarks, flags, model, cfg.tracking)
        w.write("pose", fit.pose)
        w.write("identity", fit.identity, time_chunked=False)
        w.write("expression", fit.expression)
        timings["fit"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        uv = w.create("uv", (n, size, size, 2), np.float16)
        mask = w.create("mask", (n, size, size), np.uint8)
        rasterize_into(
            uv,
            mask,
            fit,
            model,
            size,
            cfg.raster,
            block=cfg.store.shard_frames,
            desc=f"{name}: raster",
            position=position,
        )
        timings["raster"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start

        w.set_attrs(
            fps=float(cfg.fps),
            size=int(size),
            n_frames=int(n),
            sample_rate=int(cfg.sample_rate),
            source={
                "path": str(Path(src).resolve()),
                "sha256": source_hash,
                "bytes": Path(src).stat().st_size,
                "fps": float(info.fps),
                "width": int(info.width),
                "height": int(info.height),
                "duration_s": float(info.duration_s),
            },
            crop={"mode": cfg.crop.mode, "scale": float(cfg.crop.scale), "size": int(size)},
            face_model=model_attrs(model),
            features=feat_sig,
            frames_without_face=int((flags != FACE_DETECTED).sum()),
            splits=time_splits(n, cfg.split.train, cfg.split.val, cfg.split.test),
            settings=settings_signature(cfg),
            timings=timings,
        )
        final_path = w.finalize()
    except InputError:
        w.discard()
        raise
    return VideoResult(str(src), name, "done", str(final_path), "", n, timings)


def refit_store(
    store_path: Path,
    model: FaceModel,
    tracking: TrackingConfig,
    raster: RasterConfig,
    *,
    clevel: int = 3,
    position: int = 0,
) -> SequenceFit:
    """Recompute pose, identity, expression, UV maps and masks of a finished store for a new
    face model; every array is swapped in atomically and the store's ``face_model`` attribute is
    written last. The caller holds the store's writer lock (:func:`store_lock`).

    A store interrupted between the swaps and the attribute update has the new model's K
    expression columns but still names the old model: it is opened here without the
    consistency check, and redone."""
    store = SequenceStore(store_path, mode="a", require_complete=False)
    landmarks = np.asarray(store["landmarks"][...])
    flags = np.asarray(store["face_flag"][...])
    fit = fit_geometry(landmarks, flags, model, tracking)
    g = store.group
    n, size = store.n_frames, store.size
    staged = {}
    for name, data in (
        ("pose", fit.pose),
        ("identity", fit.identity),
        ("expression", fit.expression),
    ):
        arr = create_array(
            g,
            f"_new_{name}",
            data.shape,
            data.dtype,
            clevel=clevel,
            chunk_frames=None if name == "identity" else 1,
        )
        arr[...] = data
        staged[name] = f"_new_{name}"
    uv = create_array(g, "_new_uv", (n, size, size, 2), np.float16, clevel=clevel)
    mask = create_array(g, "_new_mask", (n, size, size), np.uint8, clevel=clevel)
    rasterize_into(
        uv, mask, fit, model, size, raster, desc=f"{store.name}: raster", position=position
    )
    staged["uv"], staged["mask"] = "_new_uv", "_new_mask"
    swap_in(store_path, staged, {"face_model": model_attrs(model)})
    return fit


# ----------------------------------------------------------------------------------- many videos


def _worker(args: tuple) -> VideoResult:
    src, name, dataset, cfg_dict, model_path, position = args
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    torch.set_num_threads(1)
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PreprocessConfig), cfg_dict))
    model = load_face_model(model_path)
    return _run_one(Path(src), name, Path(dataset), cfg, model, position)


def _run_one(
    src: Path, name: str, dataset: Path, cfg: PreprocessConfig, model: FaceModel, position: int
) -> VideoResult:
    try:
        return preprocess_video(src, name, dataset, cfg, model, position=position)
    except NvpError as exc:
        return VideoResult(str(src), name, "failed", None, str(exc))
    except Exception as exc:  # a bug or an unexpected decoder failure: keep the details
        log.debug("%s", traceback.format_exc())
        return VideoResult(
            str(src), name, "failed", None, f"{src}: unexpected error {type(exc).__name__}: {exc}"
        )


def preprocess(
    inputs: list[str | Path], dataset: str | Path, cfg: PreprocessConfig
) -> list[VideoResult]:
    """Preprocess videos (files or folders) into ``dataset``; returns one result per video.

    Failures do not stop the other videos; the manifest lists the finished stores.
    """
    dataset = Path(dataset)
    paths = collect_inputs(inputs)
    check_output_dir(dataset, "dataset folder")
    names = store_names(paths)
    fm_path = face_model_path(cfg, dataset)
    model = load_face_model(fm_path)
    model_path = str(fm_path) if fm_path else None
    results: list[VideoResult] = []
    if cfg.workers <= 1 or len(paths) == 1:
        for src, name in zip(paths, names):
            results.append(_run_one(src, name, dataset, cfg, model, 0))
    else:
        cfg_dict = OmegaConf.to_container(OmegaConf.structured(cfg))
        ctx = get_context("spawn")
        with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx) as pool:
            futs = {
                pool.submit(
                    _worker, (str(s), nm, str(dataset), cfg_dict, model_path, i % cfg.workers)
                ): i
                for i, (s, nm) in enumerate(zip(paths, names))
            }
            by_index: dict[int, VideoResult] = {}
            for fut in as_completed(futs):
                by_index[futs[fut]] = fut.result()
            results = [by_index[i] for i in range(len(paths))]
    write_manifest(dataset)
    return results


@dataclass
class PreprocessRun:
    """What ``nvp preprocess`` did: one result per video, the run log folder, wall seconds."""

    results: list[VideoResult]
    run_dir: Path
    seconds: float

    @property
    def failed(self) -> list[VideoResult]:
        return [r for r in self.results if r.status == "failed"]

    def summary(self) -> str:
        n = {s: sum(r.status == s for r in self.results) for s in ("done", "skipped", "failed")}
        return (
            f"{n['done']} built, {n['skipped']} unchanged, {n['failed']} failed in "
            f"{self.seconds:.1f} s; dataset: {self.run_dir.parent.parent} (run log {self.run_dir})"
        )


def run_preprocess(cfg: Any, inputs: list[str | Path], out: str | Path) -> PreprocessRun:
    """The ``preprocess`` stage: :func:`preprocess` with a run log folder
    (``out/runs/preprocess-<time>/``: the resolved ``config.yaml`` and ``results.json``).

    Args:
        cfg: a resolved :class:`PreprocessConfig` (``DictConfig``).
        inputs: video files or folders of videos.
        out: the dataset folder.

    Raises:
        InputError: no inputs, or an output folder that cannot be written.
    """
    from nvp.config import make_run_dir, to_object

    if not inputs:
        raise InputError("no input video or folder given")
    check_output_dir(out, "dataset folder")
    run = make_run_dir(out, "preprocess", cfg)
    t0 = time.perf_counter()
    results = preprocess(list(inputs), out, to_object(cfg))
    (run / "results.json").write_text(json.dumps([result_dict(r) for r in results], indent=2))
    return PreprocessRun(results, run, time.perf_counter() - t0)


@dataclass
class FaceModelRun:
    """What ``nvp build-face-model`` did."""

    model: FaceModel
    report_lines: list[str]
    path: Path
    refits: list[tuple[str, int, float | None]]
    """(store, frames, seconds) per store; seconds None = already fitted with this model."""
    run_dir: Path


def build_face_model(cfg: Any, dataset: str | Path) -> FaceModelRun:
    """The ``build-face-model`` stage: learn the expression basis over a dataset's stores,
    write ``face_model.npz`` and refit every store with it (under the dataset's face-model
    lock and each store's writer lock).

    Args:
        cfg: a resolved :class:`~nvp.config.FaceModelConfig` (``DictConfig``).
        dataset: the dataset folder.

    Raises:
        InputError: no dataset folder, no finished stores, or a folder that cannot be written.
    """
    from nvp.config import make_run_dir, to_object
    from nvp.io.lock import writer_lock
    from nvp.tracking.basis import learn_basis

    obj = to_object(cfg)
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise InputError("dataset folder not found", path=dataset)
    check_output_dir(dataset, "dataset folder")
    with writer_lock(dataset / FACE_MODEL_FILE, what="face model"):
        # a store interrupted inside an earlier refit is consistent but for its expression
        # width: opened without that check, and refitted below
        stores = [SequenceStore(p, require_complete=False) for p in find_stores(dataset)]
        if not stores:
            raise InputError(
                "no finished sequence stores (run `nvp preprocess` first)", path=dataset
            )
        run = make_run_dir(dataset, "build-face-model", cfg)
        model, report = learn_basis(stores, template_face_model(), obj)
        path = model.save(dataset / FACE_MODEL_FILE)
        (run / "report.json").write_text(json.dumps(model.info, indent=2))
        refits: list[tuple[str, int, float | None]] = []
        for s in stores:
            with store_lock(s.path):
                cur = SequenceStore(s.path, require_complete=False)
                fm = cur.attrs.get("face_model", {})
                k = cur["expression"].shape[1]
                if fm.get("hash") == model.hash and k == model.n_components:
                    refits.append((s.name, s.n_frames, None))
                    continue
                t0 = time.perf_counter()
                refit_store(s.path, model, obj.tracking, obj.raster)
                refits.append((s.name, s.n_frames, time.perf_counter() - t0))
                log.info("%s: refitted %d frames", s.name, s.n_frames)
        write_manifest(dataset)
    return FaceModelRun(model, list(report.lines()), path, refits, run)


def results_table(results: list[VideoResult]) -> str:
    """A plain-text table of preprocessing results (one line per video)."""
    lines = []
    for r in results:
        if r.status == "failed":
            lines.append(f"FAILED  {r.message}")
            continue
        t = r.timings.get("total")
        speed = f"  {r.n_frames / t:6.1f} frames/s" if t else ""
        lines.append(f"{r.status:7s} {r.name}: {r.n_frames} frames -> {r.store}{speed}")
    return "\n".join(lines)


def result_dict(r: VideoResult) -> dict:
    return asdict(r)
