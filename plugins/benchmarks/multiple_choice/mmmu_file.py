"""Reading MMMU's Health & Medicine validation questions from the parquet files of the hub snapshot
``MMMU/MMMU`` (``<Subject>/validation-00000-of-00001.parquet``), counting what cannot be asked.

A row holds ``id`` (``validation_<Subject>_<n>``), ``question``, ``options`` (a Python list written as a
string; ``[]`` for an open question), ``answer`` (a letter, or an open question's text), ``question_type``
(``multiple-choice`` / ``open``), ``image_1`` .. ``image_7`` (``{"bytes", "path"}`` or null), ``subfield``,
``img_type``, ``topic_difficulty`` and ``explanation``. The question and options name the images as ``<image N>``.
Images are decoded once into a folder (default ``mmmu_images`` beside the subject folders; ``image_root``
overrides it) as ``<id>_<N>.<png|jpg>``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medzoo import DataError, LoadReport
from medzoo.plugins.benchmarks.multiple_choice.question_images import QuestionImageProblem, embedded_image
from medzoo.plugins.datasets.reference_answers import answer_problem

#: MMMU's Health & Medicine subjects (its hub configurations; MedEvalKit's ``DOMAIN_CAT2SUB_CAT``)
SUBJECTS = ("Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine", "Pharmacy",
            "Public_Health")  # fmt: skip
REQUIRED = ("id", "question", "options", "answer", "question_type", "image_1")
IMAGE_COLUMNS = tuple(f"image_{n}" for n in range(1, 8))
IMAGE_TAG = re.compile(r"<image (\d+)>")
MULTIPLE_CHOICE = "multiple-choice"


@dataclass
class MmmuQuestion:
    """One question: ``images`` maps an image number (``<image N>``) to its decoded file."""

    question_id: str
    subject: str
    question: str
    options: list[str]
    answer: str
    question_type: str
    images: dict[int, Path]
    subsets: dict[str, str] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.question_type != MULTIPLE_CHOICE


def parquet_files(path: Path) -> list[Path]:
    """The validation parquet files under ``path`` (a snapshot folder, a subject folder), or ``path`` itself."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such MMMU parquet file or folder")
    files = sorted(path.rglob("validation-*.parquet"))
    if not files:
        raise DataError(f"{path}: no validation-*.parquet file below it; expected the MMMU/MMMU snapshot "
                        "(<Subject>/validation-00000-of-00001.parquet)")
    return files


def _rows(file: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{file}: reading parquet needs pyarrow (pip install 'medzoo[data]')") from None
    try:
        table = pq.read_table(file)
    except Exception as error:  # pyarrow's errors for a damaged or foreign file
        raise DataError(f"{file}: not a readable parquet file ({type(error).__name__}: {error})") from None
    missing = [column for column in REQUIRED if column not in table.column_names]
    if missing:
        raise DataError(f"{file}: not an MMMU parquet file: columns {', '.join(table.column_names) or '(none)'}; "
                        f"expected {', '.join(REQUIRED)} (image_2 .. image_7, subfield, ...)")
    return table.to_pylist()


def subject_of(question_id: str, file: Path) -> str:
    """The subject an id names (``validation_Clinical_Medicine_3`` -> ``Clinical_Medicine``), else the file's
    folder."""
    match = re.fullmatch(r"[a-z]+_(.+)_\d+", question_id)
    return match.group(1) if match else file.parent.name


def _options(value: Any) -> list[str] | None:
    if isinstance(value, list):
        parsed: Any = value
    else:
        try:
            parsed = ast.literal_eval(str(value))
        except (ValueError, SyntaxError):
            return None
    if not isinstance(parsed, list):
        return None
    return [str(option) for option in parsed]


def _question(row: dict[str, Any], file: Path, folder: Path, require_images: bool) -> MmmuQuestion:
    """The row as a question; ValueError(reason) when it cannot be asked."""
    question_id = str(row["id"])
    options = _options(row["options"])
    question_type = str(row["question_type"] or MULTIPLE_CHOICE)
    problem = answer_problem(row["answer"])  # the shared rule: null, empty or not text, counted as such
    if problem is not None:
        raise ValueError(problem)
    answer = str(row["answer"]).strip()
    if question_type == MULTIPLE_CHOICE:
        if options is None or len(options) < 2:
            raise ValueError("fewer than two options")
        if len(answer) != 1 or not 0 <= ord(answer.upper()) - ord("A") < len(options):
            raise ValueError("answer not among the options")
    images: dict[int, Path] = {}
    if require_images:
        for number, column in enumerate(IMAGE_COLUMNS, start=1):
            cell = row.get(column)
            if isinstance(cell, dict) and cell.get("bytes"):
                images[number] = embedded_image(cell["bytes"], folder / f"{question_id}_{number}")
        text = " ".join([str(row["question"]), *(options or [])])
        referenced = {int(number) for number in IMAGE_TAG.findall(text)}
        if any(number not in images for number in referenced) or not images:
            raise QuestionImageProblem("image not found", f"{question_id}: an <image N> names no image")
    subject = subject_of(question_id, file)
    subsets = {"subject": subject, **({"subfield": str(row["subfield"])} if row.get("subfield") else {})}
    return MmmuQuestion(question_id, subject, str(row["question"]), options or [], answer, question_type, images,
                        subsets)


def read_mmmu(
    path: str | Path, image_root: str | Path | None = None, require_images: bool = True,
    subjects: tuple[str, ...] = SUBJECTS,
) -> tuple[list[MmmuQuestion], LoadReport]:
    """The usable questions of ``subjects`` and what was skipped, per reason: ``duplicate id``, ``fewer than two
    options``, ``answer not among the options``, ``empty answer``, ``image not found`` (an ``<image N>`` whose
    column is empty, or no image at all) and ``unreadable image``; rows of other subjects are left out
    (``other subject``). A file of another layout is one DataError line naming its columns."""
    given = Path(path).expanduser()
    files = parquet_files(given)
    base = given if given.is_dir() else given.parent.parent
    folder = Path(image_root).expanduser() if image_root else base / "mmmu_images"
    report = LoadReport(str(given))
    seen: set[str] = set()
    questions: list[MmmuQuestion] = []
    for file in files:
        for row in _rows(file):
            question_id = str(row["id"])
            if subject_of(question_id, file) not in subjects:
                report.skip("other subject", question_id, "skip")
                continue
            if question_id in seen:
                report.skip("duplicate id", question_id, "skip")
                continue
            seen.add(question_id)
            try:
                questions.append(_question(row, file, folder, require_images))
            except QuestionImageProblem as problem:
                report.skip(problem.reason, question_id, "skip")
                continue
            except ValueError as problem:
                report.skip(str(problem), question_id, "skip")
                continue
            report.kept += 1
    return questions, report
