"""Answer a benchmark's questions (batched, resumable) and score them.

Answers go to ``predictions.jsonl`` (``predictions.<ablation>.jsonl``) as each chunk is answered, beside a
``.meta.json`` sidecar saying what they belong to; a rerun asks only the questions not answered yet, and refuses
a file whose sidecar describes another model, benchmark, data file, protocol or ablation (``fresh`` starts over).

The model is any :class:`Answerer` (a medzoo model is wrapped in :class:`MedzooAnswerer`). Under a multi-process
launch (:mod:`medzoo.core.evaluation.processes`) each process answers its share of the pending questions into a
part file, the main process merges the parts into the answer file and scores once.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from medzoo.core.atomic_writes import write_atomically
from medzoo.core.errors import DataError
from medzoo.core.evaluation.ablation import ABLATIONS, ablated_image
from medzoo.core.evaluation.answer_file import JsonlAppender
from medzoo.core.evaluation.answer_meta import (
    ANSWER_FILE,
    answer_meta,
    meta_path,
    refuse_mismatched_resume,
    write_meta,
)
from medzoo.core.evaluation.answer_parts import merge_parts, part_files, part_path, read_records
from medzoo.core.evaluation.medzoo_answerer import as_answerer
from medzoo.core.evaluation.multi_image import REFUSED_KIND, apply_multi_image, multi_image_policy
from medzoo.core.evaluation.processes import EvalProcesses
from medzoo.core.evaluation.question_counts import counts_of
from medzoo.core.inference import ChatRequest, SamplingSettings
from medzoo.core.interfaces.answerer import Answerer
from medzoo.core.interfaces.benchmark import Benchmark, BenchmarkItem
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.plugin_system.manager import components

#: what evaluation answers with: an answerer, or a medzoo model (wrapped in ``MedzooAnswerer``)
Model = Answerer | MultimodalModel


def get_benchmark(name: str, options: dict[str, Any] | None = None) -> Benchmark:
    return components().get("benchmark", name).factory(**(options or {}))


#: benchmark options that choose the evaluation protocol (read here, not by the benchmark)
PROTOCOL_OPTIONS = ("prompt_template", "decoding", "temperature", "seed", "multi_image")
DECODINGS = ("greedy", "sampled")


@dataclass(frozen=True)
class Protocol:
    """How answers are produced: the prompt template and the decoding settings (recorded with the scores)."""

    template: str
    settings: SamplingSettings

    def describe(self) -> dict[str, Any]:
        return {"prompt_template": self.template, "decoding": self.settings.describe(), "seed": self.settings.seed}

    def record(self) -> dict[str, Any]:
        """What answers depend on (the answer file's sidecar): the description and the answer length limit."""
        return {**self.describe(), "max_new_tokens": self.settings.max_new_tokens}


def split_protocol_options(options: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the benchmark's own options, the protocol options) of a benchmark's option mapping."""
    options = dict(options or {})
    return {k: v for k, v in options.items() if k not in PROTOCOL_OPTIONS}, {
        k: v for k, v in options.items() if k in PROTOCOL_OPTIONS
    }


def protocol_for(model: Model, benchmark: Benchmark, options: dict[str, Any]) -> Protocol:
    """The prompt template and decoding of an evaluation.

    Template: the model's choice given the option ``prompt_template`` (:meth:`Answerer.prompt_for`; a medzoo
    model: the option, else the evaluation template its training template names - LLaVA-Med v1.0 weights:
    ``llava_med_v1_vqa``, the paper's prompt - else its template; a contender: its own chat template). Decoding:
    the option ``decoding`` (greedy | sampled, with ``temperature``), else the model's default (v1.0: sampled at
    0.7 as ``model_vqa_med.py``), else greedy. ``seed`` (default 0, as LLaVA-Med's ``model_vqa.py``) makes
    sampling repeatable.
    """
    requested = options.get("prompt_template")
    choice = as_answerer(model).prompt_for(benchmark, str(requested) if requested else None)
    name, default = choice.template, choice.decoding
    decoding = options.get("decoding")
    if decoding is not None and decoding not in DECODINGS:
        raise DataError(f"benchmark option decoding={decoding!r}: expected one of {', '.join(DECODINGS)}")
    sampled = decoding == "sampled" if decoding is not None else bool(default.get("do_sample"))
    temperature = float(options.get("temperature", default.get("temperature", 0.7 if sampled else 0.0)))
    if sampled and temperature <= 0:
        raise DataError(f"benchmark option temperature={temperature!r}: sampling needs a temperature > 0")
    seed = options.get("seed", 0)
    settings = SamplingSettings(
        max_new_tokens=int(benchmark.decoding.get("max_new_tokens", 64)),
        temperature=temperature if sampled else 0.0,
        top_p=float(benchmark.decoding.get("top_p", 1.0)),
        seed=int(seed) if seed is not None else None,
    )
    return Protocol(str(name), settings)


def _image_of(item: BenchmarkItem, path: Path | None = None) -> Image.Image:
    """One image of ``item`` (``path``; default its first), opened whole; a damaged file is one line."""
    path = item.image if path is None else path
    try:
        with Image.open(path) as handle:
            handle.load()
            return handle.copy()  # the vision encoder's transform handles the mode (L, 16-bit, RGBA...)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        detail = str(error).splitlines()[0] if str(error) else "unreadable"
        raise DataError(
            f"{path}: question {item.question_id}: cannot read the image ({type(error).__name__}: {detail})"
        ) from None


def _request(benchmark: Benchmark, item: BenchmarkItem, ablation: str | None) -> ChatRequest:
    """The question's prompt and every image of it (each ablated alike, the first with the question's seed)."""
    images = []
    for position, path in enumerate(item.images):
        image = _image_of(item, path)
        if ablation:
            key = str(item.question_id) if not position else f"{item.question_id}/{position}"
            image = ablated_image(image.convert("RGB"), ablation, zlib.crc32(key.encode()))
        images.append(image)
    return ChatRequest([Message("user", benchmark.prompt(item))], images[0] if images else None, images[1:])


def _answers_in(predictions_path: Path, echo=print) -> dict[str, str]:
    """question id -> answer of the lines already in a predictions file (none when it does not exist); a torn
    last line is cut off (its question is asked again), any other bad line is a DataError naming it."""
    return {str(record["question_id"]): record["text"] for record in read_records(predictions_path, echo)}


def _silent(*_: Any) -> None:
    return None


def _answered_before(predictions_path: Path, processes: EvalProcesses, echo) -> tuple[dict[str, str], list[Path]]:
    """The answers in the answer file and in every part file (a torn last line cut off by the main process
    first), and those part files."""
    answered: dict[str, str] = {}
    with processes.main_first():
        parts = part_files(predictions_path)
        for path in (predictions_path, *parts):
            for key, text in _answers_in(path, echo).items():
                answered.setdefault(key, text)
    return answered, parts


def answer_items(
    model: Model,
    benchmark: Benchmark,
    items: list[BenchmarkItem],
    predictions_path: Path,
    model_id: str,
    batch_size: int = 16,
    ablation: str | None = None,
    echo=print,
    protocol: Protocol | None = None,
    meta: dict[str, Any] | None = None,
    processes: EvalProcesses | None = None,
) -> dict[str, str]:
    """Write LLaVA-Med answer lines to ``predictions_path``; questions already there are not asked again.

    With ``meta`` (see :func:`answer_meta`), answers already there must carry the same sidecar, which is written
    before the first new answer is appended. With several ``processes``, each answers every N-th pending question
    (by position) into its part file and the main process merges the parts; every process returns the answers
    it knows of (the main process: all of them).
    """
    processes = processes or EvalProcesses()
    answerer = as_answerer(model, model_id)
    say = echo if processes.is_main else _silent
    if meta is not None:
        for path in (predictions_path, *part_files(predictions_path)):
            refuse_mismatched_resume(path, meta)
    answered, parts = _answered_before(predictions_path, processes, say)
    pending = [item for item in items if str(item.question_id) not in answered]
    if answered:
        found = f" and {len(parts)} part files" if parts else ""
        say(f"  {len(answered)} answers found in {predictions_path}{found}, {len(pending)} to go")
    protocol = protocol or protocol_for(answerer, benchmark, {})
    mine = processes.shard(pending)
    target = part_path(predictions_path, processes.rank) if processes.distributed else predictions_path
    label = f"{benchmark.name}{' [' + ablation + ']' if ablation else ''}"
    progress = tqdm(total=len(mine), desc=label, disable=not processes.is_main)
    if meta is not None:
        if processes.is_main:
            write_meta(predictions_path, meta)
        if target != predictions_path:
            write_meta(target, meta)
    with JsonlAppender(target, echo=say) as appender:
        for start in range(0, len(mine), batch_size * 4):
            chunk = mine[start : start + batch_size * 4]
            requests = [_request(benchmark, item, ablation) for item in chunk]
            for group in _checked_groups(answerer, requests, protocol, batch_size):
                records = []
                for index, text in group:
                    item, request = chunk[index], requests[index]
                    records.append({
                        "question_id": item.question_id,
                        "prompt": request.messages[0].content,
                        "text": text,
                        "answer_id": uuid.uuid4().hex,
                        "model_id": model_id,
                        "metadata": {"answer_type": item.answer_type,
                                     **({"image_ablation": ablation} if ablation else {})},
                    })  # fmt: skip
                    answered[str(item.question_id)] = text
                appender.write(records)
                progress.update(len(group))
    progress.close()
    if not target.stat().st_size and target != predictions_path:
        target.unlink()  # a process with nothing to answer leaves no part
        meta_path(target).unlink(missing_ok=True)
    return _merged(predictions_path, items, answered, processes, say) if processes.distributed or parts else answered


def _checked_groups(answerer: Answerer, requests: list[ChatRequest], protocol: Protocol, batch_size: int):
    """The answerer's answer groups, checked to answer every request exactly once."""
    seen: set[int] = set()
    groups = answerer.answer_groups(requests, protocol.settings, protocol.template, batch_size)
    for group in groups:
        for index, _ in group:
            if not 0 <= index < len(requests) or index in seen:
                raise DataError(f"{answerer.model_id}: answered request {index} twice or out of range "
                                f"(0..{len(requests) - 1})")
            seen.add(index)
        yield group
    if len(seen) != len(requests):
        raise DataError(f"{answerer.model_id}: answered {len(seen)} of {len(requests)} requests")


def _merged(
    predictions_path: Path, items: list[BenchmarkItem], answered: dict[str, str], processes: EvalProcesses, echo
) -> dict[str, str]:
    """Once every process is done, the main process merges the part files into the answer file (in question
    order) and reads back every answer."""
    processes.barrier()
    if not processes.is_main:
        return answered
    merge_parts(predictions_path, {str(item.question_id): index for index, item in enumerate(items)}, echo)
    return _answers_in(predictions_path, echo)


def _ablation_report(kind: str, metrics: dict[str, Any], ablated_metrics: dict[str, Any]) -> dict[str, Any]:
    """The ablated run's metrics and how much each headline metric dropped."""
    return {
        "kind": kind,
        "metrics": ablated_metrics,
        "drop": {
            key: round(metrics[key] - value, 2)
            for key, value in ablated_metrics.items()
            if isinstance(value, int | float) and key in metrics and key != "n" and not key.startswith("n_")
        },
    }


def answer_files(output_dir: Path, image_ablation: str | None) -> dict[str | None, Path]:
    """ablation (None: the real images) -> the answer file of an evaluation into ``output_dir``."""
    files: dict[str | None, Path] = {None: output_dir / ANSWER_FILE}
    if image_ablation:
        files[image_ablation] = output_dir / f"predictions.{image_ablation}.jsonl"
    return files


def remove_evaluation_outputs(output_dir: Path, echo=print, reason: str = "--fresh") -> list[Path]:
    """Delete what ``evaluate`` writes into ``output_dir`` (every answer file and part file, their sidecars,
    ``metrics.json``) and nothing else; returns what was removed."""
    answers = [path for kind in (None, *ABLATIONS) for path in answer_files(output_dir, kind).values()]
    answers += [part for path in answers for part in part_files(path)]
    names = [name for path in answers for name in (path.name, meta_path(path).name)]
    removed = []
    for name in dict.fromkeys([*names, "metrics.json"]):
        path = output_dir / name
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(path)
    if removed:
        echo(f"{reason}: removed {', '.join(p.name for p in removed)} from {output_dir}")
    return removed


def _refuse_mismatched(path: Path, meta: dict[str, Any]) -> None:
    """DataError when the answer file or one of its part files belongs to another evaluation."""
    for answers in (path, *part_files(path)):
        refuse_mismatched_resume(answers, meta)


def _redo_stale(files: dict[str | None, Path], metas: dict[str | None, dict[str, Any]], output_dir: Path,
                benchmark_name: str, echo) -> None:
    """Remove the evaluation's outputs, saying why, when an answer file belongs to another evaluation."""
    for kind, path in files.items():
        try:
            _refuse_mismatched(path, metas[kind])
        except DataError as error:
            echo(f"answering {benchmark_name} again: {str(error).split('; ')[0]}")
            remove_evaluation_outputs(output_dir, echo, reason="stale answers")
            return


def evaluate(
    model: Model,
    benchmark_name: str,
    output_dir: str | Path,
    data: str | None = None,
    image_root: str | None = None,
    options: dict[str, Any] | None = None,
    batch_size: int = 16,
    image_ablation: str | None = None,
    model_id: str | None = None,
    echo=print,
    fresh: bool = False,
    redo_stale: bool = False,
    processes: EvalProcesses | None = None,
    contender: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Answer and score one benchmark; with ``image_ablation`` also re-score with ablated images.

    ``model``: a medzoo model or any :class:`Answerer` (a contender); ``model_id`` (default: the answerer's
    own, ``model`` for a medzoo model) names it in the answers. Answers already in ``output_dir`` are reused only
    when their sidecar matches this evaluation (else a DataError); ``fresh`` first removes the answer files,
    sidecars and ``metrics.json`` an earlier run wrote. ``redo_stale`` (``medzoo run``, whose run folder owns its
    answers) removes them, saying why, only when they do not match instead of refusing. With several
    ``processes`` (see :func:`medzoo.core.evaluation.processes.eval_processes`) every process calls this; the
    main process speaks, merges, scores and writes ``metrics.json`` and returns the metrics, the others ``{}``.
    ``contender`` (its name and how it was chosen) is recorded in ``metrics.json`` with the answerer's
    :meth:`~Answerer.describe`.
    """
    if image_ablation is not None and image_ablation not in ABLATIONS:
        raise DataError(f"image ablation {image_ablation!r}: expected one of {', '.join(ABLATIONS)}")
    processes = processes or EvalProcesses()
    say = echo if processes.is_main else _silent
    answerer = as_answerer(model)
    model_id = model_id or answerer.model_id
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    options, protocol_options = split_protocol_options(options)
    benchmark = get_benchmark(benchmark_name, options)
    protocol = protocol_for(answerer, benchmark, protocol_options)
    policy = multi_image_policy(answerer.multi_image, protocol_options.get("multi_image"), model_id)
    weights = answerer.weights_fingerprint()
    files = answer_files(output_dir, image_ablation)
    recorded = options if policy == "all" else {**options, "multi_image": policy}
    metas = {
        kind: answer_meta(
            model_id=model_id, weights=weights, benchmark=benchmark_name, options=recorded, data=data,
            image_root=image_root, protocol=protocol.record(), image_ablation=kind,
        )
        for kind in files
    }  # fmt: skip
    with processes.main_first():  # the main process reads (and may unpack) the data and clears outputs first
        items = benchmark.load(data, image_root)
        if processes.is_main and fresh:
            remove_evaluation_outputs(output_dir, echo)
        if processes.is_main and redo_stale:
            _redo_stale(files, metas, output_dir, benchmark_name, echo)
    counts = counts_of(benchmark, len(items))
    items, several = apply_multi_image(items, policy)
    if several.refused:
        counts = dataclasses.replace(counts, skipped={**counts.skipped, REFUSED_KIND: several.refused})
    say(counts.describe(benchmark_name))
    if several.several:
        say(several.describe(benchmark_name))
    size_warning = benchmark.size_warning(items) if hasattr(benchmark, "size_warning") else None
    if size_warning:
        say(size_warning)
    for kind, path in files.items():  # refuse every mismatched file before answering anything
        _refuse_mismatched(path, metas[kind])
    started = time.perf_counter()
    predictions = answer_items(
        answerer, benchmark, items, files[None], model_id, batch_size, echo=echo, protocol=protocol,
        meta=metas[None], processes=processes,
    )
    metrics: dict[str, Any] = dict(benchmark.score(predictions, items)) if processes.is_main else {}
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    if image_ablation:
        ablated = answer_items(
            answerer, benchmark, items, files[image_ablation], model_id, batch_size,
            ablation=image_ablation, echo=echo, protocol=protocol, meta=metas[image_ablation], processes=processes,
        )
        if processes.is_main:
            metrics["image_ablation"] = _ablation_report(image_ablation, metrics, benchmark.score(ablated, items))
    if not processes.is_main:
        return {}
    metrics["benchmark"] = benchmark_name
    if benchmark.split:
        metrics["split"] = benchmark.split
    metrics["model_id"] = model_id
    metrics["protocol"] = protocol.describe()
    described = {**(contender or {}), **answerer.describe()}
    if described:
        metrics["contender"] = described
    metrics.update(counts.as_metrics())
    if several.several or policy != "all":
        metrics["multi_image"] = several.as_metrics()
    if size_warning:
        metrics["size_warning"] = size_warning
    write_atomically(output_dir / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
