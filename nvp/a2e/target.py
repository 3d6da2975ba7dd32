"""``nvp fit-target``: a new target's person-specific mapping in closed form.

Run the trained Audio2ExpressionNet over the target's frames (filtered
audio-expressions ``a_t``, 32-d) and solve for the map ``M`` (K × 32) with
``s · M a_t ≈ e_t`` (s = the net's ``expr_scale``, e_t the target's tracked
expressions) by ridge-regularised least squares:

* ``coefficients``: ``min Σ_t ||s M a_t - e_t||² + λ ||M||²``
* ``vertex``: ``min Σ_t (s M a_t - e_t)ᵀ G (s M a_t - e_t) + λ ||M||²`` with G the
  mouth-weighted Gram matrix of the basis (the training loss's metric, mm²).

λ = ``ridge`` × mean squared norm of ``s a_t`` (scale-free). With ``intercept`` (default)
both sides are centred on their means over the fit frames and the map gets an offset
(``e_t ≈ offset + s · M a_t``); with ``gain=lips`` the motion ``s · M a_t`` is then scaled so
that its lip-vertex variance over the fit frames equals the tracked one (ridge and least
squares shrink motion). Solving takes
milliseconds; the authors' release runs 90 epochs of per-sample Adam instead.
The map is written beside the target store, named with the A2E checkpoint's
hash, with the fit error on the target's held-out frames.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from nvp.a2e.checkpoint import A2EBundle
from nvp.a2e.config import FitTargetConfig
from nvp.a2e.loss import vertex_weights, weighted_gram
from nvp.config import TrackingConfig
from nvp.data.store import SequenceStore
from nvp.errors import InputError
from nvp.tracking import topology
from nvp.tracking.face_model import FaceModel, mouth_opening
from nvp.tracking.fit import fit_sequence
from nvp.tracking.landmarks import FACE_MISSING

log = logging.getLogger(__name__)


def solve_mapping(
    x: np.ndarray,
    e: np.ndarray,
    ridge: float,
    gram: np.ndarray | None = None,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """Ridge least squares ``M`` (K, A) with ``M x_t ≈ e_t`` under the metric ``gram``:
    ``min Σ_t (M x_t - e_t)ᵀ G (M x_t - e_t) + λ ||M - M0||²``.

    Args:
        x: (n, A) inputs (already scaled by expr_scale).
        e: (n, K) targets.
        ridge: relative ridge weight: λ = ridge · n · mean_t ||x_t||² / A, so ``ridge = 1``
            weighs the prior like the data's average energy per input dimension.
        gram: (K, K) symmetric positive definite metric, None = identity.
        prior: (K, A) map M0 the ridge pulls towards (None = zeros).
    """
    x = x.astype(np.float64)
    e = e.astype(np.float64)
    S = x.T @ x
    C = e.T @ x
    M0 = np.zeros((e.shape[1], x.shape[1])) if prior is None else prior.astype(np.float64)
    lam = ridge * float((x**2).sum(1).mean()) * len(x) / x.shape[1]
    eye = np.eye(x.shape[1])
    if gram is None:
        return np.linalg.solve(S + lam * eye, (C + lam * M0).T).T
    # G M S + lam M = G C + lam M0  ->  in G's eigenbasis every row decouples.
    w, U = np.linalg.eigh(gram.astype(np.float64))
    Cp, M0p = U.T @ C, U.T @ M0
    Mp = np.stack(
        [np.linalg.solve(w[k] * S + lam * eye, w[k] * Cp[k] + lam * M0p[k]) for k in range(len(w))]
    )
    return U @ Mp


def target_expressions(store: SequenceStore, model: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    """The target's tracked expressions (N, K) in ``model``'s basis and its identity (V, 3):
    the store's own when it was fitted with that model, else refitted from its landmarks (in
    memory; the store is unchanged)."""
    if store.attrs.get("face_model", {}).get("hash") == model.hash:
        return (
            np.asarray(store["expression"][...], np.float32),
            np.asarray(store["identity"][...], np.float32),
        )
    log.info(
        "%s: refitting expressions with the checkpoint's face model %s", store.name, model.hash
    )
    t = TrackingConfig()
    fit = fit_sequence(
        np.asarray(store["landmarks"][...]),
        np.asarray(store["face_flag"][...]),
        model,
        points=t.pose_points,
        pose_sigma=t.pose_smooth_sigma,
        closed_fraction=t.identity_closed_fraction,
    )
    return fit.expression, fit.identity


@torch.no_grad()
def audio_expressions(bundle: A2EBundle, features: np.ndarray, batch: int = 256) -> np.ndarray:
    """Filtered audio-expressions of every frame of a sequence: (N, 32) float32."""
    out = bundle.net.sequence_forward(torch.as_tensor(features, dtype=torch.float32), batch=batch)
    return out["filtered"].cpu().numpy()


@torch.no_grad()
def map_expressions(
    bundle: A2EBundle, windows: np.ndarray, mapping: np.ndarray, offset: np.ndarray
) -> np.ndarray:
    """Expressions (N, K) float32 of per-frame feature windows (N, W, D) through a target's
    map: ``offset + expr_scale · mapping @ filtered audio-expression``, on the net's device."""
    dev = next(bundle.net.parameters()).device
    feats = torch.as_tensor(np.asarray(windows), dtype=torch.float32, device=dev)
    m = torch.as_tensor(mapping, dtype=torch.float32, device=dev)
    out = bundle.net.sequence_forward(feats, mapping=m)["expression"]
    return out.float().cpu().numpy() + np.asarray(offset, np.float32)


@dataclass
class FitReport:
    """Errors of the fitted mapping (and of the mean-expression baseline) on held-out frames."""

    n_fit: int
    n_eval: int
    vertex_rms_mm: float
    vertex_rms_mouth_mm: float
    mouth_opening_r: float
    baseline_vertex_rms_mm: float
    baseline_vertex_rms_mouth_mm: float
    fit_vertex_rms_mm: float
    gain: float
    seconds: float


def evaluate(
    pred: np.ndarray, target: np.ndarray, identity: np.ndarray, model: FaceModel
) -> tuple[float, float, float]:
    """Vertex RMS (mm) overall and on the lips, and the mouth-opening correlation."""
    B = model.basis
    lips = np.zeros(model.n_vertices)
    lips[topology.lip_vertices()] = 1
    d = pred - target
    g_all = weighted_gram(torch.as_tensor(B), torch.ones(model.n_vertices)).numpy()
    g_lip = weighted_gram(torch.as_tensor(B), torch.as_tensor(lips, dtype=torch.float32)).numpy()
    rms = float(np.sqrt(np.einsum("nk,kl,nl->n", d, g_all, d).mean()))
    rms_m = float(np.sqrt(np.einsum("nk,kl,nl->n", d, g_lip, d).mean()))
    op_p = mouth_opening(model.expression_vertices(identity, pred))
    op_t = mouth_opening(model.expression_vertices(identity, target))
    r = float(np.corrcoef(op_p, op_t)[0, 1]) if op_p.std() > 0 and op_t.std() > 0 else 0.0
    return rms, rms_m, r


def fit_target(bundle: A2EBundle, store: SequenceStore, cfg: FitTargetConfig) -> dict:
    """Fit, evaluate and return the mapping and its report (see the module docstring).

    Raises:
        InputError: the checkpoint has no face model, or the store's audio features differ
            from the checkpoint's.
    """
    import time

    t0 = time.perf_counter()
    model = bundle.face_model
    if model is None:
        raise InputError(
            "this A2E checkpoint carries no face model (e.g. the authors' release, whose "
            "76 blendshapes belong to a licensed model): fit-target needs one",
            path=bundle.path,
        )
    sig = store.attrs.get("features")
    if bundle.feature_signature is not None and sig != bundle.feature_signature:
        raise InputError(
            f"the store's audio features {_short(sig)} differ from the checkpoint's "
            f"{_short(bundle.feature_signature)}; preprocess the target with the same audio "
            "settings",
            path=store.path,
        )
    expr, identity = target_expressions(store, model)
    valid = np.asarray(store["face_flag"][...]) != FACE_MISSING

    def frames(splits: list[str]) -> np.ndarray:
        idx = np.concatenate([np.arange(*store.split_range(s)) for s in splits])
        return idx[valid[idx]]

    fit_idx, eval_idx = frames(cfg.fit_splits), frames(cfg.eval_splits)
    if len(fit_idx) < 32:
        raise InputError(
            f"only {len(fit_idx)} frames to fit a 32-column mapping on; use a longer target "
            "clip or more fit_splits",
            path=store.path,
        )
    ae = audio_expressions(bundle, np.asarray(store["audio_features"][...]), cfg.batch)
    s = bundle.cfg.net.expr_scale
    gram = None
    if cfg.mode == "vertex":
        w = vertex_weights(torch.as_tensor(model.mouth_weight), cfg.mouth_factor)
        gram = weighted_gram(torch.as_tensor(model.basis), w).numpy()
    prior = None
    if cfg.prior == "mean":
        prior = bundle.net.mapping.detach().mean(0).cpu().numpy()
        if prior.shape != (model.n_components, ae.shape[1]):
            raise InputError(
                f"the checkpoint's maps are {prior.shape}, the face model has "
                f"{model.n_components} components",
                path=bundle.path,
            )
    x, e = s * ae[fit_idx], expr[fit_idx]
    xm = x.mean(0) if cfg.intercept else np.zeros(x.shape[1], np.float32)
    em = e.mean(0) if cfg.intercept else np.zeros(e.shape[1], np.float32)
    M = solve_mapping(x - xm, e - em, cfg.ridge, gram, prior)
    gain = 1.0
    if cfg.gain == "lips":
        gain = lip_gain((x - xm) @ M.T, e - em, model, cfg.max_gain)
        M = gain * M
    M = M.astype(np.float32)
    offset = (em - M @ xm).astype(np.float32)
    pred = s * ae @ M.T + offset
    mean_expr = expr[fit_idx].mean(0, keepdims=True)
    ev = evaluate(pred[eval_idx], expr[eval_idx], identity, model)
    base = evaluate(np.repeat(mean_expr, len(eval_idx), 0), expr[eval_idx], identity, model)
    fit_rms = evaluate(pred[fit_idx], expr[fit_idx], identity, model)[0]
    report = FitReport(
        n_fit=len(fit_idx),
        n_eval=len(eval_idx),
        vertex_rms_mm=ev[0],
        vertex_rms_mouth_mm=ev[1],
        mouth_opening_r=ev[2],
        baseline_vertex_rms_mm=base[0],
        baseline_vertex_rms_mouth_mm=base[1],
        fit_vertex_rms_mm=fit_rms,
        gain=gain,
        seconds=time.perf_counter() - t0,
    )
    return {
        "mapping": M,
        "offset": offset,
        "report": report,
        "prediction": pred,
        "expression": expr,
    }


def lip_gain(pred: np.ndarray, target: np.ndarray, model: FaceModel, max_gain: float) -> float:
    """The factor g with equal lip-vertex variance of ``g · pred`` and ``target``.

    Args:
        pred: (n, K) centred predicted expression offsets.
        target: (n, K) centred tracked expression offsets.
        model: the face model (its basis gives the lip vertices' metric, mm).
        max_gain: upper bound of g (g is at least 1: the fit never shrinks motion further).

    Returns:
        ``clip(sqrt(Σ dᵀG d over target / Σ over pred), 1, max_gain)`` with G the lip
        vertices' Gram matrix; 1 when the prediction does not move.
    """
    lips = np.zeros(model.n_vertices, np.float32)
    lips[topology.lip_vertices()] = 1
    g = weighted_gram(torch.as_tensor(model.basis), torch.as_tensor(lips)).numpy()
    vp = float(np.einsum("nk,kl,nl->", pred, g, pred))
    vt = float(np.einsum("nk,kl,nl->", target, g, target))
    if vp <= 0:
        return 1.0
    return float(np.clip(np.sqrt(vt / vp), 1.0, max_gain))


def mapping_path(store: SequenceStore, bundle: A2EBundle) -> Path:
    """Where the mapping of ``store`` for ``bundle`` is written: beside the store."""
    return store.path.parent / f"{store.name}.a2e-{bundle.hash}.mapping.npz"


def save_mapping(
    path: Path, result: dict, bundle: A2EBundle, store: SequenceStore, cfg: FitTargetConfig
) -> Path:
    """Write the mapping ``.npz`` atomically (mapping, report, provenance)."""
    meta = {
        "a2e_checkpoint": str(bundle.path),
        "a2e_hash": bundle.hash,
        "face_model_hash": bundle.face_model.hash if bundle.face_model else None,
        "store": str(store.path),
        "expr_scale": bundle.cfg.net.expr_scale,
        "config": asdict(cfg),
        "report": asdict(result["report"]),
    }
    tmp = path.with_name(f".{path.name}.tmp.npz")
    try:
        offset = result.get("offset")
        if offset is None:
            offset = np.zeros(len(result["mapping"]), np.float32)
        np.savez(tmp, mapping=result["mapping"], offset=offset, meta=np.array(json.dumps(meta)))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_mapping(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read a mapping written by :func:`save_mapping`: the map (K, 32) float32, the offset
    (K,) float32 (zeros for a map fitted without intercept) and the metadata."""
    path = Path(path)
    if not path.is_file():
        raise InputError("mapping file not found", path=path)
    try:
        with np.load(path, allow_pickle=False) as z:
            M = z["mapping"]
            offset = z["offset"] if "offset" in z.files else np.zeros(len(M), np.float32)
            meta = json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"not a readable mapping file ({exc})", path=path) from exc
    if offset.shape != (M.shape[0],):
        raise InputError(f"offset {offset.shape} does not fit the map {M.shape}", path=path)
    return M.astype(np.float32), offset.astype(np.float32), meta


def fit_target_file(
    cfg: Any, checkpoint: str | Path, store: str | Path, out: str | Path | None = None
) -> tuple[Path, FitReport]:
    """The ``fit-target`` stage: fit a target store's map for an A2E checkpoint and save it.

    Args:
        cfg: a resolved :class:`FitTargetConfig` (``DictConfig`` or the dataclass).
        checkpoint: the A2E checkpoint or run directory (its best checkpoint).
        store: the target's sequence store.
        out: the mapping file; default beside the store, named by the checkpoint's hash.

    Returns:
        The mapping file and the fit's report (held-out errors against the baseline).
    """
    from nvp.a2e.checkpoint import load_a2e
    from nvp.config import to_object

    obj = to_object(cfg) if isinstance(cfg, DictConfig) else cfg
    bundle = load_a2e(checkpoint)
    st = SequenceStore(store)
    result = fit_target(bundle, st, obj)
    path = save_mapping(Path(out) if out else mapping_path(st, bundle), result, bundle, st, obj)
    return path, result["report"]


def _short(sig: dict | None) -> str:
    if not sig:
        return "(none)"
    keys = ("name", "dim", "window", "stride", "pad")
    return "{" + ", ".join(f"{k}={sig.get(k)}" for k in keys if k in sig) + "}"
