"""Reading MedXpertQA's multimodal questions (``MM/test.jsonl`` of the hub snapshot ``TsinghuaC3I/MedXpertQA``,
images from its ``images.zip`` in ``images/``), counting what cannot be asked.

A line holds ``id``, ``question``, ``options`` (letter -> text, A-E), ``label`` (the right letter), ``images``
(file names in the ``images`` folder), ``medical_task``, ``body_system`` and ``question_type``. Options are kept
as MedEvalKit's ``utils/MedXpertQA/MedXpertQA.py`` builds its choices (``A. text``); the subsets reported are
``medical_task``, ``body_system`` and ``question_type``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from medzoo import DataError, LoadReport, read_text_file
from medzoo.plugins.benchmarks.multiple_choice.question import MultipleChoice
from medzoo.plugins.benchmarks.multiple_choice.question_images import ImageFolders, QuestionImageProblem
from medzoo.plugins.datasets.reference_answers import answer_problem

REQUIRED = ("id", "question", "options", "label", "images")
SUBSET_KEYS = ("medical_task", "body_system", "question_type")
#: where the hub snapshot keeps the multimodal test split
MM_TEST = Path("MM") / "test.jsonl"


@dataclass
class MedXpertQuestion:
    question_id: str
    images: list[Path]
    question: str
    choice: MultipleChoice
    subsets: dict[str, str] = field(default_factory=dict)

    @property
    def image(self) -> Path | None:
        return self.images[0] if self.images else None


def question_file(path: Path) -> Path:
    """The jsonl for ``path``: the file itself, or ``MM/test.jsonl`` of a snapshot folder."""
    if path.is_file():
        return path
    if (path / MM_TEST).is_file():
        return path / MM_TEST
    raise DataError(f"{path}: no MedXpertQA file here; expected MM/test.jsonl (the hub snapshot "
                    "TsinghuaC3I/MedXpertQA) or the jsonl itself")


def image_folders(file: Path, image_root: str | Path | None) -> list[Path]:
    """Where image names are looked up: ``image_root`` (and its ``images``), else the snapshot's ``images``
    folder (beside ``MM/``), ``images`` beside the file, the file's own folder and the snapshot folder."""
    if image_root:
        root = Path(image_root).expanduser()
        return [root, root / "images"]
    return [file.parent.parent / "images", file.parent / "images", file.parent, file.parent.parent]


def _rows(file: Path) -> list[tuple[int, object]]:
    rows = []
    for number, line in enumerate(read_text_file(file, "a MedXpertQA jsonl in UTF-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise DataError(f"{file}: line {number} is not JSON ({error.msg})") from None
    return rows


def read_medxpertqa(
    path: str | Path, image_root: str | Path | None = None, require_images: bool = True
) -> tuple[list[MedXpertQuestion], LoadReport]:
    """The usable questions and what was skipped, per reason: ``duplicate id``, ``fewer than two options``,
    ``answer not among the options``, ``empty answer`` / ``answer is null``, ``no image``, ``image not found``
    and ``unreadable image``; a file of another layout is one DataError line naming the keys found."""
    file = question_file(Path(path).expanduser())
    rows = _rows(file)
    first = next((row for _, row in rows if isinstance(row, dict)), None)
    if first is None or not all(key in first for key in REQUIRED):
        found = ", ".join(first) if isinstance(first, dict) else "(no JSON object)"
        raise DataError(f"{file}: not a MedXpertQA jsonl: keys {found}; expected {', '.join(REQUIRED)} "
                        f"({', '.join(SUBSET_KEYS)})")
    folders = ImageFolders(image_folders(file, image_root))
    report = LoadReport(str(file))
    seen: set[str] = set()
    questions: list[MedXpertQuestion] = []
    for number, row in rows:
        question_id = str(row.get("id", f"line {number}")) if isinstance(row, dict) else f"line {number}"
        if not isinstance(row, dict) or not all(key in row for key in REQUIRED):
            report.skip("malformed record", question_id, "skip")
            continue
        if question_id in seen:
            report.skip("duplicate id", question_id, "skip")
            continue
        seen.add(question_id)
        options = row["options"] if isinstance(row["options"], dict) else {}
        options = {str(letter).strip().upper(): str(text) for letter, text in options.items()
                   if str(text).strip()}
        if len(options) < 2:
            report.skip("fewer than two options", question_id, "skip")
            continue
        problem = answer_problem(row["label"])
        if problem is not None:
            report.skip(problem, question_id, "skip")
            continue
        label = str(row["label"]).strip().upper()
        if label not in options:
            report.skip("answer not among the options", question_id, "skip")
            continue
        names = row["images"] if isinstance(row["images"], list) else [row["images"]]
        images: list[Path] = []
        if require_images:
            if not names or not all(isinstance(name, str) and name for name in names):
                report.skip("no image", question_id, "skip")
                continue
            try:
                images = [folders.locate(name) for name in names]
            except QuestionImageProblem as image_problem:
                report.skip(image_problem.reason, question_id, "skip")
                continue
        choices = {letter: f"{letter}. {text}" for letter, text in options.items()}
        subsets = {key: str(row[key]) for key in SUBSET_KEYS if row.get(key)}
        questions.append(MedXpertQuestion(question_id, images, str(row["question"]),
                                          MultipleChoice(choices, label, label), subsets))
        report.kept += 1
    return questions, report
