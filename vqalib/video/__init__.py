"""Layer 1, video: probing, frame sampling and decoding (:mod:`~vqalib.video.frames`) and label-preserving
augmentation (:mod:`~vqalib.video.augment`). Imports nothing else from vqalib.

The names of :mod:`vqalib.video.frames` are re-exported here, so ``from vqalib.video import probe`` keeps working.
"""

from vqalib.video.frames import (  # noqa: F401
    PATCH_FACTOR, TEMPORAL_PATCH, VideoDecodeError, VIDEO_EXTENSIONS, decord_available, SamplingConfig,
    VideoInfo, SampledVideo, temporal_positions_distinct, num_sampled_frames, frame_indices, select_frames,
    resized_size, smart_resize, display_rotation, display_size, probe, read_frames, sample_video,
    SampleReport, sample_many, preflight,
)
