"""Reading VLMEvalKit's GMAI-MMBench TSV (``GMAI-MMBench_VAL.tsv``; the test parts alike): one question per row
with its options in columns ``A``..``E``, the letter in ``answer`` and the image as base64 in ``image``.

As VLMEvalKit's ``ImageBaseDataset`` reads it, an ``image`` cell of at most 64 characters names the ``index`` of
the row whose image it shares. Images are decoded once into a folder (default ``<tsv stem>_images`` beside the
file; ``image_root`` overrides it) as ``<index>.<png|jpg>``. Subsets reported: ``modality``, ``clinical vqa
task``, ``department``, ``perceptual granularity`` (the columns the file has).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

from medzoo import DataError, LoadReport, read_text_file, write_atomically
from medzoo.plugins.benchmarks.multiple_choice.question import MultipleChoice
from medzoo.plugins.datasets.reference_answers import answer_problem

LETTERS = "ABCDEFGHIJ"
REQUIRED = ("index", "question", "answer", "image", "a", "b")
SUBSET_COLUMNS = ("modality", "clinical vqa task", "department", "perceptual granularity")


@dataclass
class GmaiQuestion:
    question_id: str
    image: Path | None
    question: str
    hint: str
    choice: MultipleChoice
    subsets: dict[str, str] = field(default_factory=dict)


def decoded_image(data: str, target_stem: Path) -> Path | None:
    """The image a base64 cell holds, written once to ``target_stem`` + its suffix; None when it is not an image."""
    from PIL import Image

    try:
        raw = base64.b64decode(data, validate=False)
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            suffix = ".png" if image.format == "PNG" else ".jpg"
    except (binascii.Error, ValueError, OSError, SyntaxError, Image.DecompressionBombError):
        return None
    path = target_stem.with_suffix(suffix)
    if not (path.is_file() and path.stat().st_size == len(raw)):
        write_atomically(path, raw)
    return path


def read_gmai(
    path: str | Path, image_root: str | Path | None = None, require_images: bool = True
) -> tuple[list[GmaiQuestion], LoadReport]:
    """The usable questions of a GMAI-MMBench TSV and what was skipped, per reason: ``duplicate id``, ``answer
    not among the options``, ``fewer than two options``, ``empty answer`` / ``answer is null`` (a row too short
    to hold it; ``reference_answers``), ``unreadable image`` (base64 that does not decode) and
    ``image not found`` (a reference to no row); a file of another layout is one DataError line."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"{file}: no such GMAI-MMBench tsv file")
    csv.field_size_limit(sys.maxsize)
    text = read_text_file(file, "a GMAI-MMBench tsv in UTF-8")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter="\t"))
    header = list(rows[0]) if rows else []
    keys = {name.lower(): name for name in header}
    if not all(key in keys for key in REQUIRED):
        raise DataError(
            f"{file}: not a GMAI-MMBench tsv: columns {', '.join(header) or '(none)'}; expected index, question, "
            "A, B (C, D, E), answer, image (VLMEvalKit's layout)"
        )
    images = {row[keys["index"]]: row[keys["image"]] for row in rows}
    folder = Path(image_root).expanduser() if image_root else file.parent / f"{file.stem}_images"
    report = LoadReport(str(file))
    seen: set[str] = set()
    questions: list[GmaiQuestion] = []
    for row in rows:
        question_id = row[keys["index"]].strip()
        if question_id in seen:
            report.skip("duplicate id", question_id, "skip")
            continue
        seen.add(question_id)
        options = {letter: row[keys[letter.lower()]] for letter in LETTERS
                   if letter.lower() in keys and (row[keys[letter.lower()]] or "").strip()}
        if len(options) < 2:
            report.skip("fewer than two options", question_id, "skip")
            continue
        problem = answer_problem(row[keys["answer"]])  # a short row's missing cell is None: no answer
        if problem is not None:
            report.skip(problem, question_id, "skip")
            continue
        answer = row[keys["answer"]].strip()
        if answer not in options:
            report.skip("answer not among the options", question_id, "skip")
            continue
        cell = row[keys["image"]] or ""
        if len(cell) <= 64:
            cell = images.get(cell, "")
        image = None
        if require_images:
            if not cell:
                report.skip("image not found", question_id, "skip")
                continue
            image = decoded_image(cell, folder / question_id)
            if image is None:
                report.skip("unreadable image", question_id, "skip")
                continue
        hint = (row.get(keys.get("hint", ""), "") or "").strip() if "hint" in keys else ""
        subsets = {column: row[keys[column]] for column in SUBSET_COLUMNS if column in keys and row[keys[column]]}
        questions.append(GmaiQuestion(question_id, image, row[keys["question"]], hint,
                                      MultipleChoice(options, answer, answer), subsets))
        report.kept += 1
    return questions, report
