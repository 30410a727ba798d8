"""Record builders and file writers, one per dataset format (the formats are those of the original releases)."""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medzoo.app.data_synth import sampling
from medzoo.app.data_synth.captions import caption_and_mentions, figure_label
from medzoo.app.data_synth.drawing import IMAGE_SIZE
from medzoo.app.data_synth.images import SynthImage
from medzoo.app.data_synth.questions import (
    COLONINST_CAPTIONS,
    COLONINST_TEMPLATES,
    QA,
    format_box,
    questions_for,
)
from medzoo.core.atomic_writes import write_atomically
from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER
from medzoo.plugins.datasets.pmc_captions import caption_prompt

Candidate = tuple[SynthImage, QA, str, str]  # image, question, phrasing tag, question text

_VQA_RAD_ORGAN = {"cxr": "CHEST", "brain": "HEAD", "liver": "ABD", "kidney": "ABD", "lung": "CHEST"}
_SLAKE_MODALITY = {"cxr": "X-Ray", "ct": "CT", "mri": "MRI"}
_SLAKE_LOCATION = {"cxr": "Chest_lung", "brain": "Brain", "liver": "Abdomen", "kidney": "Abdomen", "lung": "Chest_lung"}


# -- file writing ---------------------------------------------------------------------------------------------

def write_json(path: Path, records: Any) -> None:
    write_atomically(path, json.dumps(records, indent=1, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    write_atomically(path, "".join(line + "\n" for line in lines))


def write_pickle(path: Path, records: list[dict[str, Any]]) -> None:
    write_atomically(path, pickle.dumps(records, protocol=4))


# -- question selection -----------------------------------------------------------------------------------------

def _candidates(images: Sequence[SynthImage], phrasings: Sequence[str] = ("freeform", "para")) -> list[Candidate]:
    candidates = []
    for image in images:
        for qa in questions_for(image):
            for tag in phrasings:
                text = {"freeform": qa.question, "para": qa.paraphrase, "zh": qa.zh_question}[tag]
                if text:
                    candidates.append((image, qa, tag, text))
    return candidates


def _select(candidates: list[Candidate], target: int, rng: np.random.Generator, zh: bool = False) -> list[Candidate]:
    """About ``target`` candidates, spread over question texts, with varied answers per text."""
    texts = {candidate[3] for candidate in candidates}
    if not texts or target <= 0:
        return []
    per_text = max(2, math.ceil(target / len(texts)))

    def answer(candidate: Candidate) -> str:
        return (candidate[1].zh_answer if zh else candidate[1].answer) or ""

    return sampling.select_balanced(candidates, per_text, lambda c: c[3], answer, rng)


# -- PMC captions and LLaVA-Med ---------------------------------------------------------------------------------

def pmc_caption_records(images: Sequence[SynthImage], rng: np.random.Generator) -> list[dict[str, Any]]:
    records = []
    for image in images:
        label = figure_label(rng)
        caption, mentions = caption_and_mentions(image, label, rng)
        records.append({"pair_id": image.image_id, "image": image.relative_path, "fig_label": label,
                        "fig_caption": caption, "in_text_mention": mentions, "domain": image.domain})
    return records


def alignment_records(captions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stage-1 llava-json: each caption behind a describe-the-figure instruction (as ``pmc-captions`` reads it)."""
    return [{"id": row["pair_id"], "image": row["image"], "conversations": [
        {"from": "human", "value": caption_prompt(row["pair_id"])},
        {"from": "gpt", "value": row["fig_caption"]},
    ]} for row in captions]


def instruct_records(images: Sequence[SynthImage], rng: np.random.Generator) -> list[dict[str, Any]]:
    """Stage-2 llava-json: 2-3 turn conversations whose answers are read off the image."""
    records = []
    for image in images:
        bank = questions_for(image)
        turns = min(len(bank), int(rng.integers(2, 4)))
        conversation = []
        for position, choice in enumerate(rng.permutation(len(bank))[:turns]):
            qa = bank[int(choice)]
            question = qa.question
            if position == 0:
                question = f"{IMAGE_PLACEHOLDER}\n{question}" if rng.random() < 0.5 else f"{question}\n{IMAGE_PLACEHOLDER}"
            conversation += [{"from": "human", "value": question}, {"from": "gpt", "value": qa.conversational_answer}]
        records.append({"id": image.image_id, "image": image.relative_path, "conversations": conversation})
    return records


# -- VQA-RAD, SLAKE, PathVQA ------------------------------------------------------------------------------------

def _organ(image: SynthImage) -> str:
    return "cxr" if image.domain == "cxr" else image.findings["organ"]


def vqa_rad_records(
    train: Sequence[SynthImage], test: Sequence[SynthImage], rng: np.random.Generator, train_per_image: int = 3
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The OSF json (train and test, told apart by phrase_type) and LLaVA-Med's test.json of its test split."""
    osf, test_json = [], []
    for split, images, per_image in (("train", train, train_per_image), ("test", test, 1)):
        for image, qa, tag, text in _select(_candidates(images), per_image * len(images), rng):
            qid = len(osf) + 1
            answer_type = "CLOSED" if qa.closed else "OPEN"
            osf.append({"qid": qid, "image_name": image.relative_path, "image_organ": _VQA_RAD_ORGAN[_organ(image)],
                        "answer": qa.answer, "answer_type": answer_type, "question_type": qa.question_type,
                        "question": text, "phrase_type": tag if split == "train" else f"test_{tag}"})
            if split == "test":
                test_json.append({"id": qid, "image": image.relative_path, "answer_type": answer_type,
                                  "question_type": qa.question_type, "conversations": [
                                      {"from": "human", "value": f"{text}\n{IMAGE_PLACEHOLDER}"},
                                      {"from": "gpt", "value": qa.answer}]})
    return osf, test_json


def slake_records(
    splits: dict[str, Sequence[SynthImage]], rng: np.random.Generator, per_image: int = 1, zh_share: float = 0.15
) -> dict[str, list[dict[str, Any]]]:
    """SLAKE train/validation/test records: English questions plus a few Chinese ones (q_lang "zh")."""
    image_ids: dict[str, int] = {}
    result: dict[str, list[dict[str, Any]]] = {}
    qid = 0
    for split, images in splits.items():
        english = _select(_candidates(images), per_image * len(images), rng)
        chinese = _select(_candidates(images, ("zh",)), math.ceil(zh_share * len(images)), rng, zh=True)
        records = []
        for language, chosen in (("en", english), ("zh", chinese)):
            for image, qa, _tag, text in chosen:
                qid += 1
                img_id = image_ids.setdefault(image.relative_path, len(image_ids) + 1)
                records.append({
                    "img_id": img_id, "img_name": image.relative_path, "question": text,
                    "answer": qa.answer if language == "en" else qa.zh_answer, "q_lang": language,
                    "answer_type": "CLOSED" if qa.closed else "OPEN",
                    "modality": _SLAKE_MODALITY[image.domain], "location": _SLAKE_LOCATION[_organ(image)],
                    "content_type": qa.content_type, "qid": qid})
        result[split] = records
    return result


def pathvqa_records(images: Sequence[SynthImage], rng: np.random.Generator, per_image: int = 6) -> list[dict[str, str]]:
    """PathVQA pkl rows: image, question, answer (closed questions are the yes/no ones)."""
    chosen = _select(_candidates(images), per_image * len(images), rng)
    return [{"image": image.relative_path, "question": text, "answer": qa.answer} for image, qa, _tag, text in chosen]


# -- ColonINST --------------------------------------------------------------------------------------------------

def _template_indices(images: Sequence[SynthImage]) -> list[int]:
    """Template per image: images are dealt out over the categories in turn and the templates cycle over that
    order, so every template is asked about several categories."""
    by_category: dict[str, list[int]] = {}
    for position, image in enumerate(images):
        by_category.setdefault(image.findings["finding"], []).append(position)
    queues = [by_category[category] for category in sorted(by_category)]
    dealt = [queue[round_] for round_ in range(max(map(len, queues), default=0)) for queue in queues if round_ < len(queue)]
    # small splits use fewer templates, so each template still meets at least two images
    in_use = max(1, min(len(COLONINST_TEMPLATES["cls"]), len(images) // 2))
    indices = [0] * len(images)
    for order, position in enumerate(dealt):
        indices[position] = order % in_use
    return indices


def _colon_record(image: SynthImage, split: str, question: str, answer: str) -> dict[str, Any]:
    return {"id": f"SynthColon/{split}/{image.findings['finding']}/{image.index:06d}.png",
            "image": image.relative_path,
            "conversations": [{"from": "human", "value": f"{IMAGE_PLACEHOLDER}\n{question}"},
                              {"from": "gpt", "value": answer}]}


def coloninst_caption(image: SynthImage, size: int) -> str:
    """The CAP answer of one image: its finding, and for a finding with a box the quarter of the frame it is in."""
    box = image.findings["box"]
    where = "centre"
    if box is not None:
        x1, y1, x2, y2 = box
        vertical = "upper" if (y1 + y2) / 2 < size / 2 else "lower"
        horizontal = "left" if (x1 + x2) / 2 < size / 2 else "right"
        where = f"{vertical} {horizontal} part"
    return COLONINST_CAPTIONS[image.findings["finding"]].format(where=where)


def coloninst_records(images: Sequence[SynthImage], split: str, size: int = IMAGE_SIZE) -> dict[str, list[dict[str, Any]]]:
    """CLS (category), REG (category of a box), REC (box of a category) and CAP (a paragraph about the image)
    records of one split."""
    tasks: dict[str, list[dict[str, Any]]] = {"cls": [], "reg": [], "rec": [], "cap": []}
    with_box = [image for image in images if image.findings["box"] is not None]
    for image, template in zip(images, _template_indices(images), strict=True):
        question = COLONINST_TEMPLATES["cls"][template]
        tasks["cls"].append(_colon_record(image, split, question, image.findings["finding"]))
        tasks["cap"].append(_colon_record(image, split, COLONINST_TEMPLATES["cap"][template],
                                          coloninst_caption(image, size)))
    for image, template in zip(with_box, _template_indices(with_box), strict=True):
        box, category = format_box(image.findings["box"]), image.findings["finding"]
        tasks["reg"].append(_colon_record(image, split, COLONINST_TEMPLATES["reg"][template].format(box=box), category))
        tasks["rec"].append(_colon_record(image, split, COLONINST_TEMPLATES["rec"][template].format(category=category), box))
    return tasks
