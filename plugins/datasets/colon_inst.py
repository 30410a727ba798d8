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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from medzoo import (
    IMAGE_PLACEHOLDER,
    BadRecordPolicy,
    DataError,
    DatasetReader,
    LoadReport,
    Message,
    Record,
    read_text_file,
)
from medzoo.plugins.benchmarks.metrics.scoring import COLONINST_TASKS, parse_box
from medzoo.plugins.datasets.med_vqa import (
    candidate_image_roots,
    image_problem,
    reading_mode,
    refuse_duplicate_ids,
    resolve_image,
    strip_placeholder,
    truthy,
)
from medzoo.plugins.datasets.reference_answers import EMPTY, answer_problem, answer_text

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
    text = read_text_file(path, "a JSON list of ColonINST records")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not a readable json file ({error})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a json list of ColonINST records, got {type(data).__name__}")
    return data


def box_problem(box: tuple[int, int, int, int], image: Path | None) -> str | None:
    """Why a training box cannot be a target: inverted corners, or corners outside the image (pixel
    coordinates, inclusive, as IntelliScope writes them); None when it is usable."""
    x1, y1, x2, y2 = box
    if x1 > x2 or y1 > y2:
        return "inverted box (x1 > x2 or y1 > y2)"
    if min(box) < 0:
        return "box outside the image (negative coordinate)"
    if image is not None:
        try:
            with Image.open(image) as handle:
                width, height = handle.size
        except (OSError, ValueError):
            return None  # the image checks report an unreadable image
        if x2 >= width or y2 >= height:
            return f"box outside the image ({x2}, {y2} beyond {width}x{height})"
    return None


class ColonInstReader(DatasetReader):
    """ColonINST json -> conversation records; metadata keeps ``task``, ``question``, ``answer``,
    ``answer_raw``, ``question_box`` / ``answer_box`` (parsed ``(x1, y1, x2, y2)`` or None), ``source_id``
    (the record's own id; record ids repeat-proofed with ``#k``) and the record's ``prediction`` turns.

    Options:

    - ``task`` (default: from the file name or per record), ``require_images`` (default true);
    - ``tasks`` (train mode; default: all): keep only the records of these tasks (``[rec]``: the REC dialogues of
      ``ColonINST-train-3tasks.json``); the others are counted in the report under ``task <t> not selected``;
    - ``mode``: ``train`` (default) reads one record per json record and skips, counting each in the
      ``LoadReport``, records without a usable answer (null, empty or not text, a REC answer without a
      four-number box, a
      REG question without one); metadata ``predictions`` lists every ``prediction`` turn and
      ``prediction`` is set when there is exactly one. ``eval`` (the ``coloninst-*`` benchmarks) follows
      IntelliScope's ``multimodal_evaluator.py`` ``eval_engine``: every ``gpt`` turn is one scored item
      (ids ``ID``, ``ID@2``, ... for later turns), paired with the record's prediction turn of the same
      rank; REC answers without a box are kept (the evaluator scores them), while a null, empty or non-text
      answer is no reference: that turn is skipped and counted by reason (issue 29; ``score_empty_references``
      true scores empty and blank ones as the evaluator does); a record
      whose number of prediction turns is neither 0 nor its number of ``gpt`` turns is an error, since the
      evaluator would pair its predictions with other records' answers;
    - ``strip_answers`` (default false): the answer (``gpt`` turn) exactly as in the file, as the evaluator
      (``value.lower()``) and ColonGPT's training (``colongpt/util/data_utils.py``) use it; true strips
      surrounding whitespace (medzoo's former behaviour). Human turns are stripped either way.
    """

    name = "colon-inst"

    def read(
        self, path: str, image_root: str | None = None, on_bad_record: BadRecordPolicy = "skip"
    ) -> tuple[list[Record], LoadReport]:
        data_file = Path(path).expanduser()
        report = LoadReport(source=str(data_file))
        mode = reading_mode(self.name, self.options)
        data = load_coloninst_json(data_file)
        task = self.options.get("task") or task_from_filename(data_file)
        if task is not None and task not in COLONINST_TASKS:
            raise DataError(f"colon-inst option task={task!r}: expected one of {', '.join(COLONINST_TASKS)}")
        settings = _Settings(
            task=task,
            tasks=_selected_tasks(self.options.get("tasks")),
            roots=candidate_image_roots(data_file, image_root),
            require_images=truthy(self.options.get("require_images", True)),
            strip_answers=truthy(self.options.get("strip_answers", False)),
            source=str(data_file),
            score_empty=truthy(self.options.get("score_empty_references", False)),
        )
        seen: dict[str, int] = {}
        records = []
        positions: list[tuple[str, int]] = []
        for index, item in enumerate(data):
            if mode == "eval":
                found = self._eval_records(item, index, settings, seen, report, on_bad_record)
                records.extend(found)
                positions.extend((record.id, index) for record in found)
                continue
            record = self._record(item, index, settings, seen, report, on_bad_record)
            if record is not None:
                records.append(record)
        refuse_duplicate_ids(data_file, positions)  # ``a#1`` written in the file and a repeated ``a`` collide
        report.kept = len(records)
        return records, report

    @staticmethod
    def _parse(
        item: Any,
        index: int,
        settings: _Settings,
        seen: dict[str, int],
        report: LoadReport,
        policy: BadRecordPolicy,
    ) -> tuple[str, str, list[Message], list[str], list[str], list[str | None]] | None:
        """(source id, record id, user/assistant messages, their texts as in the file, prediction texts, why each
        message's value cannot be an answer or None), or None (skip counted)."""
        source_id = str(item.get("id", f"#{index}")) if isinstance(item, dict) else f"#{index}"
        record_id = _unique_id(source_id, seen)
        turns = item.get("conversations") if isinstance(item, dict) else None
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            report.skip("no conversations list", record_id, policy)
            return None
        messages, raws, problems = [], [], []
        for turn in turns:
            role = _ROLES.get(str(turn.get("from")))
            if role is None:
                continue
            text = answer_text(turn.get("value", ""))  # a null value is empty, never "None"
            raws.append(text)
            problems.append(answer_problem(turn.get("value")))
            messages.append(
                Message(role, text if role == "assistant" and not settings.strip_answers else text.strip())
            )
        predictions = [str(t.get("value", "")) for t in turns if t.get("from") == "prediction"]
        return source_id, record_id, messages, raws, predictions, problems

    def _image_or_skip(
        self, item: dict, record_id: str, settings: _Settings, report: LoadReport, policy: BadRecordPolicy
    ) -> tuple[bool, Path | None]:
        """(usable, image): the image, or False when it is required and missing or unreadable (skip counted)."""
        image = self._image(item, settings.roots)
        if settings.require_images:
            if image is None:
                report.skip("image not found", record_id, policy, str(item.get("image")))
                return False, None
            problem = image_problem(image)
            if problem:
                report.skip(problem, record_id, policy, str(image))
                return False, None
        return True, image

    def _record(
        self,
        item: Any,
        index: int,
        settings: _Settings,
        seen: dict[str, int],
        report: LoadReport,
        policy: BadRecordPolicy,
    ) -> Record | None:
        parsed = self._parse(item, index, settings, seen, report, policy)
        if parsed is None:
            return None
        source_id, record_id, messages, raws, predictions, problems = parsed
        if len(messages) < 2 or messages[0].role != "user" or messages[1].role != "assistant":
            report.skip("missing question or answer turn", record_id, policy)
            return None
        if problems[1] is not None:  # null, empty or not text: nothing to learn from
            report.skip(problems[1], record_id, policy)
            return None
        question, answer = strip_placeholder(messages[0].content), messages[1].content
        record_task = settings.task or guess_task(question, answer)
        if settings.tasks is not None and record_task not in settings.tasks:
            reason = f"task {record_task} not selected"  # a selection, not a bad record: counted, never an error
            report.skipped[reason] += 1
            report.examples.setdefault(reason, [])
            if len(report.examples[reason]) < 3:
                report.examples[reason].append(record_id)
            return None
        answer_box, question_box = parse_box(answer), parse_box(question)
        if record_task == "rec" and answer_box is None:
            report.skip("REC answer without a four-number box", record_id, policy, answer)
            return None
        if record_task == "reg" and question_box is None:
            report.skip("REG question without a four-number box", record_id, policy, question)
            return None
        usable, image = self._image_or_skip(item, record_id, settings, report, policy)
        if not usable:
            return None
        target = answer_box if record_task == "rec" else question_box if record_task == "reg" else None
        problem = box_problem(target, image) if target is not None else None
        if problem is not None:
            report.skip(problem, record_id, policy, answer if record_task == "rec" else question)
            return None
        if IMAGE_PLACEHOLDER not in messages[0].content:
            messages[0] = Message("user", f"{IMAGE_PLACEHOLDER}\n{messages[0].content}")
        metadata = _metadata(record_id, source_id, record_task, question, answer, raws[1], item)
        metadata["predictions"] = predictions
        if len(predictions) == 1:
            metadata["prediction"] = predictions[0]
        return Record(id=record_id, messages=messages, image=image, metadata=metadata)

    def _eval_records(
        self,
        item: Any,
        index: int,
        settings: _Settings,
        seen: dict[str, int],
        report: LoadReport,
        policy: BadRecordPolicy,
    ) -> list[Record]:
        parsed = self._parse(item, index, settings, seen, report, policy)
        if parsed is None:
            return []
        source_id, record_id, messages, raws, predictions, problems = parsed
        answer_turns = [k for k, message in enumerate(messages) if message.role == "assistant"]
        if not answer_turns:
            # the evaluator would take no reference from it and shift every later pair
            report.skip("no answer (gpt) turn", record_id, policy)
            return []
        if predictions and len(predictions) != len(answer_turns):
            raise DataError(
                f"{settings.source}: record {record_id}: {len(predictions)} prediction turns for "
                f"{len(answer_turns)} gpt turns; expected one prediction per gpt turn (the official evaluator "
                "pairs all prediction and gpt turns of the file in order, so it would score this record's "
                "predictions against other records' answers)"
            )
        usable, image = self._image_or_skip(item, record_id, settings, report, policy)
        if not usable:
            return []
        records = []
        for rank, position in enumerate(answer_turns):
            history = list(messages[: position + 1])
            asked = [k for k in range(position) if history[k].role == "user"]
            question = strip_placeholder(history[asked[-1]].content) if asked else ""
            answer = history[position].content
            if asked and IMAGE_PLACEHOLDER not in history[asked[0]].content:
                history[asked[0]] = Message("user", f"{IMAGE_PLACEHOLDER}\n{history[asked[0]].content}")
            item_id = record_id if rank == 0 else f"{record_id}@{rank + 1}"
            if problems[position] is not None and not (settings.score_empty and problems[position] == EMPTY):
                # no reference: counted, and no metric sees it (issue 29)
                report.skip(problems[position], item_id, policy)
                continue
            record_task = settings.task or guess_task(question, answer)
            metadata = _metadata(item_id, source_id, record_task, question, answer, raws[position], item)
            metadata["turn"] = rank + 1
            if predictions:
                metadata["prediction"] = predictions[rank]
            records.append(Record(id=item_id, messages=history, image=image, metadata=metadata))
        return records

    @staticmethod
    def _image(item: dict, roots: list[Path]) -> Path | None:
        for key in ("image", "id"):
            name = item.get(key)
            if isinstance(name, str) and name:
                found = resolve_image(name, roots)
                if found is not None:
                    return found
        return None


@dataclass(frozen=True)
class _Settings:
    task: str | None
    tasks: frozenset[str] | None
    roots: list[Path]
    require_images: bool
    strip_answers: bool
    source: str
    score_empty: bool = False


def _selected_tasks(value: Any) -> frozenset[str] | None:
    """The ``tasks`` option as a set of ColonINST tasks (None: every task)."""
    if value is None:
        return None
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",")]
    else:  # a list (or an OmegaConf ListConfig)
        names = list(value) if hasattr(value, "__iter__") and not isinstance(value, dict) else []
    if not names or any(name not in COLONINST_TASKS for name in names):
        raise DataError(f"colon-inst option tasks={value!r}: expected a list of {', '.join(COLONINST_TASKS)}")
    return frozenset(names)


def _metadata(
    record_id: str, source_id: str, task: str, question: str, answer: str, answer_raw: str, item: dict
) -> dict[str, Any]:
    return {
        "question_id": record_id,
        "source_id": source_id,
        "task": task,
        "question": question,
        "answer": answer,
        "answer_raw": answer_raw,
        "question_box": parse_box(question),
        "answer_box": parse_box(answer),
        "image_name": item.get("image"),
    }


def _unique_id(source_id: str, seen: dict[str, int]) -> str:
    count = seen.get(source_id, 0)
    seen[source_id] = count + 1
    return source_id if count == 0 else f"{source_id}#{count}"
