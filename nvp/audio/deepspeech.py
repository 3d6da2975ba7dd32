"""DeepSpeech v0.1.0 character logits (D = 29 at 50 Hz), the paper's audio features.

The ``deepspeech`` package has no wheel for current Pythons and its model is a download,
so this extractor runs the user's copy of DeepSpeech v0.1.0's frozen graph
(``output_graph.pb`` from ``deepspeech-0.1.0-models.tar.gz``) with TensorFlow, when
TensorFlow is installed. The input pipeline restates the one of VOCA's
``utils/audio_handler.py`` (reused by AD-NeRF), which follows DeepSpeech v0.1.0's own
``audioToInputVector``; the authors' released per-frame features have exactly the window
layout that code produces (see :mod:`nvp.audio.windows`):

1. the 16 kHz waveform as int16 PCM (float samples * 32768, truncated);
2. 26 MFCCs per 25 ms frame with a 10 ms step (100 Hz), computed as
   ``python_speech_features.mfcc(pcm, 16000, numcep=26)`` does: pre-emphasis 0.97,
   rectangular window, 512-point FFT power spectrum / 512, 26 triangular mel filters over
   0-8 kHz, natural log, orthonormal DCT-II, cepstral lifter 22, c0 replaced by the log
   frame energy (:func:`speech_features_mfcc`);
3. every second MFCC frame kept (50 Hz, the BiRNN stride);
4. 9 frames of context on each side (zero frames beyond the ends), flattened to
   19 * 26 = 494 values per step;
5. normalised with the mean and standard deviation of the whole array (one scalar each);
6. fed as ``deepspeech/input_node`` (1, T, 494) with ``deepspeech/input_lengths`` [T]; the
   output ``deepspeech/logits`` (T, 1, 29) is time-major; the raw logits (before softmax)
   are the features.

Timing: output row r comes from MFCC frame 2r, whose window spans samples
[320 r, 320 r + 400), i.e. it is centred at r / 50 s + 12.5 ms. Like VOCA and AD-NeRF,
which resample these rows with timestamps r / 50, this module places row r at r / 50 s
and ignores the 12.5 ms offset.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from nvp.audio._common import SAMPLE_RATE, as_mono_float32
from nvp.errors import InputError, MissingDependencyError
from nvp.io.files import file_sha256

#: MFCC coefficients per 10 ms frame that DeepSpeech v0.1.0 was trained on.
N_CEPSTRUM = 26
#: Context frames on each side of a step.
N_CONTEXT = 9
#: DeepSpeech v0.1.0's alphabet size (a-z, space, apostrophe, CTC blank).
N_LOGITS = 29

_DOWNLOAD_HINT = (
    "download deepspeech-0.1.0-models.tar.gz from "
    "https://github.com/mozilla/DeepSpeech/releases/tag/v0.1.0, unpack it and set "
    "audio.deepspeech_graph to its models/output_graph.pb"
)


def speech_features_mfcc(
    signal: np.ndarray, sample_rate: int = 16000, n_cep: int = 26
) -> np.ndarray:
    """MFCCs of ``python_speech_features.mfcc(signal, sample_rate, numcep=n_cep)``, the input
    DeepSpeech v0.1.0 was trained on (25 ms frames, 10 ms step, the last frame zero-padded,
    26 filters, 512-point FFT, pre-emphasis 0.97, lifter 22, rectangular window, c0 replaced
    by the log frame energy).

    Args:
        signal: (S,) waveform in any scale (DeepSpeech uses int16 PCM values).

    Returns:
        (n_frames, n_cep) float64 with n_frames = 1 + ceil((S - 400) / 160) (1 if S <= 400).
    """
    from python_speech_features import mfcc

    return mfcc(np.asarray(signal, dtype=np.float64), sample_rate, numcep=n_cep)


def deepspeech_input_vector(
    pcm: np.ndarray, n_cep: int = N_CEPSTRUM, n_context: int = N_CONTEXT
) -> np.ndarray:
    """DeepSpeech v0.1.0's network input: strided MFCCs with context, globally normalised.

    Args:
        pcm: (S,) 16 kHz waveform as int16 PCM values.

    Returns:
        (T, (2 * n_context + 1) * n_cep) float32 with T = ceil(n_mfcc_frames / 2); zero
        context beyond the ends; normalised to mean 0, std 1 over the whole array.
    """
    feats = speech_features_mfcc(pcm, SAMPLE_RATE, n_cep)[::2]
    n_steps = feats.shape[0]
    empty = np.zeros((n_context, n_cep), dtype=feats.dtype)
    padded = np.concatenate([empty, feats, empty])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * n_context + 1, axis=0)
    inputs = windows.transpose(0, 2, 1).reshape(n_steps, -1)
    inputs = (inputs - inputs.mean()) / inputs.std()
    return inputs.astype(np.float32)


class DeepSpeechExtractor:
    """DeepSpeech v0.1.0 logits from a user-supplied frozen graph (needs TensorFlow).

    See the module docstring for the exact pipeline. Construction fails early, with
    :class:`~nvp.errors.MissingDependencyError`, when TensorFlow or the graph file is
    missing; the graph is loaded on the first call and kept by the object.

    Output: ``(ceil(n_mfcc_frames / 2), 29)`` float32 raw logits at 50 Hz, row r at
    r / 50 s (centred at r / 50 s + 12.5 ms; see the module docstring).
    """

    name = "deepspeech"
    dim = N_LOGITS
    rate_hz = 50.0

    def __init__(self, graph_path: str | Path | None) -> None:
        problems = []
        if importlib.util.find_spec("tensorflow") is None:
            problems.append("TensorFlow (pip install tensorflow-cpu or tensorflow)")
        if graph_path is None:
            problems.append(f"DeepSpeech v0.1.0's frozen graph ({_DOWNLOAD_HINT})")
        elif not Path(graph_path).is_file():
            problems.append(f"the graph file {graph_path} (not found; {_DOWNLOAD_HINT})")
        if problems:
            raise MissingDependencyError(
                "the 'deepspeech' audio features need "
                + " and ".join(problems)
                + "; or import precomputed features with audio.precomputed, or choose "
                "another extractor (audio.name=mel, mfcc or whisper)"
            )
        self.graph_path = Path(graph_path)  # type: ignore[arg-type]
        self._session: Any = None
        self._tensors: tuple[Any, Any, Any] | None = None

    def identity(self) -> dict[str, Any]:
        """What identifies the numbers: the graph file's hash."""
        return {"graph_sha256": file_sha256(self.graph_path)}

    def _load(self) -> None:
        tf = importlib.import_module("tensorflow").compat.v1
        graph_def = tf.GraphDef()
        graph_def.ParseFromString(self.graph_path.read_bytes())
        graph = tf.Graph()
        with graph.as_default():
            tf.import_graph_def(graph_def, name="deepspeech")
        try:
            tensors = (
                graph.get_tensor_by_name("deepspeech/input_node:0"),
                graph.get_tensor_by_name("deepspeech/input_lengths:0"),
                graph.get_tensor_by_name("deepspeech/logits:0"),
            )
        except KeyError as err:
            raise InputError(
                f"not a DeepSpeech v0.1.0 graph ({err}); it needs the tensors input_node, "
                "input_lengths and logits",
                path=self.graph_path,
            ) from err
        self._session = tf.Session(graph=graph)
        self._tensors = tensors

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Run DeepSpeech on a waveform.

        Args:
            audio: (S,) float32 mono waveform at 16 kHz in [-1, 1].

        Returns:
            (T, 29) float32 logits at 50 Hz.
        """
        audio = as_mono_float32(audio)
        if self._session is None:
            self._load()
        assert self._tensors is not None
        pcm = np.clip(audio.astype(np.float64) * 32768.0, -32768, 32767).astype(np.int16)
        inputs = deepspeech_input_vector(pcm)
        input_node, input_lengths, logits = self._tensors
        out = self._session.run(
            logits, feed_dict={input_node: inputs[np.newaxis], input_lengths: [inputs.shape[0]]}
        )
        out = np.asarray(out)
        if out.ndim == 3:  # time-major (T, batch = 1, 29)
            out = out[:, 0]
        return np.ascontiguousarray(out, dtype=np.float32)
