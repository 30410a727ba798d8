"""Reading PMC-VQA's test csv files into multiple-choice questions, counting what cannot be asked.

Two layouts are read, told apart by their header (names compared without case, blanks or underscores):

- version 2, the ``test_2.csv`` MedEvalKit reads (hub snapshot ``RadGenome/PMC-VQA``): ``index, Figure_path,
  Caption, Question, Choice A, Choice B, Choice C, Choice D, Answer, split``; ``Answer`` is the letter; the id is
  ``index``;
- version 1, the original release (``xmcmic/PMC-VQA`` ``test.csv`` / ``test_clean.csv``): ``Figure_path,
  Question, Answer, Choice A, Choice B, Choice C, Choice D, Answer_label``; ``Answer`` is the option's text,
  ``Answer_label`` the letter (the reference); without an ``index`` column the id is the row's number (0 for the
  first data row).

Options are kept as written (``A:Diffuse uptake pattern``: MedEvalKit shows and judges them so); an empty choice
cell is no option. A figure is looked for under the given image root, then beside the csv in ``figures/``,
``images/``, ``images_2/`` and the csv's own folder (MedEvalKit: ``figures/``, then ``images/``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medzoo import DataError, LoadReport, read_text_file
from medzoo.plugins.benchmarks.multiple_choice.question import MultipleChoice
from medzoo.plugins.datasets.reference_answers import answer_problem

CHOICE_COLUMNS = ("choicea", "choiceb", "choicec", "choiced")
VERSION_2 = ("index", "figurepath", "caption", "question", *CHOICE_COLUMNS, "answer", "split")
VERSION_1 = ("figurepath", "question", "answer", *CHOICE_COLUMNS, "answerlabel")
IMAGE_FOLDERS = ("figures", "images", "images_2", "")


def column_key(name: str) -> str:
    return "".join(char for char in name.lower() if char.isalnum())


@dataclass
class PmcVqaRow:
    """One usable question: its id, figure, question text, options and reference; ``extra``: other columns."""

    question_id: str
    image: Path | None
    question: str
    choice: MultipleChoice
    extra: dict[str, Any] = field(default_factory=dict)


def layout_of(path: Path, header: list[str]) -> tuple[str, dict[str, int]]:
    """(``v2`` or ``v1``, column key -> position) of a header; another header is one DataError line naming the
    file, the columns found and those expected."""
    positions = {column_key(name): index for index, name in enumerate(header)}
    for name, expected in (("v2", VERSION_2), ("v1", VERSION_1)):
        needed = [key for key in expected if key not in ("index", "caption", "split")]
        if all(key in positions for key in needed) and (name == "v1" or "answerlabel" not in positions):
            return name, positions
    raise DataError(
        f"{path}: not a PMC-VQA test csv: columns {', '.join(header) or '(none)'}; expected index, Figure_path, "
        "Caption, Question, Choice A-D, Answer, split (test_2.csv) or Figure_path, Question, Answer, Choice A-D, "
        "Answer_label (the original test.csv)"
    )


def find_image(figure: str, csv_dir: Path, image_root: Path | None) -> Path | None:
    """The first existing file a figure reference names (see the module docstring), or None."""
    roots = ([image_root] if image_root is not None else []) + [csv_dir / folder for folder in IMAGE_FOLDERS]
    for root in roots:
        candidate = root / figure
        if candidate.is_file():
            return candidate
    return None


def read_pmc_vqa(
    path: str | Path, image_root: str | Path | None = None, require_images: bool = True
) -> tuple[list[PmcVqaRow], LoadReport]:
    """The usable questions of a PMC-VQA test csv and what was skipped, per reason: ``duplicate id``, ``answer
    not among the options``, ``fewer than two options``, ``image not found`` (only with ``require_images``)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"{file}: no such PMC-VQA csv file")
    root = Path(image_root).expanduser() if image_root else None
    report = LoadReport(str(file))
    rows = list(csv.reader(io.StringIO(read_text_file(file, "a PMC-VQA csv in UTF-8"), newline="")))
    if not rows:
        raise DataError(f"{file}: empty file; expected a PMC-VQA csv with a header row")
    layout, positions = layout_of(file, rows[0])
    answer_key = "answer" if layout == "v2" else "answerlabel"
    seen: set[str] = set()
    questions: list[PmcVqaRow] = []
    for number, row in enumerate(rows[1:]):
        if not any(cell.strip() for cell in row):
            continue

        def cell(key: str, row: list[str] = row) -> str:
            position = positions.get(key)
            return row[position] if position is not None and position < len(row) else ""

        question_id = cell("index").strip() or str(number)
        if question_id in seen:
            report.skip("duplicate id", question_id, "skip")
            continue
        seen.add(question_id)
        options = {key[-1].upper(): cell(key) for key in CHOICE_COLUMNS if cell(key).strip()}
        if len(options) < 2:
            report.skip("fewer than two options", question_id, "skip")
            continue
        problem = answer_problem(cell(answer_key))
        if problem is not None:
            report.skip(problem, question_id, "skip")
            continue
        try:
            choice = MultipleChoice.of(options, cell(answer_key))
        except ValueError:
            report.skip("answer not among the options", question_id, "skip")
            continue
        figure = cell("figurepath").strip()
        image = find_image(figure, file.parent, root) if figure else None
        if image is None and require_images:
            report.skip("image not found", question_id, "skip")
            continue
        extra = {key: cell(key) for key in ("caption", "split") if key in positions}
        questions.append(PmcVqaRow(question_id, image, cell("question"), choice, extra))
        report.kept += 1
    return questions, report
