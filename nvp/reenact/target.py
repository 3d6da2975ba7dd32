"""The TARGET bundle: everything ``nvp reenact`` / ``say`` / ``evaluate`` need for one person.

A target is a folder made by ``nvp make-target``::

    TARGET/
      target.json     format, name, what each file is, and the hashes that tie them together
      a2e.ckpt        the Audio2Expression checkpoint (weights, config, embedded face model)
      mapping.npz     the target's person-specific map (K x 32), fitted for that checkpoint
      renderer.ckpt   the neural texture + renderer weights and config (no optimizer state)

and a reference to the target's sequence store (``store.path`` in ``target.json``; stores
are large, so they are not copied). ``target.json`` records the store's source-video hash,
face-model hash and audio-feature signature, and the content hash of each of the three
files; :func:`load_target` checks that no file changed since it was made (a file altered in
place is named, not used) and that every part agrees:

* the mapping was fitted for this A2E checkpoint (its hash),
* the A2E checkpoint's face model is the store's (same basis and UVs as the renderer saw),
* the A2E checkpoint's audio features are the store's (reenactment extracts the same ones),
* the renderer was trained on this store (source hash and face model),

and raises :class:`~nvp.errors.InputError` naming the mismatch otherwise.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nvp.a2e.checkpoint import A2EBundle, load_a2e
from nvp.config import atomic_write_text
from nvp.data.store import SequenceStore
from nvp.errors import InputError
from nvp.io.files import file_sha256
from nvp.render.module import NeuralRendererModule
from nvp.tracking.face_model import FaceModel

log = logging.getLogger(__name__)

FORMAT = "nvp-target"
VERSION = 1
MANIFEST = "target.json"


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _checkpoint_file(path: str | Path, what: str) -> Path:
    from nvp.training import run_checkpoint

    p = run_checkpoint(path)  # a run directory: its best (else last) checkpoint
    if not p.is_file():
        raise InputError(f"{what} checkpoint not found", path=p)
    return p


def _read_renderer(path: Path) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"not a readable checkpoint ({exc})", path=path) from exc
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hp or "cfg" not in hp or "state_dict" not in ckpt or "texture" not in hp["cfg"]:
        raise InputError("not an nvp renderer checkpoint (from `nvp train-renderer`)", path=path)
    return ckpt


def load_renderer(path: str | Path, device: str | torch.device = "cpu") -> NeuralRendererModule:
    """Rebuild a :class:`NeuralRendererModule` (eval mode) from its checkpoint alone."""
    path = _checkpoint_file(path, "renderer")
    return _renderer_from(_read_renderer(path), path, device)


def _renderer_from(
    ckpt: dict[str, Any], path: Path, device: str | torch.device
) -> NeuralRendererModule:
    hp = ckpt["hyper_parameters"]
    module = NeuralRendererModule(hp["cfg"], target=hp.get("target"))
    missing, unexpected = module.load_state_dict(ckpt["state_dict"], strict=False)
    bad = [k for k in [*missing, *unexpected] if not k.startswith("val_metrics")]
    if bad:
        raise InputError(f"renderer weights do not fit its config: {bad[:4]}...", path=path)
    return module.eval().to(device)


@dataclass
class Target:
    """A loaded, checked target bundle."""

    path: Path
    name: str
    store: SequenceStore
    a2e: A2EBundle
    mapping: np.ndarray
    """(K, A) float32 person-specific map."""
    offset: np.ndarray
    """(K,) float32 expression offset of the map (the target's mean expression)."""
    renderer: NeuralRendererModule
    face_model: FaceModel
    device: torch.device
    manifest: dict

    @property
    def fps(self) -> float:
        return self.store.fps

    @property
    def size(self) -> int:
        return self.store.size

    @torch.inference_mode()
    def expressions(self, windows: np.ndarray) -> np.ndarray:
        """Expressions (N, K) of a sequence of per-frame audio feature windows (N, W, D): the
        A2E net's filtered audio-expressions through the target's map, plus its offset."""
        from nvp.a2e.target import map_expressions

        return map_expressions(self.a2e, windows, self.mapping, self.offset)


def _store_info(store: SequenceStore) -> dict[str, Any]:
    return {
        "path": str(store.path.resolve()),
        "name": store.name,
        "source_sha256": store.attrs.get("source", {}).get("sha256"),
        "face_model_hash": store.attrs.get("face_model", {}).get("hash"),
        "features": store.attrs.get("features"),
        "fps": store.fps,
        "size": store.size,
        "n_frames": store.n_frames,
    }


def check_compatible(
    store: SequenceStore, a2e: A2EBundle, mapping: np.ndarray, meta: dict, renderer_hp: dict
) -> None:
    """Raise :class:`InputError` if the parts of a target do not belong together."""
    sinfo = _store_info(store)
    if meta.get("a2e_hash") != a2e.hash:
        raise InputError(
            f"the mapping was fitted for A2E checkpoint {meta.get('a2e_hash')}, not for "
            f"{a2e.path} ({a2e.hash}); run `nvp fit-target` with this checkpoint",
            path=a2e.path,
        )
    if a2e.face_model is None:
        raise InputError(
            "this A2E checkpoint carries no face model (the authors' release?): a target "
            "needs one to build meshes",
            path=a2e.path,
        )
    if a2e.face_model.hash != sinfo["face_model_hash"]:
        raise InputError(
            f"incompatible A2E checkpoint: its face model {a2e.face_model.hash} is not the "
            f"target store's {sinfo['face_model_hash']} (preprocess the target with "
            "face_model=<the corpus face_model.npz>)",
            path=a2e.path,
        )
    if a2e.feature_signature is not None and a2e.feature_signature != sinfo["features"]:
        raise InputError(
            "incompatible A2E checkpoint: it was trained on other audio features than the "
            "target store holds",
            path=a2e.path,
        )
    k, a = a2e.face_model.n_components, a2e.cfg.net.audio_expr_dim
    if mapping.shape != (k, a):
        raise InputError(f"mapping is {mapping.shape}, the A2E checkpoint needs {(k, a)}")
    tgt = renderer_hp.get("target") or {}
    if tgt.get("source_sha256") and tgt["source_sha256"] != sinfo["source_sha256"]:
        raise InputError(
            f"the renderer was trained on another video (store {tgt.get('store')})",
        )
    if tgt.get("face_model_hash") and tgt["face_model_hash"] != sinfo["face_model_hash"]:
        raise InputError(
            "the renderer was trained on UV maps of another face model than the store's"
        )
    if tgt.get("size") and int(tgt["size"]) != store.size:
        raise InputError(f"the renderer was trained at {tgt['size']} px, the store is {store.size}")


def make_target(
    out: str | Path,
    store: str | Path,
    a2e: str | Path,
    renderer: str | Path,
    mapping: str | Path | None = None,
    *,
    name: str | None = None,
) -> Path:
    """Assemble a TARGET folder (see the module docstring); returns its path.

    Args:
        out: the folder to write (must not hold another target).
        store: the target's sequence store.
        a2e: A2E checkpoint (``.ckpt`` or run directory).
        renderer: renderer checkpoint (``.ckpt`` or run directory of ``nvp train-renderer``).
        mapping: the mapping ``.npz`` of ``nvp fit-target``; default: the one beside the
            store for this checkpoint, fitted now (default settings) when absent.

    Raises:
        InputError: a part is missing or the parts do not belong together.
    """
    from nvp.a2e.config import FitTargetConfig
    from nvp.a2e.target import fit_target, load_mapping, mapping_path, save_mapping

    out = Path(out)
    if (out / MANIFEST).exists():
        raise InputError("already holds a target (choose another folder)", path=out)
    st = SequenceStore(store)
    bundle = load_a2e(a2e)
    rpath = _checkpoint_file(renderer, "renderer")
    rckpt = _read_renderer(rpath)
    if mapping is None:
        mapping = mapping_path(st, bundle)
        if not Path(mapping).exists():
            log.info("fitting the target mapping for %s (default settings)", bundle.path)
            cfg = FitTargetConfig()
            save_mapping(Path(mapping), fit_target(bundle, st, cfg), bundle, st, cfg)
    M, _, meta = load_mapping(mapping)
    check_compatible(st, bundle, M, meta, rckpt["hyper_parameters"])

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    shutil.copyfile(bundle.path, tmp / "a2e.ckpt")
    shutil.copyfile(mapping, tmp / "mapping.npz")
    lean = {"state_dict": rckpt["state_dict"], "hyper_parameters": rckpt["hyper_parameters"]}
    torch.save(lean, tmp / "renderer.ckpt")
    for f in ("a2e.ckpt", "mapping.npz", "renderer.ckpt"):
        (tmp / f).replace(out / f)
    tmp.rmdir()
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "name": name or st.name,
        "store": _store_info(st),
        "a2e": {"file": "a2e.ckpt", "hash": bundle.hash, "source": str(bundle.path)},
        "mapping": {
            "file": "mapping.npz",
            "sha256": file_sha256(out / "mapping.npz"),
            "source": str(mapping),
            "report": meta.get("report"),
        },
        "renderer": {
            "file": "renderer.ckpt",
            "sha256": file_sha256(out / "renderer.ckpt"),
            "source": str(rpath),
        },
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2))  # last: marks complete
    return out


#: The parts of a target whose content hash ``target.json`` records, and the hash's key.
HASHED_PARTS = (("a2e", "hash"), ("mapping", "sha256"), ("renderer", "sha256"))


def verify_files(folder: Path, manifest: dict) -> None:
    """Check every part of a target against the content hash ``target.json`` records for it
    (targets made before a part's hash was recorded skip that part).

    Raises:
        InputError: a part is missing, or its content changed since ``nvp make-target``
            (names the file, the recorded and the actual hash).
    """
    for part, key in HASHED_PARTS:
        entry = manifest.get(part) or {}
        want = entry.get(key)
        f = folder / entry.get("file", f"{part}")
        if not f.is_file():
            raise InputError(f"the target's {part} file is missing", path=f)
        if not want:
            continue
        got = file_sha256(f, len(want))
        if got != want:
            raise InputError(
                f"this file was altered after `nvp make-target` (sha256 {got}, target.json "
                f"records {want}): restore it, or rebuild the target with `nvp make-target`",
                path=f,
            )


def load_target(path: str | Path, device: str = "auto", store: str | Path | None = None) -> Target:
    """Load and check a TARGET folder (see the module docstring).

    Args:
        path: the target folder (or its ``target.json``).
        device: where the networks run (``auto`` = CUDA when available).
        store: use this store path instead of the recorded one (e.g. after moving it).

    Raises:
        InputError: not a target, a part missing or altered since it was made (content
            hashes), or parts that do not belong together.
    """
    p = Path(path)
    if p.name == MANIFEST:
        p = p.parent
    mf = p / MANIFEST
    if not mf.is_file():
        raise InputError(f"not a target folder (no {MANIFEST}; see `nvp make-target`)", path=p)
    try:
        manifest = json.loads(mf.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"corrupt manifest ({exc})", path=mf) from exc
    if manifest.get("format") != FORMAT:
        raise InputError(f"not an nvp target manifest (format {manifest.get('format')!r})", path=mf)
    spath = Path(store) if store else Path(manifest["store"]["path"])
    if not spath.exists():
        raise InputError(
            "the target's sequence store is missing (moved? pass its new path with --store)",
            path=spath,
        )
    st = SequenceStore(spath)
    want = manifest["store"].get("source_sha256")
    if want and st.attrs.get("source", {}).get("sha256") != want:
        raise InputError("this store was built from another video than the target's", path=spath)
    verify_files(p, manifest)
    dev = resolve_device(device)
    bundle = load_a2e(p / manifest["a2e"]["file"], map_location="cpu")
    from nvp.a2e.target import load_mapping

    M, offset, meta = load_mapping(p / manifest["mapping"]["file"])
    rfile = _checkpoint_file(p / manifest["renderer"]["file"], "renderer")
    rckpt = _read_renderer(rfile)
    check_compatible(st, bundle, M, meta, rckpt["hyper_parameters"])
    renderer = _renderer_from(rckpt, rfile, dev)
    bundle.net.to(dev)
    assert bundle.face_model is not None  # checked above
    return Target(
        path=p,
        name=manifest.get("name", st.name),
        store=st,
        a2e=bundle,
        mapping=M.astype(np.float32),
        offset=offset,
        renderer=renderer,
        face_model=bundle.face_model,
        device=dev,
        manifest=manifest,
    )
