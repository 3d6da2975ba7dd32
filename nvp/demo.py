"""``nvp demo``: every stage of the method, for real, at a small size, on data nvp makes itself.

Without ``--video``: espeak-ng speaks a few sentences in three voices; each recording
animates matplotlib's public-domain photo of Grace Hopper (the mouth opens with the
speech's loudness, the head moves slightly), giving three talking-head clips. Then:

1. ``preprocess`` the clips (default settings at a small crop size),
2. ``build-face-model`` over them,
3. ``train-a2e`` on the three (a short budget),
4. ``train-renderer`` of the first clip (the target; narrow strided nets, a short budget),
5. ``make-target`` (fits the target's mapping),
6. ``say`` a new sentence -> ``say.mp4`` (target crop | reenactment, with the speech),
7. ``evaluate`` self-reenactment on the target's held-out frames -> ``report/``.

With ``--video FILE`` the same runs on the user's own video (it is corpus and target).
The same code paths as the full-size runs; only sizes and budgets are small. Each stage
prints its wall time at the end.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from nvp.errors import InputError
from nvp.stages import run_stage

log = logging.getLogger(__name__)

SENTENCES = [
    (
        "en-us",
        "Neural voice puppetry turns any voice into a talking face. The audio drives the "
        "expressions, and a neural renderer paints the person.",
    ),
    (
        "en-gb",
        "Please call Stella. Ask her to bring these things with her from the store: six "
        "spoons of fresh snow peas and five thick slabs of blue cheese.",
    ),
    (
        "en-gb-scotland",
        "The rainbow is a division of white light into many beautiful colours. These take "
        "the shape of a long round arch, with its path high above.",
    ),
]
NEW_SENTENCE = "Hello! I never said this sentence before, yet here I am, saying it to you."


def run_demo(
    out: str | Path,
    video: str | Path | None = None,
    *,
    size: int = 128,
    a2e_epochs: int = 40,
    render_epochs: int = 9,
) -> dict[str, float]:
    """Run the demo into ``out``; returns the wall seconds per stage."""
    from nvp.config import CONF_DIR
    from nvp.data.store import find_stores

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    def stage(name: str, fn) -> None:
        print(f"\n=== demo: {name}", flush=True)
        t0 = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - t0

    clips = out / "clips"
    if video is None:

        def make_clips() -> None:
            from nvp.io.audio import load_audio
            from nvp.io.synthetic import make_talking_head
            from nvp.reenact.config import TTSConfig
            from nvp.reenact.tts import synthesize

            clips.mkdir(exist_ok=True)
            for i, (voice, text) in enumerate(SENTENCES):
                path = clips / f"talker{i}.mp4"
                if path.exists():
                    continue
                wav = synthesize(text, clips / f"talker{i}.wav", TTSConfig(voice=voice))
                speech = load_audio(wav, 16000)
                make_talking_head(path, size=2 * size, seed=i, speech=speech)
                print(f"  {path.name}: {speech.size / 16000:.1f} s, voice {voice}")

        stage("generate clips (TTS + animated photo)", make_clips)
        inputs = [clips]
        target_name = "talker0"
    else:
        video = Path(video)
        if not video.is_file():
            raise InputError("video not found", path=video)
        inputs = [video]
        target_name = None

    ds = out / "dataset"

    def preprocess() -> None:
        from nvp.data.preprocess import results_table

        r = run_stage("preprocess", cli=(f"crop.size={size}",), inputs=inputs, out=ds)
        print(results_table(r.results))
        print(r.summary())
        if r.failed:
            raise InputError("demo stage preprocess failed (see above)")

    stage("preprocess", preprocess)

    def face_model() -> None:
        r = run_stage("build-face-model", dataset=ds)
        print("\n".join(r.report_lines))
        print(f"face model {r.model.hash} (K = {r.model.n_components}) -> {r.path}")

    stage("build-face-model", face_model)
    stores = find_stores(ds)
    store = next((s for s in stores if s.stem == target_name), stores[0])
    from nvp.data.inspect import contact_sheet
    from nvp.data.store import SequenceStore

    sheet = contact_sheet(SequenceStore(store), out / "contact_sheet.png")
    print(f"contact sheet of the target store (landmarks, UV, mouth mask): {sheet}")
    quiet = ("trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "trainer.devices=1")
    runs: dict[str, Path] = {}

    def train_a2e() -> None:
        a2e_cli = (
            f"out={out / 'runs'}",
            f"trainer.max_epochs={a2e_epochs}",
            f"optim.decay_epochs={max(1, a2e_epochs // 2)}",
            "optim.lr=1e-3",
            *quiet,
        )
        runs["a2e"] = run_stage(
            "train-a2e", CONF_DIR / "a2e" / "tiny.yaml", cli=a2e_cli, dataset=ds
        )
        print(f"run directory: {runs['a2e']}")

    def train_renderer() -> None:
        r_cli = (f"out={out / 'runs'}", f"trainer.max_epochs={render_epochs}", *quiet)
        demo_yaml = CONF_DIR / "render" / "demo.yaml"
        runs["render"] = run_stage("train-renderer", demo_yaml, cli=r_cli, store=store)
        print(f"run directory: {runs['render']}")

    stage("train-a2e", train_a2e)
    stage("train-renderer", train_renderer)
    target = out / "target"
    if (target / "target.json").exists():
        import shutil

        shutil.rmtree(target)
    stage(
        "make-target (fit mapping)",
        lambda: print(
            "target ->",
            run_stage(
                "make-target",
                out=target,
                store=store,
                a2e=runs["a2e"],
                renderer=runs["render"],
            ),
        ),
    )
    mp4 = out / "say.mp4"

    def show(result) -> None:
        r, _ = result
        print(r.table())
        print(f"{r.n_frames} frames at {r.frames_per_s:.2f} frames/s -> {r.out}")

    if video is None:
        stage(
            "say (TTS -> reenactment)",
            lambda: show(
                run_stage(
                    "say",
                    overrides={"side_by_side": True},
                    target=target,
                    text=NEW_SENTENCE,
                    out=mp4,
                    keep_wav=True,
                )
            ),
        )
    else:
        stage(
            "reenact (the video's own audio)",
            lambda: show(
                run_stage(
                    "reenact",
                    overrides={"side_by_side": True, "min_speech_seconds": 0},
                    target=target,
                    audio=video,
                    out=mp4,
                )
            ),
        )
    report = out / "report"

    def evaluate() -> None:
        from nvp.reenact.evaluate import markdown_report

        print(markdown_report(run_stage("evaluate", target=target, out=report)))

    stage("evaluate", evaluate)
    driving = mp4.with_suffix(".wav") if video is None else Path(video)
    cross = report / "cross_speaker"
    stage(
        "lip motion of the new speech",
        lambda: print(
            run_stage("evaluate", overrides={"audio": [str(driving)]}, target=target, out=cross)
        ),
    )
    lm = json.loads((report / "metrics.json").read_text()).get("lip_motion", {})
    if "geometry" in lm:
        g = lm["geometry"]
        print(
            f"\nlip motion (held-out frames, own audio): r = {g['r0']:.2f}, amplitude "
            f"{g['std_ratio']:.2f} of the tracked motion; new speech: amplitude "
            + ", ".join(
                f"{a['geometry']['std_ratio']:.2f}"
                for a in json.loads((cross / "cross_speaker.json").read_text())["audios"]
            )
        )
    total = sum(times.values())
    print("\n=== demo finished: wall time per stage")
    for k, v in times.items():
        print(f"  {k:<40} {v:7.1f} s")
    print(f"  {'total':<40} {total:7.1f} s")
    print(
        f"\nreenactment video : {mp4}\nevaluation report : {report / 'report.md'}\n"
        f"side-by-side eval : {report / 'side_by_side.mp4'}\ntarget bundle     : {target}\n"
        f"lip motion        : {report / 'lips.png'}, {cross / 'cross_speaker.md'}\n"
        f"contact sheet     : {out / 'contact_sheet.png'}"
    )
    return times
