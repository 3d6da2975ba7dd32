"""``nvp evaluate``: self-reenactment on the held-out frames of the target video (paper §6).

Every frame of the evaluated split is rendered twice, over the real frame's background:

* **visual tracking**: the UV map the store holds (the tracked expression and pose),
* **audio-driven**: the expressions Audio2ExpressionNet predicts from the clip's own audio
  features through the target's map, at the tracked pose,

and compared with the real frame (all in the store's crop, colours in [0, 1]):

* PSNR and mean colour l2 over the full crop and over the face region (the tracked face
  mask), SSIM, LPIPS (when its weights are given);
* mouth landmark distance: mean mouth-landmark error relative to the inter-ocular distance
  (the paper's measure) and in pixels (the NeRF family's LMD), landmarks detected on the
  real and the rendered frames (MediaPipe by default, dlib's 68 points as the paper);
* audio-visual sync: the offline **proxy** (best lag and correlation between the mouth
  opening measured on the frames and the audio envelope; no weights), and SyncNet offset /
  confidence, LSE-D / LSE-C when ``syncnet_v2.model`` is given.

Outputs in the report folder: ``metrics.json``, ``report.md`` (the paper's table),
``per_frame.csv`` and ``per_frame.png`` (PSNR and mouth landmark distance over time), and
``side_by_side.mp4`` (ground truth | visual tracking | audio-driven, with the clip's audio).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from nvp.audio.windows import prepare_audio
from nvp.config import atomic_write_text
from nvp.errors import InputError
from nvp.metrics import DLIB68, MouthLandmarkDistance, mediapipe_layout
from nvp.metrics.detect import detect_landmarks
from nvp.metrics.image import BUILTIN, image_metrics, psnr_per_image, update_image_metrics
from nvp.metrics.sync import sync_proxy
from nvp.reenact.config import EvaluateConfig
from nvp.reenact.lips import fill_nan, mouth_opening_2d, self_lip_motion, target_proxy_reliability
from nvp.reenact.pipeline import FrameRenderer, target_frames
from nvp.reenact.target import Target
from nvp.tracking import topology

log = logging.getLogger(__name__)

MODES = ("tracking", "audio")
LABELS = {"tracking": "visual tracking", "audio": "audio-driven", "gt": "ground truth"}


def evaluate(target: Target, cfg: EvaluateConfig, out_dir: str | Path) -> dict[str, Any]:
    """Run the self-reenactment evaluation and write the report (see the module docstring).

    Returns:
        the content of ``metrics.json``.
    """
    from nvp.io.video import write_video

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    st = target.store
    frames = target_frames(st, cfg.split)
    if cfg.max_frames and len(frames) > cfg.max_frames:
        frames = frames[np.linspace(0, len(frames) - 1, cfg.max_frames).round().astype(int)]
    fr = FrameRenderer(target)
    from nvp.reenact.pipeline import smooth_expressions

    expr_audio = smooth_expressions(
        target.expressions(np.asarray(st["audio_features"][...])), cfg.smooth_sigma
    )
    dev = target.device

    layout = DLIB68 if cfg.landmarks == "dlib" else mediapipe_layout()

    def detect(images: np.ndarray) -> np.ndarray:
        return np.asarray(detect_landmarks(images, backend=cfg.landmarks)[0], np.float64)

    lpips = None
    if cfg.lpips_vgg or cfg.lpips_lin:
        from nvp.metrics.lpips import LPIPS

        lpips = {m: LPIPS(cfg.lpips_vgg, cfg.lpips_lin).to(dev) for m in MODES}
    extra = dict(getattr(target.renderer.cfg, "metrics", None) or {})  # the renderer's own
    agg = {m: image_metrics(extra=extra).to(dev) for m in MODES}
    per_frame: dict[str, list] = {"frame": []}
    for m in MODES:
        for k in ("psnr", "psnr_face"):
            per_frame[f"{m}/{k}"] = []
    lms: dict[str, list[np.ndarray]] = {"gt": [], **{m: [] for m in MODES}}
    keep = cfg.syncnet is not None
    kept: dict[str, list[np.ndarray]] = {"gt": [], **{m: [] for m in MODES}}

    def to_t(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, device=dev).permute(0, 3, 1, 2).float() / 255.0

    def rows() -> Iterator[np.ndarray]:
        bar = tqdm(total=len(frames), desc=f"evaluate {target.name}", unit="frame")
        for b0 in range(0, len(frames), cfg.batch):
            tidx = frames[b0 : b0 + cfg.batch]
            gt = fr.frames(tidx)
            uv_t = torch.as_tensor(
                np.asarray(st["uv"].get_orthogonal_selection((tidx,))), dtype=torch.float32
            )
            mask_t = torch.as_tensor(np.asarray(st["mask"].get_orthogonal_selection((tidx,))))
            renders = {"tracking": fr.render(uv_t, mask_t, gt, fr.tracked[tidx])}
            uv_a, mask_a = fr.raster(tidx, expr_audio[tidx])
            renders["audio"] = fr.render(uv_a, mask_a, gt, expr_audio[tidx])
            gt_t = to_t(gt)
            face_t = (mask_t > 0).to(dev)[:, None].float()
            mouth_t = (mask_t == topology.LABEL_MOUTH).to(dev)[:, None].float()  # the real frame's
            for m in MODES:
                pr = to_t(renders[m])
                update_image_metrics(agg[m], pr, gt_t, face_t, mouth_t)
                if lpips is not None:
                    lpips[m].update(pr, gt_t)
                per_frame[f"{m}/psnr"] += psnr_per_image(pr, gt_t).tolist()
                per_frame[f"{m}/psnr_face"] += psnr_per_image(pr, gt_t, face_t).tolist()
                lms[m].append(detect(renders[m]))
                if keep:
                    kept[m].append(renders[m])
            lms["gt"].append(detect(gt))
            if keep:
                kept["gt"].append(gt)
            per_frame["frame"] += [int(t) for t in tidx]
            for j in range(len(tidx)):
                yield np.concatenate([gt[j], renders["tracking"][j], renders["audio"][j]], 1)
            bar.update(len(tidx))
        bar.close()

    a0, a1 = int(frames[0]), int(frames[-1]) + 1
    spf = st.attrs["sample_rate"] / st.fps
    clip_audio = np.asarray(st["audio"][round(a0 * spf) : round(a1 * spf)]).astype(np.float32)
    clip_audio /= 32768.0
    if cfg.video:
        write_video(
            out / "side_by_side.mp4",
            rows(),
            st.fps,
            audio=clip_audio if np.all(np.diff(frames) == 1) else None,
            sample_rate=int(st.attrs["sample_rate"]),
            crf=cfg.crf,
        )
    else:
        for _ in rows():
            pass

    L = {k: np.concatenate(v) for k, v in lms.items()}
    results: dict[str, Any] = {}
    for m in MODES:
        r = {k: float(v) for k, v in agg[m].compute().items()}
        if lpips is not None:
            r["lpips"] = float(lpips[m].compute())
        ok = np.isfinite(L[m]).all((1, 2)) & np.isfinite(L["gt"]).all((1, 2))
        for rel, key in ((True, "lmd_rel"), (False, "lmd_px")):
            metric = MouthLandmarkDistance(layout, relative=rel)
            if ok.any():
                metric.update(torch.as_tensor(L[m][ok]), torch.as_tensor(L["gt"][ok]))
                r[key] = float(metric.compute())
            else:
                r[key] = float("nan")
        r["lmd_frames"] = int(ok.sum())
        results[m] = r
    # per-frame landmark distance (relative) for the plot
    mouth = list(layout.mouth)
    a, b = layout.eye_corners
    iod = np.linalg.norm(L["gt"][:, a, :2] - L["gt"][:, b, :2], axis=-1)
    for m in MODES:
        d = np.linalg.norm(L[m][:, mouth, :2] - L["gt"][:, mouth, :2], axis=-1).mean(-1)
        per_frame[f"{m}/lmd_rel"] = list(d / iod)

    # offline sync proxy (contiguous frames only: lags need a time axis)
    sync: dict[str, Any] = {"proxy_note": "offline proxy: mouth opening vs audio envelope"}
    contiguous = bool(np.all(np.diff(frames) == 1))
    for k in ("gt", *MODES):
        if not contiguous:
            sync[k] = {"lag": None, "r": None}
            continue
        op = fill_nan(mouth_opening_2d(L[k], layout.name, layout.eye_corners))
        if not np.isfinite(op).all():
            sync[k] = {"lag": None, "r": None}
            continue
        lag, rbest, _ = sync_proxy(
            op, clip_audio, int(st.attrs["sample_rate"]), st.fps, cfg.max_lag
        )
        sync[k] = {"lag": lag, "r": rbest}
    lip_motion: dict[str, Any] = {"note": "skipped (lips=false)"}
    if cfg.lips:
        openings = {k: mouth_opening_2d(L[k], layout.name, layout.eye_corners) for k in L}
        lip_motion = self_lip_motion(
            target.face_model,
            fr.identity,
            fr.tracked[frames],
            expr_audio[frames],
            frames,
            openings,
            st.fps,
            prepare_audio(clip_audio, int(st.attrs["sample_rate"])) if contiguous else None,
            out,
            tracked_all=fr.tracked,
            max_lag=cfg.max_lag,
            language=cfg.language,
            transcript=cfg.transcript,
            closure_check=cfg.closures,
        )
    sync["reliability"] = target_proxy_reliability(st, cfg.max_lag)
    syncnet: dict[str, Any] = {}
    if cfg.syncnet:
        from nvp.metrics.syncnet import SyncNetScorer, load_syncnet

        scorer = SyncNetScorer(load_syncnet(cfg.syncnet), device=dev)
        for k in ("gt", *MODES):
            s = scorer(np.concatenate(kept[k]), clip_audio)
            syncnet[k] = {x: float(s[x]) for x in ("offset", "confidence", "lse_d", "lse_c")}
    else:
        syncnet["note"] = "skipped: pass syncnet=PATH to syncnet_v2.model"

    report = {
        "target": target.name,
        "split": cfg.split,
        "frames": len(frames),
        "landmarks": layout.name,
        "metrics": results,
        "sync_proxy": sync,
        "lip_motion": lip_motion,
        "syncnet": syncnet,
        "lpips": "computed" if lpips is not None else "skipped: no LPIPS weights given",
        "seconds": time.perf_counter() - t0,
    }
    atomic_write_text(out / "metrics.json", json.dumps(report, indent=2, allow_nan=True))
    _write_per_frame(out, per_frame)
    _plot(out / "per_frame.png", per_frame, target.name)
    atomic_write_text(out / "report.md", markdown_report(report))
    return report


def evaluate_cross_speaker(target: Target, cfg: EvaluateConfig, out_dir: str | Path) -> str:
    """``nvp evaluate --audio A1 A2 ...``: lip motion of ``target`` driven by other voices
    (:func:`nvp.reenact.lips.cross_speaker`). Writes ``cross_speaker.json``,
    ``cross_speaker.md``, the opening curves and one mouth-crop strip per audio; returns the
    Markdown."""
    from nvp.reenact.lips import cross_speaker

    out = Path(out_dir)
    res = cross_speaker(
        target,
        list(cfg.audio),
        out,
        smooth_sigma=cfg.smooth_sigma,
        landmarks=cfg.landmarks,
        max_lag=cfg.max_lag,
        language=cfg.language,
        closure_check=cfg.closures and cfg.lips,
        strip_seconds=cfg.strip_seconds,
        batch=cfg.batch,
    )
    for a in res["audios"]:
        a["strip_seconds"] = cfg.strip_seconds
    res["target"] = target.name
    atomic_write_text(out / "cross_speaker.json", json.dumps(res, indent=2, allow_nan=True))
    text = cross_speaker_markdown(res, target.name)
    atomic_write_text(out / "cross_speaker.md", text)
    return text


def _write_per_frame(out: Path, per_frame: dict[str, list]) -> None:
    keys = list(per_frame)
    rows = [keys] + [list(r) for r in zip(*(per_frame[k] for k in keys))]
    tmp = out / ".per_frame.csv.tmp"
    with tmp.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    tmp.replace(out / "per_frame.csv")


def _plot(path: Path, per_frame: dict[str, list], name: str) -> None:
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend alone

    x = per_frame["frame"]
    fig = Figure(figsize=(9, 7))
    axes = fig.subplots(3, 1, sharex=True)
    for m in MODES:
        axes[0].plot(x, per_frame[f"{m}/psnr"], label=LABELS[m])
        axes[1].plot(x, per_frame[f"{m}/psnr_face"], label=LABELS[m])
        axes[2].plot(x, per_frame[f"{m}/lmd_rel"], label=LABELS[m])
    axes[0].set_ylabel("PSNR (dB)")
    axes[1].set_ylabel("face PSNR (dB)")
    axes[2].set_ylabel("mouth LMD / IOD")
    axes[2].set_xlabel("frame")
    axes[0].legend()
    axes[0].set_title(f"self-reenactment of {name}, per frame")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)


def _f(x: Any, fmt: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x) and not math.isinf(x)):
        return "n/a"
    return format(x, fmt)


def markdown_report(r: dict[str, Any]) -> str:
    """The report as Markdown: the paper's self-reenactment table plus sync measures."""
    lines = [
        f"# Self-reenactment of `{r['target']}`",
        "",
        f"{r['frames']} frames of the `{r['split']}` split; colours in [0, 1]; landmarks: "
        f"{r['landmarks']}; face = the tracked face mask; mouth = its lips and mouth "
        "interior; sharpness = variance of the Laplacian over the face, rendered / real (1 = "
        "as sharp as the real frames).",
        "",
        "| expressions | colour l2 | PSNR (dB) | colour l2 face | PSNR face (dB) | "
        "PSNR mouth (dB) | sharpness | SSIM | LPIPS | mouth LMD / IOD | mouth LMD (px) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    known = {*BUILTIN, "lpips", "lmd_rel", "lmd_px"}
    extra = sorted(k for k in r["metrics"][MODES[0]] if k not in known)  # your own metrics
    if extra:
        lines[-2] += " " + " | ".join(extra) + " |"
        lines[-1] += "---|" * len(extra)
    for m in MODES:
        v = r["metrics"][m]
        lines.append(
            f"| {LABELS[m]} | {_f(v['colour_l2'], '.4f')} | {_f(v['psnr'], '.2f')} | "
            f"{_f(v['colour_l2_face'], '.4f')} | {_f(v['psnr_face'], '.2f')} | "
            f"{_f(v.get('psnr_mouth'), '.2f')} | {_f(v.get('sharpness'), '.2f')} | "
            f"{_f(v['ssim'], '.4f')} | {_f(v.get('lpips'), '.4f')} | "
            f"{_f(v['lmd_rel'], '.4f')} | {_f(v['lmd_px'], '.2f')} |"
            + "".join(f" {_f(v.get(k), '.4f')} |" for k in extra)
        )
    lines += [
        "",
        "Paper (Obama, 645 test frames): colour l2 0.003 / 0.005, PSNR 41.48 / 36.65, mouth "
        "landmark distance 0.022 / 0.055 (visual tracking / audio-driven).",
        "",
        "## Audio-visual sync",
        "",
        "Offline sync **proxy** (no weights; best lag in frames, positive = audio late, and "
        "the correlation between the mouth opening on the frames and the audio envelope):",
        "",
        "| frames | best lag | r |",
        "|---|---|---|",
    ]
    for k in ("gt", *MODES):
        s = r["sync_proxy"].get(k, {})
        lines.append(f"| {LABELS[k]} | {_f(s.get('lag'), 'd')} | {_f(s.get('r'), '.3f')} |")
    rel = r["sync_proxy"].get("reliability")
    if rel is not None:
        lines += ["", f"Proxy on this clip: {rel['note']}."]
    lines += lip_motion_markdown(r.get("lip_motion"))
    sn = r["syncnet"]
    lines += ["", "SyncNet:", ""]
    if "note" in sn:
        lines.append(f"{sn['note']}.")
    else:
        lines += ["| frames | offset | confidence | LSE-D | LSE-C |", "|---|---|---|---|---|"]
        for k in ("gt", *MODES):
            s = sn[k]
            lines.append(
                f"| {LABELS[k]} | {s['offset']:.0f} | {s['confidence']:.2f} | "
                f"{s['lse_d']:.2f} | {s['lse_c']:.2f} |"
            )
    lines += ["", f"LPIPS: {r['lpips']}.", f"Evaluation time: {r['seconds']:.1f} s.", ""]
    return "\n".join(lines)


CLOSURE_LABELS = {
    "real_images": "real frames (landmarks)",
    "tracking_images": "visual tracking (landmarks on renders)",
    "audio_images": "audio-driven (landmarks on renders)",
    "tracking_geometry": "visual tracking (face model)",
    "audio_geometry": "audio-driven (face model)",
}


def lip_motion_markdown(lm: dict[str, Any] | None) -> list[str]:
    """The lip-motion section of the report (see :mod:`nvp.reenact.lips`)."""
    if not lm or "geometry" not in lm:
        return ["", "## Lip motion", "", (lm or {}).get("note", "not measured") + "."]
    lines = [
        "",
        "## Lip motion",
        "",
        "Mouth opening over time, predicted against real: Pearson r at lag 0 and at the best "
        "lag (frames, positive = prediction late), amplitude ratio (standard deviation and "
        "5-95 % range, predicted / real; 1 = the target's own motion), and the share of "
        "frames below the real 10th percentile (closed) and above its 90th (open); the real "
        "curve has 10 % / 10 % by construction.",
        "",
        "| curve | vs | r | best lag | r (best) | amplitude (std) | amplitude (5-95 %) | "
        "closed | open |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def row(label: str, ref: str, v: dict[str, Any]) -> str:
        return (
            f"| {label} | {ref} | {_f(v.get('r0'), '.3f')} | {_f(v.get('best_lag'), '.0f')} | "
            f"{_f(v.get('r_best'), '.3f')} | {_f(v.get('std_ratio'), '.2f')} | "
            f"{_f(v.get('range_ratio'), '.2f')} | {_f(v.get('closed_fraction'), '.0%')} | "
            f"{_f(v.get('open_fraction'), '.0%')} |"
        )

    g = lm["geometry"]
    lines.append(row("audio-driven expressions (face model, mm)", "tracked", g))
    for m, v in lm.get("images", {}).items():
        lines.append(row(f"{LABELS[m]} (landmarks on renders)", "real frames", v))
    lines += [
        "",
        f"Lip vertex error (LVE, max lip-vertex error per frame, mean): "
        f"{_f(g.get('lve_mm'), '.2f')} mm; face dynamics deviation (FDD, upper face, real "
        f"minus predicted motion std; > 0 = too still): {_f(g.get('fdd_mm'), '.3f')} mm.",
        "",
        f"![lip motion]({lm.get('plot', 'lips.png')})",
        "",
        "### Lip closures on bilabials (/p/ /b/ /m/)",
        "",
    ]
    c = lm.get("closures", {})
    if not c.get("applicable"):
        lines.append(f"Not applicable: {c.get('reason', 'not run')}.")
        return lines
    rates = c.get("rates", {})
    lines += [
        f"{rates.get('n_segments', 0)} bilabial phones (pocketsphinx alignment of the "
        f'transcript "{c.get("transcript", "")[:120]}"); a phone counts as closed when the '
        "opening reaches the real 10th percentile within ±1 frame.",
        "",
        "| curve | closure rate | closed / evaluated |",
        "|---|---|---|",
    ]
    for k, label in CLOSURE_LABELS.items():
        if k in rates:
            v = rates[k]
            lines.append(
                f"| {label} | {_f(v.get('rate'), '.0%')} | {v.get('n_closed')} / "
                f"{v.get('n_evaluated')} |"
            )
    return lines


def cross_speaker_markdown(r: dict[str, Any], name: str) -> str:
    """The cross-speaker report (``nvp evaluate --audio``)."""
    ref = r["reference"]
    rel = ref["sync_proxy"]
    lines = [
        f"# Lip motion of `{name}` driven by other voices",
        "",
        f"The target's own tracked mouth opening: std {ref['opening_mm_std']:.2f} mm, "
        f"5-95 % {ref['opening_mm_p5_p95'][0]:.1f}-{ref['opening_mm_p5_p95'][1]:.1f} mm. "
        "Amplitude = predicted / the target's own (1 = as much motion as the target's real "
        "speech); closed / open = share of frames below the target's 10th / above its 90th "
        "percentile (10 % / 10 % for the target itself). Images: MediaPipe landmarks on the "
        "rendered frames against the same target frames unchanged.",
        "",
        f"Sync proxy: r = {_f(rel['r_real'], '.2f')} on the target's real frames: {rel['note']}.",
        "",
        "| audio | s | amplitude (face model) | 5-95 % | closed | open | amplitude (images) "
        "| closure rate (face model) | closure rate (images) | sync proxy r (lag) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in r["audios"]:
        g, im, c, sp = a["geometry"], a["images"], a["closures"], a["sync_proxy"]
        rates = c.get("rates", {})
        cg = rates.get("audio_geometry", {}).get("rate") if c.get("applicable") else None
        ci = rates.get("audio_images", {}).get("rate") if c.get("applicable") else None
        proxy = f"{_f(sp['r'], '.2f')} ({sp['lag']})" if rel["informative"] else "uninformative"
        lines.append(
            f"| {Path(a['audio']).name} | {a['seconds']:.1f} | {_f(g['std_ratio'], '.2f')} | "
            f"{_f(g['range_ratio'], '.2f')} | {_f(g.get('closed_fraction'), '.0%')} | "
            f"{_f(g.get('open_fraction'), '.0%')} | {_f(im['std_ratio'], '.2f')} | "
            f"{_f(cg, '.0%') if cg is not None else 'n/a'} | "
            f"{_f(ci, '.0%') if ci is not None else 'n/a'} | {proxy} |"
        )
    lines += ["", f"![opening curves]({r['plot']})", ""]
    for a in r["audios"]:
        lines += [
            f"`{Path(a['audio']).name}`: mouth crops over {a.get('strip_seconds', 2):.0f} s "
            "(rendered above, the reused real frames below):",
            "",
            f"![strip]({a['strip']})",
            "",
        ]
    return "\n".join(lines)


def video_sync_proxy(path: str | Path, max_lag: int = 5) -> dict[str, Any]:
    """The offline sync proxy of any talking-head video with an audio track (e.g. the output
    of ``nvp reenact``): MediaPipe mouth opening on its frames against its own audio.

    Returns:
        ``{"lag": frames (positive = audio late), "r": correlation, "frames": N,
        "frames_with_face": n}``.
    """
    from nvp.io.audio import load_audio
    from nvp.io.video import iter_frames, probe
    from nvp.tracking.landmarks import LandmarkDetector

    info = probe(path)
    ops = []
    with LandmarkDetector() as det:
        for _, _, frame in iter_frames(path):
            lm = det(frame)
            ops.append(
                np.nan
                if lm is None
                else float(mouth_opening_2d(lm[None], "mediapipe", topology.EYE_CORNERS)[0])
            )
    op = np.asarray(ops)
    found = int(np.isfinite(op).sum())
    audio = load_audio(path, 16000)
    lag, r, _ = sync_proxy(fill_nan(op), audio, 16000, info.fps, max_lag)
    return {"lag": int(lag), "r": float(r), "frames": len(op), "frames_with_face": found}


def evaluate_target(cfg: Any, target: str | Path, out: str | Path) -> dict[str, Any] | str:
    """The ``evaluate`` stage: self-reenactment metrics of a TARGET folder on its held-out
    frames (:func:`evaluate`; returns the report dict), or with ``cfg.audio`` (files or
    folders of driving voices) the cross-speaker lip-motion report
    (:func:`evaluate_cross_speaker`; returns its Markdown). Files go to the folder ``out``.

    Raises:
        InputError: a report folder that cannot be written, ``cfg.audio`` folders without
            audio files, or a target that does not load.
        MissingDependencyError: the landmark detector of ``cfg.landmarks`` is not installed.
    """
    from nvp.config import to_object
    from nvp.io.files import check_output_dir
    from nvp.metrics.detect import check_backend
    from nvp.reenact.target import load_target

    obj = to_object(cfg) if isinstance(cfg, DictConfig) else cfg
    check_backend(obj.landmarks)
    check_output_dir(out, "report folder")
    if obj.audio:
        from nvp.reenact.lips import audio_files

        obj.audio = [str(p) for p in audio_files(obj.audio)]  # folders: their audio files
        if not obj.audio:
            raise InputError("no audio files in the given --audio folders")
    tgt = load_target(target, device=obj.device)
    if obj.audio:
        return evaluate_cross_speaker(tgt, obj, out)
    return evaluate(tgt, obj, out)
