"""The ``colon-inst`` reader: ColonINST conversation JSON (tasks CLS, REG, REC, CAP).

Each record is ``{"id", "image", "conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}``,
optionally with a ``{"from": "prediction", ...}`` turn appended by an evaluation run (kept in metadata).
Boxes are written ``{<xmin><ymin><xmax><ymax>}`` in image pixels.

The task comes from the option ``task`` (cls|reg|rec|cap), else from the file name (``cls_val.json``,
``test_pred_rec.json``), else per record: a box in the answer is REC, a box in the question REG, an
answer of more than eight words CAP, anything else CLS.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER, Message
from medzoo.core.interfaces.dataset import BadRecordPolicy, DatasetReader, LoadReport, Record
from medzoo.core.errors import DataError
from medzoo.plugins.datasets.med_vqa import (
    candidate_image_roots,
    image_problem,
    resolve_image,
    strip_placeholder,
    truthy,
)
from medzoo.plugins.metrics.scoring import COLONINST_TASKS, parse_box

_TASK_IN_NAME = re.compile(r"(?:^|[_\-.])(cls|reg|rec|cap)(?=[_\-.]|$)")
_ROLES = {"human": "user", "gpt": "assistant"}
CAPTION_MIN_WORDS = 9


def task_from_filename(path: Path) -> str | None:
    """``cls``/``reg``/``rec``/``cap`` when the file name says so (``reg_test.json``), else None."""
    match = _TASK_IN_NAME.search(path.stem.lower())
    return match.group(1) if match else None


def guess_task(question: str, answer: str) -> str:
    """The task of one record from its content (used when neither option nor file name tells)."""
    if parse_box(answer) is not None:
        return "rec"
    if parse_box(question) is not None:
        return "reg"
    return "cap" if len(answer.split()) >= CAPTION_MIN_WORDS else "cls"


def load_coloninst_json(path: Path) -> list:
    """The record list of a ColonINST json file."""
    if not path.is_file():
        raise DataError(f"{path}: no such file (a ColonINST json file)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable json file ({error})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a json list of ColonINST records, got {type(data).__name__}")
    return data


class ColonInstReader(DatasetReader):
    """ColonINST json -> conversation records; metadata keeps ``task``, ``question``, ``answer``,
    ``question_box`` / ``answer_box`` (parsed ``(x1, y1, x2, y2)`` or None), ``prediction`` when present
    and ``source_id`` (the record's own id; record ids repeat-proofed with ``#k``).

    Options: ``task`` (default: from the file name or per record), ``require_images`` (default true).
    """

    name = "colon-inst"

    def read(
        self, path: str, image_root: str | None = None, on_bad_record: BadRecordPolicy = "skip"
    ) -> tuple[list[Record], LoadReport]:
        data_file = Path(path).expanduser()
        report = LoadReport(source=str(data_file))
        data = load_coloninst_json(data_file)
        task = self.options.get("task") or task_from_filename(data_file)
        if task is not None and task not in COLONINST_TASKS:
            raise DataError(f"colon-inst option task={task!r}: expected one of {', '.join(COLONINST_TASKS)}")
        require_images = truthy(self.options.get("require_images", True))
        roots = candidate_image_roots(data_file, image_root)
        seen: dict[str, int] = {}
        records = []
        for index, item in enumerate(data):
            record = self._record(item, index, task, roots, require_images, seen, report, on_bad_record)
            if record is not None:
                records.append(record)
        report.kept = len(records)
        return records, report

    def _record(
        self,
        item: Any,
        index: int,
        task: str | None,
        roots: list[Path],
        require_images: bool,
        seen: dict[str, int],
        report: LoadReport,
        policy: BadRecordPolicy,
    ) -> Record | None:
        source_id = str(item.get("id", f"#{index}")) if isinstance(item, dict) else f"#{index}"
        record_id = _unique_id(source_id, seen)
        turns = item.get("conversations") if isinstance(item, dict) else None
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            report.skip("no conversations list", record_id, policy)
            return None
        messages = [
            Message(_ROLES[str(t.get("from"))], str(t.get("value", "")).strip())
            for t in turns
            if t.get("from") in _ROLES
        ]
        predictions = [str(t.get("value", "")) for t in turns if t.get("from") == "prediction"]
        if len(messages) < 2 or messages[0].role != "user" or messages[1].role != "assistant":
            report.skip("missing question or answer turn", record_id, policy)
            return None
        if not messages[1].content:
            report.skip("empty answer", record_id, policy)
            return None
        question, answer = strip_placeholder(messages[0].content), messages[1].content
        record_task = task or guess_task(question, answer)
        answer_box, question_box = parse_box(answer), parse_box(question)
        if record_task == "rec" and answer_box is None:
            report.skip("REC answer without a four-number box", record_id, policy, answer)
            return None
        if record_task == "reg" and question_box is None:
            report.skip("REG question without a four-number box", record_id, policy, question)
            return None
        image = self._image(item, roots)
        if require_images:
            if image is None:
                report.skip("image not found", record_id, policy, str(item.get("image")))
                return None
            problem = image_problem(image)
            if problem:
                report.skip(problem, record_id, policy, str(image))
                return None
        if IMAGE_PLACEHOLDER not in messages[0].content:
            messages[0] = Message("user", f"{IMAGE_PLACEHOLDER}\n{messages[0].content}")
        metadata = {
            "question_id": record_id,
            "source_id": source_id,
            "task": record_task,
            "question": question,
            "answer": answer,
            "question_box": question_box,
            "answer_box": answer_box,
            "image_name": item.get("image"),
        }
        if predictions:
            metadata["prediction"] = predictions[-1]
        return Record(id=record_id, messages=messages, image=image, metadata=metadata)

    @staticmethod
    def _image(item: dict, roots: list[Path]) -> Path | None:
        for key in ("image", "id"):
            name = item.get(key)
            if isinstance(name, str) and name:
                found = resolve_image(name, roots)
                if found is not None:
                    return found
        return None


def _unique_id(source_id: str, seen: dict[str, int]) -> str:
    count = seen.get(source_id, 0)
    seen[source_id] = count + 1
    return source_id if count == 0 else f"{source_id}#{count}"
