"""Lip motion: does the voice move the target's lips, as much and as often as its own?

Image metrics (PSNR, landmark distance) barely change when an audio-driven mouth stays
almost closed, and the audio-envelope sync proxy is weak on real speech. This module
measures the mouth **opening over time** directly, three ways:

* **geometry**: the face model's mouth opening (mean inner-lip distance, mm) of the
  audio-driven expressions against the tracked ones (same identity);
* **images**: the 2-D inner-lip landmark distance relative to the eye-corner distance,
  detected on the rendered frames against the real frames;
* **lip closures** (English): the fraction of bilabial phones (/p/ /b/ /m/, forced-aligned
  with pocketsphinx, :mod:`nvp.audio.align`) in which the opening reaches the target's closed
  level (the 10th percentile of its real opening) within ±1 frame.

Per curve pair: Pearson r at lag 0 and the best lag within ±``max_lag`` frames, the amplitude
ratio (standard deviation and 5–95 % range, predicted / real) and how often the mouth is
closed / open against the real distribution (:func:`nvp.metrics.lips.lip_motion_summary`).

:func:`self_lip_motion` is the section of ``nvp evaluate`` (held-out frames of the target,
its own audio); :func:`cross_speaker` drives the target with other voices, where there is no
ground truth: amplitude and open / closed frequencies against the target's own tracked
motion, closures, the sync proxy (reported as uninformative where it cannot tell the target's
real frames from noise) and a strip of mouth crops.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from nvp.metrics.lips import (
    amplitude_ratio,
    bilabial_closure_rate,
    face_dynamics_deviation,
    lip_motion_summary,
    lip_vertex_error,
    mouth_boxes_from_landmarks,
    mouth_strip,
    open_closed_fractions,
    plot_opening_curves,
)
from nvp.metrics.sync import sync_proxy
from nvp.reenact.pipeline import smooth_expressions
from nvp.tracking import topology
from nvp.tracking.face_model import FaceModel, mouth_opening

log = logging.getLogger(__name__)

#: The sync proxy's r on the target's real frames below which it is reported as
#: uninformative on that clip (it cannot tell real lips from noise there).
PROXY_MIN_R = 0.3
#: Percentile of the real opening that defines "closed" (and "open": 100 - it).
CLOSED_Q = 10.0
#: Inner-lip landmark pairs (upper, lower) of each detector layout, for the mouth opening.
OPENING_PAIRS = {
    "mediapipe": topology.MOUTH_OPENING_PAIRS,
    "dlib68": ((61, 67), (62, 66), (63, 65)),
}


def mouth_opening_2d(lms: np.ndarray, layout: str, eye_corners: tuple[int, int]) -> np.ndarray:
    """Inner-lip opening relative to the eye-corner distance, per frame.

    Args:
        lms: (N, L, 2|3) landmarks in pixels (NaN where no face was found).
        layout: ``mediapipe`` or ``dlib68``.
        eye_corners: the two outer eye-corner landmark indices of the layout.

    Returns:
        (N,) float64, dimensionless (NaN where no face was found).
    """
    p = np.asarray(OPENING_PAIRS[layout])
    op = np.linalg.norm(lms[:, p[:, 0], :2] - lms[:, p[:, 1], :2], axis=-1).mean(-1)
    a, b = eye_corners
    return op / np.linalg.norm(lms[:, a, :2] - lms[:, b, :2], axis=-1)


def opening_mm(model: FaceModel, identity: np.ndarray, expressions: np.ndarray) -> np.ndarray:
    """Mouth opening (mean inner-lip distance, mm) of ``identity + basis @ expressions``.

    Args:
        model: the face model.
        identity: (V, 3) neutral shape, mm.
        expressions: (N, K) coefficients.

    Returns:
        (N,) float64 mm.
    """
    return mouth_opening(model.expression_vertices(identity, expressions)).astype(np.float64)


def target_proxy_reliability(store: Any, max_lag: int = 5) -> dict[str, Any]:
    """The offline sync proxy measured on a target's own real frames (the store's tracked
    MediaPipe landmarks and audio, the whole clip): how far the proxy can be trusted on it
    (:func:`proxy_reliability`)."""
    from nvp.tracking.landmarks import FACE_MISSING

    lms = np.asarray(store["landmarks"][...], np.float64)
    op = mouth_opening_2d(lms, "mediapipe", topology.EYE_CORNERS)
    op[np.asarray(store["face_flag"][...]) == FACE_MISSING] = np.nan
    audio = np.asarray(store["audio"][...]).astype(np.float32) / 32768.0
    sr = int(store.attrs["sample_rate"])
    _, r_real, _ = sync_proxy(fill_nan(op), audio, sr, store.fps, max_lag)
    return proxy_reliability(r_real)


def proxy_reliability(r_real: float | None) -> dict[str, Any]:
    """How far the offline sync proxy can be trusted on a target: its r on the real frames."""
    ok = r_real is not None and np.isfinite(r_real) and r_real >= PROXY_MIN_R
    return {
        "r_real": None if r_real is None or not np.isfinite(r_real) else float(r_real),
        "informative": bool(ok),
        "note": "informative"
        if ok
        else f"uninformative on this clip (r on the real frames < {PROXY_MIN_R})",
    }


def closures(
    segments: list[tuple[float, float]] | None,
    curves: dict[str, tuple[np.ndarray, float]],
    fps: float,
    tolerance: int = 1,
) -> dict[str, Any]:
    """Bilabial closure rate of several opening curves.

    Args:
        segments: (start, end) seconds of the bilabial phones (frame 0 of the curves at 0 s),
            or None when the check does not apply.
        curves: name -> (opening curve (N,), closed level in its units).
        fps: frames per second of the curves.
        tolerance: frames of slack on each side of a segment.

    Returns:
        name -> the result of :func:`nvp.metrics.lips.bilabial_closure_rate` (without the
        per-segment list), plus ``n_segments``.
    """
    if segments is None:
        return {}
    out: dict[str, Any] = {"n_segments": len(segments)}
    for name, (curve, level) in curves.items():
        r = bilabial_closure_rate(curve, segments, fps, level, tolerance)
        out[name] = {k: v for k, v in r.items() if k != "closed"}
    return out


def bilabials(audio: np.ndarray, language: str, transcript: str | None) -> dict[str, Any]:
    """Bilabial phone segments of 16-kHz ``audio`` (see :mod:`nvp.audio.align`).

    Returns:
        ``applicable``, ``segments`` [(start, end) s], ``transcript``, ``reason``.
    """
    from nvp.audio.align import bilabial_segments

    try:
        res = bilabial_segments(audio, transcript=transcript, language=language)
    except Exception as exc:  # an alignment failure must not lose the rest of the report
        log.warning("bilabial alignment failed: %s", exc)
        return {"applicable": False, "segments": None, "transcript": "", "reason": str(exc)}
    if not res.applicable:
        return {"applicable": False, "segments": None, "transcript": "", "reason": res.reason}
    return {
        "applicable": True,
        "segments": [(s.start, s.end) for s in res.segments],
        "transcript": res.transcript,
        "reason": "",
    }


def self_lip_motion(
    model: FaceModel,
    identity: np.ndarray,
    tracked: np.ndarray,
    driven: np.ndarray,
    frames: np.ndarray,
    image_openings: dict[str, np.ndarray],
    fps: float,
    clip_audio: np.ndarray | None,
    out_dir: Path,
    *,
    tracked_all: np.ndarray | None = None,
    max_lag: int = 5,
    language: str = "en",
    transcript: str | None = None,
    closure_check: bool = True,
) -> dict[str, Any]:
    """The lip-motion section of the self-reenactment evaluation.

    Args:
        model: the face model.
        identity: (V, 3) the target's identity, mm.
        tracked: (N, K) tracked expressions of the evaluated frames.
        driven: (N, K) audio-driven expressions of the same frames.
        frames: (N,) their frame indices (lags and closures need consecutive frames).
        image_openings: ``gt`` / ``tracking`` / ``audio`` -> (N,) 2-D openings detected on the
            real and rendered frames (NaN without a face).
        fps: frames per second.
        clip_audio: the evaluated frames' audio (16 kHz mono float), for the closures.
        out_dir: where ``lips.png`` is written.
        tracked_all: (M, K) the target's tracked expressions over all its frames (its closed
            level); default ``tracked``.
        max_lag: lags searched, frames.
        language: the speech's language (closures need English).
        transcript: the clip's transcript (None = Whisper's).
        closure_check: run the bilabial closure check.

    Returns:
        ``geometry`` (summary, LVE mm, FDD mm), ``images`` (summary per rendered mode),
        ``closures`` and the plot's file name.
    """
    contiguous = bool(np.all(np.diff(frames) == 1))
    if len(frames) < 3:
        return {"note": f"too few frames ({len(frames)}) for the lip-motion measures"}
    op_t = opening_mm(model, identity, tracked)
    op_a = opening_mm(model, identity, driven)
    # lags need consecutive frames, and at least 3 overlapping frames at the largest lag
    lag = min(max_lag, len(frames) - 3) if contiguous else 0
    v_t = model.expression_vertices(identity, tracked)
    v_a = model.expression_vertices(identity, driven)
    geometry = lip_motion_summary(op_a, op_t, max_lag=lag)
    geometry["lve_mm"] = lip_vertex_error(v_a, v_t, np.asarray(topology.lip_vertices()))
    upper = np.flatnonzero(model.mouth_weight < 0.05)
    geometry["fdd_mm"] = face_dynamics_deviation(v_a, v_t, upper)
    images = {}
    gt2 = image_openings.get("gt")
    for m in ("tracking", "audio"):
        if gt2 is None or m not in image_openings:
            continue
        both = int((np.isfinite(gt2) & np.isfinite(image_openings[m])).sum())
        if both >= 2 * lag + 3:
            images[m] = lip_motion_summary(image_openings[m], gt2, max_lag=lag)
        else:
            images[m] = {"n_valid": both, "note": "too few frames with a face on both sides"}
    ref_all = opening_mm(model, identity, tracked_all if tracked_all is not None else tracked)
    closed_mm = float(np.nanpercentile(ref_all, CLOSED_Q))
    clos: dict[str, Any] = {"applicable": False, "reason": "not run"}
    if closure_check and clip_audio is not None and contiguous:
        b = bilabials(clip_audio, language, transcript)
        clos = {k: b[k] for k in ("applicable", "reason", "transcript")}
        if b["applicable"]:
            curves = {"tracking_geometry": (op_t, closed_mm), "audio_geometry": (op_a, closed_mm)}
            if gt2 is not None and np.isfinite(gt2).any():
                closed_2d = float(np.nanpercentile(gt2, CLOSED_Q))
                curves["real_images"] = (gt2, closed_2d)
                for m in ("tracking", "audio"):
                    if m in image_openings:
                        curves[f"{m}_images"] = (image_openings[m], closed_2d)
            clos["closed_level_mm"] = closed_mm
            clos["rates"] = closures(b["segments"], curves, fps)
    elif not contiguous:
        clos["reason"] = "the evaluated frames are not consecutive"
    plot = "lips.png"
    plot_opening_curves(
        out_dir / plot,
        {"tracked": op_t, "audio-driven": op_a},
        fps,
        title="lip motion: audio-driven vs real",
        ylabel="mouth opening (mm)\nface model",
        more=[
            (
                {f"{k} (images)": v for k, v in image_openings.items()},
                "mouth opening / eye dist.\nlandmarks on frames",
            )
        ],
    )
    return {"geometry": geometry, "images": images, "closures": clos, "plot": plot}


def cross_speaker(
    target: Any,
    audios: list[str | Path],
    out_dir: str | Path,
    *,
    smooth_sigma: float = 0.0,
    landmarks: str = "mediapipe",
    max_lag: int = 5,
    language: str = "en",
    closure_check: bool = True,
    strip_seconds: float = 2.0,
    batch: int = 8,
) -> dict[str, Any]:
    """Drive ``target`` with each of ``audios`` and measure its lips (no ground truth).

    Per audio: the audio-driven mouth opening (face model, mm) against the target's own
    tracked opening over all its frames (amplitude ratios; closed / open frequencies against
    the target's distribution); the same on the rendered frames (2-D landmark opening against
    the target's real frames reused as backgrounds); the bilabial closure rate (English);
    the sync proxy on the rendered frames with its reliability on this target; and
    ``strip_<audio>.png``: 2 s of mouth crops (rendered) above the real frames' crops.

    Args:
        target: a loaded :class:`nvp.reenact.target.Target`.
        audios: driving audio files.
        out_dir: where the strips and ``cross_speaker.png`` go.
        smooth_sigma: temporal smoothing of the expressions (as ``nvp reenact``), frames.
        landmarks: detector of the image measures.

    Returns:
        ``reference`` (the target's own motion and the proxy's reliability) and ``audios``
        (one dict per file, in order).
    """
    from nvp.io.audio import load_audio
    from nvp.metrics import DLIB68, mediapipe_layout
    from nvp.metrics.detect import detect_landmarks
    from nvp.reenact.config import ReenactConfig
    from nvp.reenact.pipeline import FrameRenderer, pingpong, stream_expressions, target_frames
    from nvp.tracking.landmarks import FACE_MISSING

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    st = target.store
    fps = target.fps
    model = target.face_model
    identity = np.asarray(st["identity"][...], np.float32)
    tracked = np.asarray(st["expression"][...], np.float32)
    valid = np.asarray(st["face_flag"][...]) != FACE_MISSING
    ref_mm = opening_mm(model, identity, tracked[valid])
    layout = DLIB68 if landmarks == "dlib" else mediapipe_layout()
    reliability = target_proxy_reliability(st, max_lag)
    real_lms: dict[int, np.ndarray] = {}  # landmarks of the reused real frames, by frame
    reference = {
        "opening_mm_std": float(np.std(ref_mm)),
        "opening_mm_p5_p95": [float(np.percentile(ref_mm, 5)), float(np.percentile(ref_mm, 95))],
        "closed_level_mm": float(np.percentile(ref_mm, CLOSED_Q)),
        "open_level_mm": float(np.percentile(ref_mm, 100 - CLOSED_Q)),
        "sync_proxy": reliability,
    }
    frames_idx = target_frames(st, "all")
    fr = FrameRenderer(target)
    rcfg = ReenactConfig(smooth_sigma=smooth_sigma)
    results = []
    curves_mm: dict[str, np.ndarray] = {}
    for path in audios:
        path = Path(path)
        audio = load_audio(path, 16000)
        n = max(1, round(len(audio) / 16000 * fps))
        expr = np.concatenate(
            [e for _, e in stream_expressions(target, iter([audio]), n, rcfg)], axis=0
        )
        op = opening_mm(model, identity, expr)
        curves_mm[path.stem] = op
        geo = _against_distribution(op, ref_mm)
        # render every frame (crop), detect landmarks on them and on the reused real frames
        tidx_all = frames_idx[pingpong(np.arange(n), len(frames_idx))]
        lm_r, lm_g = [], []
        keep_from = max(0, n // 2 - int(strip_seconds * fps) // 2)
        keep_to = min(n, keep_from + round(strip_seconds * fps))
        strip_r, strip_g, box_lm_r, box_lm_g = [], [], [], []
        for b0 in range(0, n, batch):
            tidx = tidx_all[b0 : b0 + batch]
            uv, mask = fr.raster(tidx, expr[b0 : b0 + batch])
            src = fr.frames(tidx)
            rgb = fr.render(uv, mask, src, expr[b0 : b0 + batch])
            lr = np.asarray(detect_landmarks(rgb, backend=landmarks)[0], np.float64)
            todo = [j for j, t in enumerate(tidx) if int(t) not in real_lms]
            if todo:  # every voice reuses the same frames: detect each one once
                found = np.asarray(detect_landmarks(src[todo], backend=landmarks)[0], np.float64)
                real_lms.update({int(tidx[j]): f for j, f in zip(todo, found)})
            lg = np.stack([real_lms[int(t)] for t in tidx])
            lm_r.append(lr)
            lm_g.append(lg)
            for j in range(len(tidx)):
                if keep_from <= b0 + j < keep_to:
                    strip_r.append(rgb[j])
                    strip_g.append(src[j])
                    box_lm_r.append(lr[j])
                    box_lm_g.append(lg[j])
        lr_all, lg_all = np.concatenate(lm_r), np.concatenate(lm_g)
        op_r = mouth_opening_2d(lr_all, layout.name, layout.eye_corners)
        op_g = mouth_opening_2d(lg_all, layout.name, layout.eye_corners)
        img = _against_distribution(op_r, op_g)
        img["frames_with_face"] = int(np.isfinite(op_r).sum())
        lag, r_sync, _ = sync_proxy(fill_nan(op_r), audio, 16000, fps, max_lag)
        sync = {"lag": int(lag), "r": float(r_sync), **reliability}
        if not reliability["informative"]:
            sync["score"] = "uninformative on this clip"
        clos: dict[str, Any] = {"applicable": False, "reason": "not run"}
        if closure_check:
            b = bilabials(audio, language, None)
            clos = {k: b[k] for k in ("applicable", "reason", "transcript")}
            if b["applicable"]:
                closed_2d = float(np.nanpercentile(op_g, CLOSED_Q))
                clos["rates"] = closures(
                    b["segments"],
                    {
                        "audio_geometry": (op, reference["closed_level_mm"]),
                        "audio_images": (op_r, closed_2d),
                    },
                    fps,
                )
        strip_name = f"strip_{_safe(path.stem)}.png"
        _write_strip(out / strip_name, strip_r, strip_g, box_lm_r, box_lm_g, layout.mouth)
        results.append(
            {
                "audio": str(path),
                "seconds": len(audio) / 16000,
                "frames": n,
                "geometry": geo,
                "images": img,
                "sync_proxy": sync,
                "closures": clos,
                "strip": strip_name,
            }
        )
        log.info(
            "%s: opening amplitude %.2f of the target's (geometry), %.2f (images)",
            path.name,
            geo["std_ratio"],
            img["std_ratio"],
        )
    curves_mm = {"target (tracked)": ref_mm, **curves_mm}
    plot_opening_curves(
        out / "cross_speaker.png",
        curves_mm,
        fps,
        title=f"{target.name}: mouth opening driven by other voices",
        ylabel="mouth opening (mm)",
    )
    return {"reference": reference, "audios": results, "plot": "cross_speaker.png"}


def _against_distribution(curve: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Amplitude of ``curve`` against another recording's ``reference`` (no frame pairing):
    standard deviations and 5-95 % ranges, their ratios, and the closed / open fractions
    against the reference's 10th / 90th percentiles. NaNs are ignored."""
    out = amplitude_ratio(curve, reference, paired=False)
    c, r = np.asarray(curve, np.float64), np.asarray(reference, np.float64)
    c, r = c[np.isfinite(c)], r[np.isfinite(r)]
    if len(c) and len(r):
        f = open_closed_fractions(c, r, CLOSED_Q, 100 - CLOSED_Q)
        out.update({k: f[k] for k in ("closed_fraction", "open_fraction")})
    return out


def fill_nan(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN entries (lags need a value at every frame)."""
    x = np.asarray(x, np.float64).copy()
    ok = np.isfinite(x)
    if ok.sum() < 2:
        return x
    x[~ok] = np.interp(np.flatnonzero(~ok), np.flatnonzero(ok), x[ok])
    return x


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _write_strip(
    path: Path,
    rendered: list[np.ndarray],
    real: list[np.ndarray],
    lm_r: list[np.ndarray],
    lm_g: list[np.ndarray],
    mouth: tuple[int, ...],
) -> None:
    """Mouth crops of the rendered frames (top rows) above the real frames' (bottom rows)."""
    import cv2

    from nvp.config import atomic_write_bytes

    if not rendered:
        return
    lips = np.asarray(mouth)
    size = rendered[0].shape[:2]
    # one box per frame from the real frames' lips (the same region in both rows)
    boxes = mouth_boxes_from_landmarks(np.stack(lm_g), lips, image_size=size)
    bad = ~np.isfinite(boxes).all(1)
    if bad.any():
        boxes_r = mouth_boxes_from_landmarks(np.stack(lm_r), lips, image_size=size)
        boxes[bad] = boxes_r[bad]
    top = mouth_strip(np.stack(rendered), boxes, max_tiles=len(rendered))
    bottom = mouth_strip(np.stack(real), boxes, max_tiles=len(real))
    sep = np.full((4, top.shape[1], 3), 255, np.uint8)
    img = np.concatenate([top, sep, bottom], axis=0)
    ok, buf = cv2.imencode(".png", img[..., ::-1])
    if ok:
        atomic_write_bytes(path, buf.tobytes())


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".mp4", ".mkv", ".webm")


def audio_files(paths: list[str | Path]) -> list[Path]:
    """Audio files among ``paths``; folders are searched recursively (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            from nvp.errors import InputError

            raise InputError("driving audio not found", path=p)
    return out


def a2e_lip_probe(
    checkpoint: str | Path,
    store: str | Path,
    voices: list[str | Path] = (),
    fit: Any = None,
    smooth_sigma: float = 0.0,
    split: str = "test",
    max_lag: int = 5,
    cache: dict | None = None,
) -> dict[str, Any]:
    """Geometry-only lip motion of an A2E checkpoint on one target (no renderer needed): the
    quick measure of the generalized stage's ablations.

    The target's map is fitted on its ``train`` frames (``fit``: a
    :class:`nvp.a2e.config.FitTargetConfig`, default settings when None); then

    * ``own``: its own audio on the ``split`` frames against the tracked opening
      (:func:`nvp.metrics.lips.lip_motion_summary`: r, lag, amplitude ratios);
    * ``voices``: every file of ``voices`` (files or folders) drives the target; amplitude
      ratios and closed / open fractions against the target's tracked opening (train split).

    ``cache`` (a dict the caller keeps) holds the voices' feature windows between calls.

    Returns:
        ``own`` (summary), ``voices`` ({file name: summary}), ``voices_std_ratio_min`` /
        ``_mean``, ``gain`` (of the fit) and ``fit`` (the settings used).
    """
    from dataclasses import asdict

    from nvp.a2e.checkpoint import load_a2e
    from nvp.a2e.config import FitTargetConfig
    from nvp.a2e.target import fit_target, map_expressions
    from nvp.audio.windows import extract_windows, prepare_audio
    from nvp.data.store import SequenceStore
    from nvp.io.audio import load_audio
    from nvp.reenact.pipeline import audio_config

    cfg = fit if fit is not None else FitTargetConfig()
    bundle = load_a2e(checkpoint)
    st = SequenceStore(store)
    res = fit_target(bundle, st, cfg)
    model = bundle.face_model
    identity = np.asarray(st["identity"][...], np.float32)
    expr = res["expression"]
    real = opening_mm(model, identity, expr)
    pred = opening_mm(model, identity, smooth_expressions(res["prediction"], smooth_sigma))
    a, b = st.split_range(split)
    own = lip_motion_summary(pred[a:b], real[a:b], max_lag=max_lag)
    ta, tb = st.split_range("train")
    ref = real[ta:tb]
    acfg = audio_config(st)
    out_voices: dict[str, Any] = {}
    cache = {} if cache is None else cache
    for f in audio_files(list(voices)):
        key = (str(f), repr(acfg), st.fps)
        if key not in cache:
            audio = load_audio(f, 16000)
            n = max(1, int(len(audio) / 16000 * st.fps))
            cache[key] = extract_windows(audio, 16000, n, st.fps, acfg)
        w = cache[key]
        e = map_expressions(bundle, w, res["mapping"], res["offset"])
        op = opening_mm(model, identity, smooth_expressions(e, smooth_sigma))
        out_voices[f.name] = _against_distribution(op, ref)
    ratios = [v["std_ratio"] for v in out_voices.values()]
    # bilabial closures over the held-out frames (val + test, consecutive in time)
    ha, hb = st.split_range("val")[0], st.split_range("test")[1]
    key = ("bilabials", str(st.path), ha, hb)
    if key not in cache:
        sr = int(st.attrs["sample_rate"])
        spf = sr / st.fps
        clip = np.asarray(st["audio"][round(ha * spf) : round(hb * spf)]).astype(np.float32)
        cache[key] = bilabials(prepare_audio(clip / 32768.0, sr), "en", None)
    bl = cache[key]
    clos = {"applicable": bl["applicable"], "reason": bl["reason"]}
    if bl["applicable"]:
        level = float(np.percentile(real[ta:tb], CLOSED_Q))
        c = closures(
            bl["segments"], {"audio": (pred[ha:hb], level), "tracked": (real[ha:hb], level)}, st.fps
        )
        clos.update(
            {
                "n_segments": c["n_segments"],
                "audio": c["audio"]["rate"],
                "tracked": c["tracked"]["rate"],
            }
        )
    return {
        "own": own,
        "closures": clos,
        "voices": out_voices,
        "voices_std_ratio_min": float(np.min(ratios)) if ratios else float("nan"),
        "voices_std_ratio_mean": float(np.mean(ratios)) if ratios else float("nan"),
        "gain": float(res["report"].gain),
        "fit": asdict(cfg),
        "split": split,
    }
