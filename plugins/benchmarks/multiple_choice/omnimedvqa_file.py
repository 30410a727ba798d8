"""Reading OmniMedVQA's open-access questions (``QA_information/Open-access/<source>.json``, one list of records
per source data set) into multiple-choice questions, counting what cannot be asked.

A record has ``question_id``, ``question``, ``gt_answer`` (the right option's text), ``image_path`` (relative to
the OmniMedVQA folder), ``option_A`` .. ``option_D``, ``question_type``, ``modality_type`` and ``dataset``.
Options are read as MedEvalKit's ``utils/OmniMedVQA/OmniMedVQA.py`` builds them (``A. text``, only A-D) and the
reference is the letter of the option equal to ``gt_answer``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from medzoo import DataError, LoadReport, read_text_file
from medzoo.plugins.benchmarks.multiple_choice.question import MultipleChoice
from medzoo.plugins.datasets.reference_answers import answer_problem, answer_text

LETTERS = "ABCD"
REQUIRED = ("question_id", "question", "gt_answer", "image_path")
OPEN_ACCESS = Path("QA_information") / "Open-access"


@dataclass
class OmniQuestion:
    question_id: str
    image: Path | None
    question: str
    choice: MultipleChoice
    subsets: dict[str, str] = field(default_factory=dict)


def question_files(path: Path) -> tuple[list[Path], Path]:
    """(the json files, the OmniMedVQA folder their image paths start from) for the OmniMedVQA folder, its
    ``QA_information/Open-access`` folder or one of its json files."""
    if path.is_file():
        base = path.parents[2] if path.parent.name == OPEN_ACCESS.name else path.parent
        return [path], base
    folder = path / OPEN_ACCESS if (path / OPEN_ACCESS).is_dir() else path
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DataError(f"{path}: no OmniMedVQA question files (expected {OPEN_ACCESS}/*.json in it)")
    base = folder.parents[1] if folder.name == OPEN_ACCESS.name else folder
    return files, base


def read_records(file: Path) -> list[dict]:
    text = read_text_file(file, "an OmniMedVQA question file (a JSON list) in UTF-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{file}: not valid JSON (line {error.lineno} column {error.colno}: {error.msg}); "
                        "expected a JSON list of OmniMedVQA question records") from None
    if not isinstance(data, list) or not all(isinstance(record, dict) for record in data):
        raise DataError(f"{file}: expected a json list of OmniMedVQA question records")
    if data and not all(key in data[0] for key in REQUIRED):
        raise DataError(
            f"{file}: not an OmniMedVQA question file: keys {', '.join(data[0]) or '(none)'}; expected "
            f"{', '.join(REQUIRED)}, option_A-option_D, question_type, modality_type"
        )
    return data


def read_omnimedvqa(
    path: str | Path, image_root: str | Path | None = None, require_images: bool = True
) -> tuple[list[OmniQuestion], LoadReport]:
    """The usable questions and what was skipped, per reason: a ``gt_answer`` that is null, empty or not text
    (``reference_answers``), ``duplicate id``, ``answer not among the options``, ``fewer than two options``,
    ``missing field`` (an absent key), ``image not found`` (with ``require_images``)."""
    given = Path(path).expanduser()
    if not given.exists():
        raise DataError(f"{given}: no such OmniMedVQA folder or file")
    files, base = question_files(given)
    root = Path(image_root).expanduser() if image_root else base
    report = LoadReport(str(given))
    seen: set[str] = set()
    questions: list[OmniQuestion] = []
    for file in files:
        for number, record in enumerate(read_records(file)):
            question_id = str(record.get("question_id") or f"{file.stem}#{number}")
            problem = answer_problem(record["gt_answer"]) if "gt_answer" in record else None  # absent: missing field
            if problem is not None:
                report.skip(problem, question_id, "skip")
                continue
            if not all(record.get(key) not in (None, "") for key in REQUIRED):
                report.skip("missing field", question_id, "skip")
                continue
            if question_id in seen:
                report.skip("duplicate id", question_id, "skip")
                continue
            seen.add(question_id)
            texts = {letter: str(record[f"option_{letter}"]) for letter in LETTERS
                     if str(record.get(f"option_{letter}") or "").strip()}
            if len(texts) < 2:
                report.skip("fewer than two options", question_id, "skip")
                continue
            matches = [letter for letter, text in texts.items() if text == answer_text(record["gt_answer"])]
            if not matches:
                report.skip("answer not among the options", question_id, "skip")
                continue
            options = {letter: f"{letter}. {text}" for letter, text in texts.items()}
            image = root / str(record["image_path"])
            if require_images and not image.is_file():
                report.skip("image not found", question_id, "skip")
                continue
            subsets = {"modality": str(record.get("modality_type") or "unknown"),
                       "question_type": str(record.get("question_type") or "unknown"),
                       "dataset": str(record.get("dataset") or file.stem)}
            choice = MultipleChoice(options, matches[-1], matches[-1])
            questions.append(OmniQuestion(question_id, image if image.is_file() else None, str(record["question"]),
                                          choice, subsets))
            report.kept += 1
    return questions, report
