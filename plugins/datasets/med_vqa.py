"""The ``med-vqa`` reader: VQA-RAD, SLAKE and PathVQA in their original and LLaVA-Med formats.

Formats (detected from the file, or forced with the option ``format``):

- ``llava-med-test``: LLaVA-Med's ``test.json`` (``id, image, answer_type, question_type, conversations``);
- ``vqa-rad``: the OSF release json (``qid, image_name, question, answer, answer_type, question_type,
  phrase_type``); option ``split=train|test|all`` (default train; test = phrase_type test_freeform/test_para);
- ``slake``: SLAKE ``{train,validation,test}.json``; option ``q_lang`` (default ``en``; ``all`` keeps every language);
- ``pathvqa``: PathVQA ``qas/<split>/<split>_qa.pkl`` (a list of ``image, question, answer`` dicts);
- ``parquet``: the Hugging Face copies (``image`` bytes column, ``question``, ``answer``), whose images are
  written once to option ``extract_dir`` (default ``<file stem>_images`` beside the file).

Where a format has no answer type, answers "yes"/"no" are closed and everything else is open.

Answers keep the text exactly as in the file (metadata ``answer_raw`` always; ``answer`` and the training
target too unless ``strip_answers`` is set): LLaVA-Med's scorer (``v1.0.0:llava/eval/run_eval_batch.py``
``evaluate``) lower-cases and normalises the raw ``conversations[1].value`` itself, and its trainer
(``v1.0.0:llava/train/train.py`` ``_add_speaker_and_signal``) puts the raw value into the target.
Option ``mode``: ``train`` (default) skips records with an empty question or answer (counted in the
``LoadReport``); ``eval`` (what the benchmarks use) keeps them, as the official scorer scores them.

Trust: a pickle file can run code when loaded. The PathVQA reader only opens the local file you name and
unpickles it with an allow-list that admits plain containers, strings and numbers (and numpy scalars); any
other class stops the load with a ``DataError``. Convert untrusted copies to json first if in doubt.
"""

from __future__ import annotations

import functools
import json
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from medzoo.plugins.datasets.reference_answers import EMPTY, answer_problem, answer_text

FORMATS = ("llava-med-test", "vqa-rad", "slake", "pathvqa", "parquet")
VQA_RAD_TEST_PHRASES = frozenset({"test_freeform", "test_para"})
IMAGE_SUFFIXES = ("", ".jpg", ".png", ".jpeg")


@dataclass
class VqaExample:
    """One question with its answer, before images are resolved."""

    question_id: str
    question: str
    answer: str
    answer_type: str
    question_type: str = ""
    image: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: the record's position in the file (counting from 0)
    position: int = -1
    #: why the answer cannot be a reference or a target (``reference_answers.answer_problem``), or None
    answer_problem: str | None = None


# --- images (shared with the colon-inst reader) -------------------------------------------------


def candidate_image_roots(data_file: Path, image_root: str | None) -> list[Path]:
    """Folders an image path in ``data_file`` may be relative to: ``image_root`` if given, else the usual
    places of the original releases and of the ``medzoo data synth`` layout (``DIR/images``)."""
    if image_root is not None:
        return [Path(image_root).expanduser().resolve()]
    folder = data_file.resolve().parent
    ancestors = [folder, *folder.parents[:3]]
    names = ("", "images", "imgs", "VQA_RAD Image Folder")
    roots = [ancestor / name if name else ancestor for ancestor in ancestors for name in names]
    return [root for root in dict.fromkeys(roots) if root.is_dir()]


def resolve_image(name: str, roots: Iterable[Path], subfolders: Iterable[str] = ()) -> Path | None:
    """The first existing file for ``name`` under ``roots`` (also trying ``subfolders`` and the usual
    suffixes, as PathVQA names images without one)."""
    path = Path(name).expanduser()
    if path.is_absolute():
        return path if path.is_file() else None
    for root in roots:
        for sub in ("", *subfolders):
            for suffix in IMAGE_SUFFIXES:
                candidate = (root / sub / path) if sub else root / path
                candidate = candidate.with_name(candidate.name + suffix) if suffix else candidate
                if candidate.is_file():
                    return candidate
    return None


def image_problem(path: Path) -> str | None:
    """None when ``path`` decodes completely as an image, else the reason ("unreadable image"): a truncated file
    passes PIL's ``verify`` but would fail when a benchmark question is asked, so it is decoded in full.

    Benchmarks ask many questions about one image (VQA-RAD: 451 test questions on 203 images), so each file's
    verdict is remembered for as long as its size and modification time stay the same."""
    try:
        status = path.stat()
    except OSError:
        return "unreadable image"
    return _decoded_verdict(str(path.resolve()), status.st_size, status.st_mtime_ns)


@functools.lru_cache(maxsize=65536)
def _decoded_verdict(path: str, size: int, mtime_ns: int) -> str | None:
    """The verdict of one version of one file (``size`` and ``mtime_ns`` are part of the key, not read)."""
    from medzoo.plugins.datasets.image_checks import decode_problem

    return "unreadable image" if decode_problem(Path(path)) else None


def refuse_duplicate_ids(source: str | Path, ids: Iterable[tuple[str, int]]) -> None:
    """DataError naming the file, the id and both positions when a question id repeats: its answers and scores
    would overwrite each other (``ids``: (question id, position in the file counting from 0))."""
    first: dict[str, int] = {}
    for question_id, position in ids:
        if question_id in first:
            raise DataError(
                f"{source}: question id {question_id!r} appears twice (records #{first[question_id]} and "
                f"#{position}, counting from 0); every question needs its own id to be answered and scored"
            )
        first[question_id] = position


# --- format detection and parsing --------------------------------------------------------------


def detect_format(path: Path) -> str:
    """Guess the format from the suffix and, for json, the keys of the first record."""
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        return "pathvqa"
    if suffix == ".parquet":
        return "parquet"
    data = _load_json(path)
    first = next((item for item in data if isinstance(item, dict)), None)
    if first is None:
        return "llava-med-test"
    if "conversations" in first or "conversatons" in first:
        return "llava-med-test"
    if "phrase_type" in first or "image_name" in first:
        return "vqa-rad"
    if "img_name" in first or "q_lang" in first:
        return "slake"
    raise DataError(
        f"{path}: cannot tell the medical-VQA format from the keys {sorted(first)}; "
        f"set the option format to one of {', '.join(FORMATS)}"
    )


def _load_json(path: Path) -> list:
    text = read_text_file(path, "a JSON list of question records")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not a readable json file ({error})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a json list of records, got {type(data).__name__}")
    return data


def answer_type_of(answer: str) -> str:
    """Closed for yes/no answers, open otherwise (formats without an answer type)."""
    return "closed" if answer.strip().lower().rstrip(".") in ("yes", "no") else "open"


def _canonical_type(value: Any, answer: str) -> str:
    text = str(value or "").strip().lower()
    if text in ("open", "closed"):
        return text
    return answer_type_of(answer)


def _text(record: dict, key: str) -> str:
    value = record.get(key)
    return "" if value is None else str(value).strip()


def _raw(record: dict, key: str) -> str:
    """A field as text, exactly as in the file (answers: the official scorer normalises them itself)."""
    return answer_text(record.get(key))


def strip_placeholder(text: str) -> str:
    """The question without the ``<image>`` placeholder."""
    return text.replace(IMAGE_PLACEHOLDER, "").strip()


def _parse_llava_med_test(data: list, report: LoadReport, policy: BadRecordPolicy) -> list[VqaExample]:
    examples = []
    for index, item in enumerate(data):
        record_id = str(item.get("id", f"#{index}")) if isinstance(item, dict) else f"#{index}"
        turns = (item.get("conversations") or item.get("conversatons")) if isinstance(item, dict) else None
        if not isinstance(turns, list) or len(turns) < 2 or not all(isinstance(t, dict) for t in turns[:2]):
            report.skip("no question/answer conversation", record_id, policy)
            continue
        question, answer = strip_placeholder(str(turns[0].get("value", ""))), _raw(turns[1], "value")
        examples.append(
            VqaExample(
                record_id, question, answer, _canonical_type(item.get("answer_type"), answer),
                _text(item, "question_type"), item.get("image"), position=index,
                answer_problem=answer_problem(turns[1].get("value")),
            )
        )  # fmt: skip
    return examples


def _parse_vqa_rad(data: list, split: str, report: LoadReport, policy: BadRecordPolicy) -> list[VqaExample]:
    if split not in ("train", "test", "all"):
        raise DataError(f"med-vqa option split={split!r}: expected train, test or all")
    examples = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            report.skip("not a json object", f"#{index}", policy)
            continue
        record_id = str(item.get("qid", f"#{index}"))
        is_test = _text(item, "phrase_type") in VQA_RAD_TEST_PHRASES
        if split != "all" and is_test != (split == "test"):
            report.skip(f"other split (not {split})", record_id, "skip")
            continue
        answer = _raw(item, "answer")
        examples.append(
            VqaExample(
                record_id, _text(item, "question"), answer, _canonical_type(item.get("answer_type"), answer),
                _text(item, "question_type"), item.get("image_name"),
                {"image_organ": _text(item, "image_organ"), "phrase_type": _text(item, "phrase_type")},
                position=index, answer_problem=answer_problem(item.get("answer")),
            )
        )  # fmt: skip
    return examples


def _parse_slake(data: list, q_lang: str, report: LoadReport, policy: BadRecordPolicy) -> list[VqaExample]:
    examples = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            report.skip("not a json object", f"#{index}", policy)
            continue
        record_id = str(item.get("qid", f"#{index}"))
        language = _text(item, "q_lang")
        if q_lang != "all" and language != q_lang:
            report.skip(f"q_lang {language or 'missing'} (not {q_lang})", record_id, "skip")
            continue
        answer = _raw(item, "answer")
        extra = {key: _text(item, key) for key in ("q_lang", "modality", "location", "content_type")}
        examples.append(
            VqaExample(
                record_id, _text(item, "question"), answer, _canonical_type(item.get("answer_type"), answer),
                _text(item, "content_type"), item.get("img_name"), extra, position=index,
                answer_problem=answer_problem(item.get("answer")),
            )
        )  # fmt: skip
    return examples


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles containers, strings and numbers only: refuses every class outside a short allow-list."""

    ALLOWED = frozenset(
        {
            ("collections", "OrderedDict"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_pickle_list(path: Path) -> list:
    """A list of records from a local PathVQA pickle, loaded with the allow-list unpickler."""
    try:
        with path.open("rb") as handle:
            data = _PlainDataUnpickler(handle).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise DataError(f"{path}: not a PathVQA pickle of plain records ({error})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a pickled list of records, got {type(data).__name__}")
    return data


def _split_of_pickle(path: Path) -> str:
    return path.stem.removesuffix("_qa") or path.parent.name


def _parse_pathvqa(path: Path, report: LoadReport, policy: BadRecordPolicy) -> list[VqaExample]:
    split = _split_of_pickle(path)
    examples = []
    for index, item in enumerate(load_pickle_list(path)):
        record_id = f"pathvqa-{split}-{index:05d}"
        if not isinstance(item, dict):
            report.skip("not a dict", record_id, policy)
            continue
        answer = _raw(item, "answer")
        examples.append(
            VqaExample(record_id, _text(item, "question"), answer, answer_type_of(answer), "",
                       None if item.get("image") is None else str(item["image"]), {"split": split}, index,
                       answer_problem(item.get("answer")))
        )  # fmt: skip
    return examples


def _image_bytes(cell: Any) -> bytes | None:
    if isinstance(cell, dict):
        cell = cell.get("bytes")
    return cell if isinstance(cell, (bytes, bytearray)) and cell else None


def _image_suffix(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    return ".img"


def _parse_parquet(
    path: Path, extract_dir: Path, report: LoadReport, policy: BadRecordPolicy
) -> list[VqaExample]:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise DataError(f"{path}: reading parquet needs pyarrow (pip install 'medzoo[data]')") from None
    try:
        rows = parquet.read_table(path).to_pylist()
    except Exception as error:
        raise DataError(f"{path}: not a readable parquet file ({error})") from None
    if rows and not {"question", "answer"} <= set(rows[0]):
        raise DataError(f"{path}: expected the columns question, answer and image; got {sorted(rows[0])}")
    examples = []
    for index, row in enumerate(rows):
        record_id = f"{path.stem}-{index:05d}"
        data = _image_bytes(row.get("image"))
        image = None
        if data is not None:
            extract_dir.mkdir(parents=True, exist_ok=True)
            target = extract_dir / f"{index:06d}{_image_suffix(data)}"
            if not target.is_file() or target.stat().st_size != len(data):
                target.write_bytes(data)
            image = str(target)
        answer = _raw(row, "answer")
        examples.append(
            VqaExample(record_id, _text(row, "question"), answer,
                       _canonical_type(row.get("answer_type"), answer), _text(row, "question_type"), image,
                       position=index, answer_problem=answer_problem(row.get("answer")))
        )  # fmt: skip
    return examples


# --- the reader ----------------------------------------------------------------------------------


def read_examples(
    path: Path, options: dict[str, Any], report: LoadReport, policy: BadRecordPolicy
) -> tuple[str, list[VqaExample]]:
    """(format, examples) of one medical-VQA file; bad records are counted in ``report``."""
    if not path.is_file():
        raise DataError(f"{path}: no such file (a medical-VQA json, pkl or parquet file)")
    fmt = options.get("format") or detect_format(path)
    if fmt not in FORMATS:
        raise DataError(f"med-vqa option format={fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "pathvqa":
        return fmt, _parse_pathvqa(path, report, policy)
    if fmt == "parquet":
        extract_dir = Path(options.get("extract_dir") or path.with_name(f"{path.stem}_images"))
        return fmt, _parse_parquet(path, extract_dir, report, policy)
    data = _load_json(path)
    if fmt == "vqa-rad":
        return fmt, _parse_vqa_rad(data, str(options.get("split", "train")), report, policy)
    if fmt == "slake":
        return fmt, _parse_slake(data, str(options.get("q_lang", "en")), report, policy)
    return fmt, _parse_llava_med_test(data, report, policy)


class MedVqaReader(DatasetReader):
    """Medical VQA files -> single-turn instruction records ``<image>\\n{question}`` -> answer.

    Options: ``format``, ``split`` (VQA-RAD OSF), ``q_lang`` (SLAKE), ``extract_dir`` (parquet),
    ``require_images`` (default true: a record whose image is missing or unreadable is skipped;
    false keeps it with ``image=None`` when missing, e.g. for scoring), ``mode`` (``train``: records with
    an empty question are skipped and counted; ``eval``: kept, as the official scorer scores them; in both, a
    null, empty, blank or non-text answer is skipped and counted by reason, see ``reference_answers``, unless
    ``score_empty_references`` is true in eval mode, which scores empty and blank ones as the official scorer
    does), ``strip_answers`` (default false: the answer as in the file, as the
    official scorer and trainer use it; true strips surrounding whitespace, medzoo's former behaviour).
    Metadata: ``question_id, question, answer, answer_raw, answer_type (open|closed), question_type,
    format`` and the format's own fields (organ, modality, language...).
    """

    name = "med-vqa"

    def read(
        self, path: str, image_root: str | None = None, on_bad_record: BadRecordPolicy = "skip"
    ) -> tuple[list[Record], LoadReport]:
        data_file = Path(path).expanduser()
        report = LoadReport(source=str(data_file))
        mode = reading_mode(self.name, self.options)
        strip_answers = truthy(self.options.get("strip_answers", False))
        score_empty = mode == "eval" and truthy(self.options.get("score_empty_references", False))
        fmt, examples = read_examples(data_file, self.options, report, on_bad_record)
        if mode == "eval":
            refuse_duplicate_ids(data_file, ((e.question_id, e.position) for e in examples))
        require_images = truthy(self.options.get("require_images", True))
        roots = candidate_image_roots(data_file, image_root)
        records = []
        for example in examples:
            record = self._record(
                example,
                fmt,
                roots,
                require_images,
                report,
                on_bad_record,
                mode=mode,
                strip_answers=strip_answers,
                score_empty=score_empty,
            )
            if record is not None:
                records.append(record)
        report.kept = len(records)
        return records, report

    @staticmethod
    def _record(
        example: VqaExample,
        fmt: str,
        roots: list[Path],
        require_images: bool,
        report: LoadReport,
        policy: BadRecordPolicy,
        *,
        mode: str = "train",
        strip_answers: bool = False,
        score_empty: bool = False,
    ) -> Record | None:
        qid = example.question_id
        answer = example.answer.strip() if strip_answers else example.answer
        if mode == "train" and not example.question:
            report.skip("empty question", qid, policy)  # nothing to learn from; eval mode still asks it
            return None
        if example.answer_problem is not None and not (score_empty and example.answer_problem == EMPTY):
            # no target to learn, no reference to score against (issue 29); ``score_empty_references`` scores
            # empty and blank references as the official run_eval_batch does (a hit for every prediction)
            report.skip(example.answer_problem, qid, policy)
            return None
        image = None
        if example.image:
            split_folder = (example.extra.get("split"),) if example.extra.get("split") else ()
            image = resolve_image(example.image, roots, split_folder)
        if require_images:
            if image is None:
                report.skip(
                    "image not found" if example.image else "no image", qid, policy, str(example.image)
                )
                return None
            problem = image_problem(image)
            if problem:
                report.skip(problem, qid, policy, str(image))
                return None
        metadata = {
            "question_id": qid,
            "question": example.question,
            "answer": answer,
            "answer_raw": example.answer,
            "answer_type": example.answer_type,
            "question_type": example.question_type,
            "format": fmt,
            "image_name": example.image,
            **example.extra,
        }
        messages = [
            Message("user", f"{IMAGE_PLACEHOLDER}\n{example.question}"),
            Message("assistant", answer),
        ]
        return Record(id=qid, messages=messages, image=image, metadata=metadata)


READING_MODES = ("train", "eval")


def reading_mode(reader: str, options: dict[str, Any]) -> str:
    """The option ``mode``: ``train`` (default; unusable records skipped and counted) or ``eval`` (every
    record the official scorer scores is kept)."""
    mode = str(options.get("mode") or "train").strip().lower()
    if mode not in READING_MODES:
        raise DataError(f"{reader} option mode={options.get('mode')!r}: expected train or eval")
    return mode


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)
