"""The PMC-VQA-shaped multiple-choice test file: open questions about each image turned into four options.

Each question's right option is its answer for that image; the other options are first the answers the same
question has for other images (so only the image tells them apart), then other answers of the same kind of
image. Option order is shuffled per question, so the right letter is spread over A-D.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medzoo import write_atomically
from medzoo.plugins.data.synth import sampling
from medzoo.plugins.data.synth.catalog import SynthImage
from medzoo.plugins.data.synth.questions import questions_for

LETTERS = "ABCD"
#: test_2.csv's header, as MedEvalKit reads it (by position)
PMC_VQA_COLUMNS = ("index", "Figure_path", "Caption", "Question", "Choice A", "Choice B", "Choice C", "Choice D",
                   "Answer", "split")  # fmt: skip


def _distractors(answer: str, same_question: Sequence[str], same_domain: Sequence[str], rng: np.random.Generator) -> list[str]:
    first = [text for text in same_question if text != answer]
    rest = [text for text in same_domain if text != answer and text not in first]
    ordered = [first[i] for i in rng.permutation(len(first))] + [rest[i] for i in rng.permutation(len(rest))]
    return ordered[: len(LETTERS) - 1]


def pmc_vqa_rows(images: Sequence[SynthImage], rng: np.random.Generator, per_image: int = 2) -> list[dict[str, Any]]:
    """test_2.csv rows: about ``per_image`` open questions per image, each with four options (``A:text``)."""
    candidates = [(image, qa) for image in images for qa in questions_for(image) if not qa.closed]
    target = per_image * len(images)
    texts = {qa.question for _, qa in candidates}
    per_text = max(2, -(-target // max(1, len(texts))))
    chosen = sampling.select_balanced(candidates, per_text, lambda c: c[1].question, lambda c: c[1].answer, rng)
    by_question: dict[str, list[str]] = {}
    by_domain: dict[str, list[str]] = {}
    for image, qa in candidates:
        for table, key in ((by_question, qa.question), (by_domain, image.domain)):
            if qa.answer not in table.setdefault(key, []):
                table[key].append(qa.answer)
    rows = []
    for index, (image, qa) in enumerate(chosen):
        others = _distractors(qa.answer, sorted(by_question[qa.question]), sorted(by_domain[image.domain]), rng)
        options = [qa.answer, *others]
        order = rng.permutation(len(options))
        shuffled = [options[i] for i in order]
        choices = [f"{LETTERS[i]}:{text}" for i, text in enumerate(shuffled)] + [""] * (len(LETTERS) - len(shuffled))
        rows.append({"index": index, "Figure_path": image.relative_path, "Caption": f"Figure {index + 1}.",
                     "Question": qa.question, "Choice A": choices[0], "Choice B": choices[1],
                     "Choice C": choices[2], "Choice D": choices[3],
                     "Answer": LETTERS[shuffled.index(qa.answer)], "split": "test"})
    return rows


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] = PMC_VQA_COLUMNS) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(path, buffer.getvalue())
