"""Video and audio input/output.

- :func:`probe`, :func:`iter_frames`: read videos, optionally resampled by timestamps
  to a constant frame rate (handles 30 fps and variable-frame-rate recordings).
- :func:`load_audio`: the audio track of any video or audio file as mono float32 at a
  chosen sample rate.
- :func:`write_video`, :func:`write_wav`: H.264/AAC MP4 and WAV output, written atomically.
- :mod:`nvp.io.synthetic`: a synthetic talking-head clip (built from a public-domain
  photo shipped with matplotlib) and other test clips, so that the pipeline can be tried
  without any user data.
"""

from nvp.io.audio import load_audio, write_wav
from nvp.io.video import VideoInfo, iter_frames, probe, resampled_frame_count, write_video

__all__ = [
    "VideoInfo",
    "iter_frames",
    "load_audio",
    "probe",
    "resampled_frame_count",
    "write_video",
    "write_wav",
]
