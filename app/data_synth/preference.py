"""The synthetic preference twin: for each image, one question with the answer its pixels give (``chosen``) and the
answer another image gives to the same question (``rejected``: the wrong side, organ, finding or yes/no).

Both answers are phrased alike, so only the image tells them apart: a model prefers the chosen one only as far
as it reads the image. Written in the layouts the preference readers take: LLaVA-style (``llava-preference``)
and RLAIF-V's field names (``rlaif-v``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from medzoo import IMAGE_PLACEHOLDER
from medzoo.app.data_synth.images import SynthImage
from medzoo.app.data_synth.questions import QA, questions_for


def wrong_answers(images: Sequence[SynthImage]) -> dict[tuple[str, str], dict[str, str]]:
    """(domain, question key) -> {short answer: the conversational answer of an image giving it}."""
    answers: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for image in images:
        for qa in questions_for(image):
            answers[(image.domain, qa.key)].setdefault(qa.answer, qa.conversational_answer)
    return answers


def preference_pairs(images: Sequence[SynthImage], rng: np.random.Generator) -> list[tuple[SynthImage, QA, str]]:
    """(image, question, rejected answer) for every image with a question some other image answers otherwise."""
    answers = wrong_answers(images)
    pairs = []
    for image in images:
        options = []
        for qa in questions_for(image):
            others = sorted(text for answer, text in answers[(image.domain, qa.key)].items()
                            if answer != qa.answer and text != qa.conversational_answer)
            if others:
                options.append((qa, others))
        if not options:
            continue
        qa, others = options[int(rng.integers(len(options)))]
        pairs.append((image, qa, others[int(rng.integers(len(others)))]))
    return pairs


def _question(qa: QA, rng: np.random.Generator) -> str:
    text = qa.question if rng.random() < 0.5 else qa.paraphrase
    return f"{IMAGE_PLACEHOLDER}\n{text}" if rng.random() < 0.5 else f"{text}\n{IMAGE_PLACEHOLDER}"


def llava_preference_records(images: Sequence[SynthImage], rng: np.random.Generator) -> list[dict[str, Any]]:
    """``{"id", "image", "conversations": [the question], "chosen", "rejected", "question_key", "closed"}``."""
    return [{"id": f"{image.image_id}-pref", "image": image.relative_path,
             "conversations": [{"from": "human", "value": _question(qa, rng)}],
             "chosen": qa.conversational_answer, "rejected": rejected, "question_key": qa.key, "closed": qa.closed}
            for image, qa, rejected in preference_pairs(images, rng)]


def rlaif_v_records(images: Sequence[SynthImage], rng: np.random.Generator) -> list[dict[str, Any]]:
    """RLAIF-V's fields, the image as ``image_path`` under the image root (the question holds no ``<image>``)."""
    return [{"ds_name": "medzoo-synth", "image": None, "question": qa.question, "chosen": qa.conversational_answer,
             "rejected": rejected, "origin_dataset": image.domain, "origin_split": f"synthetic {qa.key}",
             "idx": f"{image.image_id}-rlaifv", "image_path": image.relative_path}
            for image, qa, rejected in preference_pairs(images, rng)]
