"""Multiple-choice test files (PMC-VQA's test_2.csv, OmniMedVQA's QA_information json): open questions about
each image turned into four options.

Each question's right option is its answer for that image; the other options are first the answers the same
question has for other images (so only the image tells them apart), then other answers of the same kind of
image. Option order is shuffled per question, so the right letter is spread over A-D.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medzoo.app.data_synth import sampling
from medzoo.app.data_synth.images import SynthImage
from medzoo.app.data_synth.questions import QA, questions_for
from medzoo.core.atomic_writes import write_atomically

LETTERS = "ABCD"
#: test_2.csv's header, as MedEvalKit reads it (by position)
PMC_VQA_COLUMNS = ("index", "Figure_path", "Caption", "Question", "Choice A", "Choice B", "Choice C", "Choice D",
                   "Answer", "split")  # fmt: skip
#: OmniMedVQA's modality and question-type names for the synthetic domains and question keys
OMNI_MODALITIES = {"cxr": "X-Ray", "ct": "CT(Computed Tomography)", "mri": "MR (Mag-netic Resonance Imaging)",
                   "histology": "Microscopy Images", "colonoscopy": "Endoscopy"}  # fmt: skip
OMNI_QUESTION_TYPES = {"modality": "Modality Recognition", "organ": "Anatomy Identification"}


def _distractors(answer: str, same_question: Sequence[str], same_domain: Sequence[str], rng: np.random.Generator) -> list[str]:
    first = [text for text in same_question if text != answer]
    rest = [text for text in same_domain if text != answer and text not in first]
    ordered = [first[i] for i in rng.permutation(len(first))] + [rest[i] for i in rng.permutation(len(rest))]
    return ordered[: len(LETTERS) - 1]


@dataclass(frozen=True)
class ChoiceQuestion:
    """One synthetic multiple-choice question: its image, question, options (shuffled) and right option."""

    image: SynthImage
    qa: QA
    options: tuple[str, ...]
    answer: int


def choice_questions(images: Sequence[SynthImage], rng: np.random.Generator, per_image: int = 2) -> list[ChoiceQuestion]:
    """About ``per_image`` open questions per image, each with up to four options (see the module docstring)."""
    candidates = [(image, qa) for image in images for qa in questions_for(image) if not qa.closed]
    texts = {qa.question for _, qa in candidates}
    per_text = max(2, -(-per_image * len(images) // max(1, len(texts))))
    chosen = sampling.select_balanced(candidates, per_text, lambda c: c[1].question, lambda c: c[1].answer, rng)
    by_question: dict[str, list[str]] = {}
    by_domain: dict[str, list[str]] = {}
    for image, qa in candidates:
        for table, key in ((by_question, qa.question), (by_domain, image.domain)):
            if qa.answer not in table.setdefault(key, []):
                table[key].append(qa.answer)
    questions = []
    for image, qa in chosen:
        options = [qa.answer, *_distractors(qa.answer, sorted(by_question[qa.question]),
                                            sorted(by_domain[image.domain]), rng)]
        shuffled = tuple(options[i] for i in rng.permutation(len(options)))
        questions.append(ChoiceQuestion(image, qa, shuffled, shuffled.index(qa.answer)))
    return questions


def pmc_vqa_rows(questions: Sequence[ChoiceQuestion]) -> list[dict[str, Any]]:
    """test_2.csv rows: options written ``A:text``, the answer as its letter."""
    rows = []
    for index, question in enumerate(questions):
        choices = [f"{LETTERS[i]}:{text}" for i, text in enumerate(question.options)]
        choices += [""] * (len(LETTERS) - len(choices))
        rows.append({"index": index, "Figure_path": question.image.relative_path, "Caption": f"Figure {index + 1}.",
                     "Question": question.qa.question, "Choice A": choices[0], "Choice B": choices[1],
                     "Choice C": choices[2], "Choice D": choices[3], "Answer": LETTERS[question.answer],
                     "split": "test"})
    return rows


def omnimedvqa_records(questions: Sequence[ChoiceQuestion]) -> dict[str, list[dict[str, Any]]]:
    """OmniMedVQA ``QA_information/Open-access`` records, one file per source (here: per image domain); the
    answer is the option's text and ``image_path`` is relative to the synthetic root (``images/...``)."""
    files: dict[str, list[dict[str, Any]]] = {}
    for index, question in enumerate(questions):
        domain = question.image.domain
        source = f"Synth-{domain}"
        record = {"dataset": source, "question_id": f"{source}_{index:04d}",
                  "question_type": OMNI_QUESTION_TYPES.get(question.qa.key, "Disease Diagnosis"),
                  "question": question.qa.question, "gt_answer": question.options[question.answer],
                  "image_path": f"images/{question.image.relative_path}", "modality_type": OMNI_MODALITIES[domain]}
        record.update({f"option_{LETTERS[i]}": text for i, text in enumerate(question.options)})
        files.setdefault(f"{source}.json", []).append(record)
    return files


GMAI_COLUMNS = ("index", "question", "A", "B", "C", "D", "E", "answer", "image", "modality", "clinical vqa task",
                "department", "perceptual granularity")  # fmt: skip


def gmai_rows(questions: Sequence[ChoiceQuestion], image_dir: Path) -> list[dict[str, Any]]:
    """GMAI-MMBench TSV rows (VLMEvalKit's layout): options in A-E, the letter in ``answer``, the PNG as base64;
    a question about an image already written refers to that row's ``index`` (as VLMEvalKit's files do)."""
    rows: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}
    for index, question in enumerate(questions):
        relative = question.image.relative_path
        if relative in first_row:
            image = str(first_row[relative])
        else:
            first_row[relative] = index
            image = base64.b64encode((image_dir / relative).read_bytes()).decode("ascii")
        row = {"index": index, "question": question.qa.question, "answer": LETTERS[question.answer], "image": image,
               "modality": OMNI_MODALITIES[question.image.domain],
               "clinical vqa task": OMNI_QUESTION_TYPES.get(question.qa.key, "Disease Diagnosis"),
               "department": "Synthetic", "perceptual granularity": "Image Level"}
        row.update({letter: (question.options[i] if i < len(question.options) else "")
                    for i, letter in enumerate("ABCDE")})
        rows.append(row)
    return rows


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] = PMC_VQA_COLUMNS) -> None:
    """A csv (a ``.tsv`` path: tab-separated) with ``columns`` as its header."""
    buffer = io.StringIO()
    delimiter = "\t" if path.suffix == ".tsv" else ","
    writer = csv.DictWriter(buffer, fieldnames=list(columns), delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(path, buffer.getvalue())
