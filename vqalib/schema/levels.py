"""The five quality dimensions, the 9-level score grid and the per-level keywords, defined once.

Every other module takes its vocabulary from here: dimension names and keys, the grid
``1.0, 1.5, ..., 5.0``, the level strings the model writes (``"3.5"``), the evaluation keyword
for each level and the sub-attribute tags of each dimension.

Rounding rule (used everywhere a value is put on the grid): round half *up* to the nearest
0.5 step, then clip to [1.0, 5.0].  ``snap_to_grid(3.25) == 3.5`` and ``snap_to_grid(3.24) == 3.0``.
Half-up (not Python's banker's rounding) keeps the rule monotone and easy to state.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

#: Display names, in the order the model writes them.
DIMENSIONS: tuple[str, ...] = (
    "Motion Quality",
    "Motion Amplitude",
    "Aesthetic Quality",
    "Content Quality",
    "Clarity Quality",
)

#: Machine keys (column names, JSON fields), same order as :data:`DIMENSIONS`.
DIMENSION_KEYS: tuple[str, ...] = (
    "motion_quality",
    "motion_amplitude",
    "aesthetic_quality",
    "content_quality",
    "clarity_quality",
)

NAME_OF: dict[str, str] = dict(zip(DIMENSION_KEYS, DIMENSIONS))
KEY_OF: dict[str, str] = dict(zip(DIMENSIONS, DIMENSION_KEYS))

SCORE_MIN: float = 1.0
SCORE_MAX: float = 5.0
STEP: float = 0.5

#: The 9 levels as floats.
LEVELS: np.ndarray = np.arange(SCORE_MIN, SCORE_MAX + STEP / 2, STEP)
LEVELS.setflags(write=False)
N_LEVELS: int = len(LEVELS)

#: The exact strings the model writes for each level.
LEVEL_STRINGS: tuple[str, ...] = tuple(f"{v:.1f}" for v in LEVELS)

#: Evaluation keyword per level, as the paper's rationale prompts list them (its Figs. 4 and 5,
#: "from lowest to highest: Abysmal, Terrible, Poor, Subpar, Acceptable, Good, Excellent,
#: Outstanding, Perfect"); used in rationales and prompts.  (The clarity prompt, Fig. 6, prints a
#: garbled list with repeats — "Poor, Very Poor, Very Poor, Poor, Satisfactory, …" — so the
#: Figs. 4/5 list is used for all five dimensions.)
KEYWORDS: dict[float, str] = {
    1.0: "Abysmal",
    1.5: "Terrible",
    2.0: "Poor",
    2.5: "Subpar",
    3.0: "Acceptable",
    3.5: "Good",
    4.0: "Excellent",
    4.5: "Outstanding",
    5.0: "Perfect",
}

#: Words that name a level in a rationale: the nine keywords plus the other level words the paper's
#: prompts use (Fig. 6: "Very Poor", "Satisfactory") and common synonyms.  A teacher-forced text that
#: contains one of them gives the score away (see ``vqalib.train.collator.scrub_rationale``).
SCORE_WORDS: tuple[str, ...] = tuple(KEYWORDS.values()) + (
    "Very Poor", "Satisfactory", "Mediocre", "Fair", "Decent", "Average", "Bad", "Great", "Terrific",
)

#: Sub-attribute tags per dimension (what a rater may tick when a level is below perfect).
#: Motion Amplitude describes *how much* motion there is, so its tags name the amount.
TAGS: dict[str, tuple[str, ...]] = {
    "motion_quality": ("camera_shake", "stutter", "flicker"),
    "motion_amplitude": ("static", "slight_motion", "moderate_motion", "large_motion"),
    "aesthetic_quality": ("exposure_error", "abnormal_colour", "poor_composition"),
    "content_quality": ("subtitle_watermark", "black_borders", "screen_in_screen", "meaningless_content"),
    "clarity_quality": ("blur", "noise", "blocking", "low_resolution"),
}

#: Short human descriptions of the tags (for rationales and data cards).
TAG_TEXT: dict[str, str] = {
    "camera_shake": "camera shake",
    "stutter": "stuttering, dropped frames",
    "flicker": "brightness flicker",
    "static": "an almost static scene",
    "slight_motion": "slight motion",
    "moderate_motion": "moderate motion",
    "large_motion": "large, fast motion",
    "exposure_error": "exposure error",
    "abnormal_colour": "an abnormal colour cast",
    "poor_composition": "a tilted or cut-off composition",
    "subtitle_watermark": "subtitle or watermark overlays",
    "black_borders": "black borders",
    "screen_in_screen": "a screen-in-screen layout",
    "meaningless_content": "meaningless content",
    "blur": "blur",
    "noise": "noise",
    "blocking": "compression blocking",
    "low_resolution": "low resolution (upscaled)",
}


def dimension_key(name: str) -> str:
    """Return the machine key for a dimension given its key or display name (case-insensitive).

    Raises ``ValueError`` naming the valid choices for anything else.
    """
    text = str(name).strip()
    low = text.lower().replace("-", "_").replace(" ", "_")
    if low in DIMENSION_KEYS:
        return low
    for disp, key in KEY_OF.items():
        if disp.lower() == text.lower():
            return key
    raise ValueError(
        f"unknown dimension {name!r}; use one of {list(DIMENSION_KEYS)} (or the display names {list(DIMENSIONS)})"
    )


def round_half_up(x, step: float = STEP):
    """Round to the nearest multiple of ``step``, ties going up (3.25 -> 3.5)."""
    arr = np.asarray(x, dtype=float)
    out = np.floor(arr / step + 0.5) * step
    return float(out) if np.ndim(out) == 0 else out


def snap_to_grid(x):
    """Put a value (or array) on the 9-level grid: round half up to 0.5, clip to [1, 5]. NaN stays NaN."""
    out = np.clip(round_half_up(x), SCORE_MIN, SCORE_MAX)
    return float(out) if np.ndim(out) == 0 else out


def is_on_grid(x, atol: float = 1e-9):
    """True where ``x`` is one of the 9 levels (within ``atol``)."""
    arr = np.asarray(x, dtype=float)
    ok = (arr >= SCORE_MIN - atol) & (arr <= SCORE_MAX + atol) & (np.abs(arr / STEP - np.round(arr / STEP)) <= atol / STEP)
    return bool(ok) if np.ndim(ok) == 0 else ok


def level_index(x):
    """Index 0..8 of a grid value (or array of them). Raises ``ValueError`` for off-grid values."""
    arr = np.asarray(x, dtype=float)
    if not np.all(is_on_grid(arr)):
        bad = arr[~np.asarray(is_on_grid(arr))] if arr.ndim else arr
        raise ValueError(f"value(s) {np.atleast_1d(bad)[:5].tolist()} not on the grid {LEVEL_STRINGS}; snap_to_grid() first")
    idx = np.rint((arr - SCORE_MIN) / STEP).astype(int)
    return int(idx) if idx.ndim == 0 else idx


def level_string(x) -> str:
    """The exact string the model writes for a grid value: ``level_string(3.5) == "3.5"``."""
    return LEVEL_STRINGS[level_index(x)]


def keyword(x) -> str:
    """The evaluation keyword of the level nearest ``x`` (snapped with :func:`snap_to_grid`)."""
    return KEYWORDS[snap_to_grid(x)]


def check_tags(dimension: str, tags: Iterable[str]) -> list[str]:
    """Return the tags of ``tags`` that are not valid for ``dimension`` (empty list if all valid)."""
    valid = set(TAGS[dimension_key(dimension)])
    return [t for t in tags if t not in valid]
