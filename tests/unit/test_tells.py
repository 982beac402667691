"""Issue 20 item 3: template-level tells of the score, derived from the rationale templates.

The paper's rationale-expansion prompts (its Figs. 3-6) and the project's own generator (``vqalib.data.synth``)
tie phrases other than the level keyword to the score. A scrubbed rationale (the text ASO reads pi_ref
after) must hold none of them, and scrubbing must leave no heading stub ("Overall Content Quality.").
The sentences below are built from the templates' slots, with the evidence slots held fixed, so the
scrubbed text must be the same for every level: it carries no information about the score."""

from __future__ import annotations

import pytest

from vqalib.schema.levels import DIMENSION_KEYS, KEYWORDS, LEVELS, TAG_TEXT, TAGS
from vqalib.train.collator import PAPER_TELLS, reveals_score, score_tells, scrub_rationale, short_rationale

#: The clarity prompt's own keyword list (Fig. 6), level by level.
CLARITY_WORDS = ("Poor", "Very Poor", "Very Poor", "Poor", "Satisfactory", "Good", "Excellent", "Outstanding", "Perfect")


def aesthetic_template(score: float) -> str:
    """Fig. 4's output template, filled for ``score`` (evidence slots fixed)."""
    kw = KEYWORDS[score]
    return ("Composition: The astronaut is complete and clear, with a reasonable layout.\n"
            "Color: The white suit is harmonious and natural.\n"
            "Lighting: The face is accurately exposed, with distinct layers.\n"
            f"Overall Aesthetic: The overall quality is {kw.lower()}, "
            f"{'lacking' if score < 3 else 'rich in'} aesthetics and expressiveness.")


def content_template(score: float) -> str:
    """Fig. 5's output template, filled for ``score`` (score >= 3: 'no content quality issues')."""
    kw = KEYWORDS[score]
    level = "high" if score >= 3 else "low"
    issues = ("There are no content quality issues." if score >= 3
              else "There are no content quality issues worth a deduction.")  # same evidence either side
    return (f"Foundational Content Quality: Basic content quality {level}. {issues}\n"
            "Platformity: The street scene is objective and reasonable.\n"
            "Subject Completeness: The cyclist is complete, and the scenery is clear.\n"
            "Video Theme: The video has a clear theme of city commuting. Content Richness: The video conveys "
            "information through the passing traffic details.\n"
            f"Overall Content Quality: The overall content quality is {kw.lower()}, indicating "
            f"{'a lack of' if score < 3 else 'an abundance of'} excellent content and visual presentation.")


def clarity_template(score: float) -> str:
    """Fig. 6's output template, filled for ``score`` with the clarity prompt's own keyword list."""
    kw = CLARITY_WORDS[int(round((score - 1) * 2))]
    extra = " The picture quality reaches 1080p or higher." if score == 5.0 else ""
    return ("Static Clarity: The jacket's fabric texture is natural and the colours are smooth.\n"
            "Dynamic Clarity: The person walks, and the clarity holds during the motion.\n"
            f"Overall Clarity: Overall clarity quality {kw.lower()}.{extra} Specifically, the hair strands are distinct.")


def motion_template(score: float) -> str:
    """Fig. 3's output template (it forbids restating the score; the guide's '3 being the basic passing
    score' is what a model copies)."""
    pas = " This is at the basic passing score." if score == 3.0 else ""
    return f"Dynamic Motion Quality Reason: The camera pans smoothly over the street.{pas} Motion Amplitude Reason: A person walks slowly."


TEMPLATES = {"aesthetic": aesthetic_template, "content": content_template, "clarity": clarity_template,
             "motion": motion_template}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_paper_template_sentences_scrub_to_the_same_text_at_every_level(name):
    build = TEMPLATES[name]
    scrubbed = {float(s): scrub_rationale(build(float(s))) for s in LEVELS}
    for s, text in scrubbed.items():
        assert reveals_score(text) == [], (name, s, text)
        assert text.strip(), (name, s)  # evidence is kept
    assert len(set(scrubbed.values())) == 1, scrubbed  # no information about the level is left


def test_the_issue_s_tells_are_found():
    assert reveals_score("The picture quality reaches 1080p or higher.")
    assert reveals_score("There are no content quality issues.")
    assert reveals_score("indicating a lack of excellent content and visual presentation")
    assert reveals_score("indicating an abundance of excellent content and visual presentation")
    assert reveals_score("lacking aesthetics and expressiveness")
    assert reveals_score("rich in aesthetics and expressiveness")
    for tell in PAPER_TELLS:
        assert tell.levels and tell.source


def test_scrubbing_leaves_no_heading_stub():
    text = ("Overall Content Quality: The overall content quality is good, indicating an abundance of excellent "
            "content and visual presentation.\nSubject Completeness: The cyclist is complete.")
    assert scrub_rationale(text) == "Subject Completeness: The cyclist is complete."
    assert scrub_rationale("Overall Clarity: Overall clarity quality satisfactory.") == ""
    assert scrub_rationale("Overall Aesthetic: The overall quality is poor, lacking aesthetics and expressiveness.") == ""
    # a heading whose content survives stays
    assert scrub_rationale("Lighting: The face is accurately exposed.") == "Lighting: The face is accurately exposed."


class _Phrasing:
    """Picks one of rationale_text's two phrasings (its ``rng.random() < 0.5`` switch)."""

    def __init__(self, alt: bool):
        self.value = 0.0 if alt else 0.9

    def random(self) -> float:
        return self.value


def _tag_sets(dim: str) -> list[list[str]]:
    tags = list(TAGS[dim])
    return [[]] + [[t] for t in tags] + [[a, b] for i, a in enumerate(tags) for b in tags[i + 1:]]


@pytest.mark.parametrize("dim", DIMENSION_KEYS)
def test_sample_dataset_rationales_scrub_to_a_function_of_the_tags_only(dim):
    """vqalib.data.synth writes a rationale from (level, tags, phrasing); scrubbed, it must not depend on the level."""
    from vqalib.data.synth import amplitude_tag, rationale_text

    for alt in (False, True):
        by_tags: dict[tuple, set[str]] = {}
        for s in LEVELS:
            s = float(s)
            tag_sets = [[amplitude_tag(s)]] if dim == "motion_amplitude" else _tag_sets(dim)
            for tags in tag_sets:
                key = () if dim == "motion_amplitude" else tuple(tags)  # the amount tag is a function of the level
                text = scrub_rationale(rationale_text(dim, s, tags, _Phrasing(alt)))
                assert reveals_score(text) == [], (dim, s, tags, text)
                by_tags.setdefault(key, set()).add(text)
        for key, texts in by_tags.items():
            assert len(texts) == 1, (dim, alt, key, texts)


def test_short_rationales_and_plain_evidence_reveal_nothing():
    for dim in DIMENSION_KEYS:
        if dim == "motion_amplitude":
            continue
        for tag in TAGS[dim]:
            assert reveals_score(short_rationale({dim: [tag]})) == [], tag
    assert reveals_score(short_rationale({})) == []
    for text in TAG_TEXT.values():
        if text not in ("an almost static scene", "slight motion", "moderate motion", "large, fast motion"):
            assert reveals_score(f"The video shows {text}, so fine detail is lost.") == [], text


def test_every_tell_pattern_matches_its_own_source_phrase():
    """Each generator-derived tell matches the generator's phrase verbatim (the table stays in sync)."""
    from vqalib.data import synth

    for text in synth._AMOUNT.values():
        assert reveals_score(text), text
    assert len(score_tells()) > len(PAPER_TELLS)
