"""Answer a benchmark's questions (batched, resumable) and score them.

Answers go to ``predictions.jsonl`` (``predictions.<ablation>.jsonl``) as each chunk is answered, beside a
``.meta.json`` sidecar saying what they belong to; a rerun asks only the questions not answered yet, and refuses
a file whose sidecar describes another model, benchmark, data file, protocol or ablation (``fresh`` starts over).
"""

from __future__ import annotations

import json
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from medzoo.core.errors import DataError
from medzoo.core.evaluation.ablation import ABLATIONS, ablated_image
from medzoo.core.evaluation.answer_file import JsonlAppender, read_jsonl, records_with
from medzoo.core.evaluation.answer_meta import (
    ANSWER_FILE,
    answer_meta,
    meta_path,
    refuse_mismatched_resume,
    weights_fingerprint,
    write_meta,
)
from medzoo.core.evaluation.question_counts import counts_of
from medzoo.core.files import write_atomically
from medzoo.core.inference import ChatRequest, InferenceEngine, SamplingSettings
from medzoo.core.interfaces.benchmark import Benchmark, BenchmarkItem
from medzoo.core.interfaces.conversation import Message
from medzoo.core.interfaces.templates import get_template
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.plugin_system.manager import components


def get_benchmark(name: str, options: dict[str, Any] | None = None) -> Benchmark:
    return components().get("benchmark", name).factory(**(options or {}))


#: benchmark options that choose the evaluation protocol (read here, not by the benchmark)
PROTOCOL_OPTIONS = ("prompt_template", "decoding", "temperature", "seed")
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


def protocol_for(model: MultimodalModel, benchmark: Benchmark, options: dict[str, Any]) -> Protocol:
    """The prompt template and decoding of an evaluation.

    Template: the option ``prompt_template``, else the evaluation template the model's training template names
    (LLaVA-Med v1.0 weights: ``llava_med_v1_vqa``, the paper's prompt), else the model's template. Decoding: the
    option ``decoding`` (greedy | sampled, with ``temperature``), else the template's evaluation decoding (v1.0:
    sampled at 0.7 as ``model_vqa_med.py``), else greedy. ``seed`` (default 0, as LLaVA-Med's ``model_vqa.py``)
    makes sampling repeatable.
    """
    trained = get_template(model.language.template_name)
    name = options.get("prompt_template") or trained.evaluation_template or trained.name
    template = get_template(str(name))
    default = template.evaluation_decoding or trained.evaluation_decoding or {}
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


def _image_of(item: BenchmarkItem) -> Image.Image:
    try:
        with Image.open(item.image) as handle:
            handle.load()
            return handle.copy()  # the vision encoder's transform handles the mode (L, 16-bit, RGBA...)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        detail = str(error).splitlines()[0] if str(error) else "unreadable"
        raise DataError(
            f"{item.image}: question {item.question_id}: cannot read the image ({type(error).__name__}: {detail})"
        ) from None


def _request(benchmark: Benchmark, item: BenchmarkItem, ablation: str | None) -> ChatRequest:
    image = None
    if item.image is not None:
        image = _image_of(item)
        if ablation:
            image = ablated_image(image.convert("RGB"), ablation, zlib.crc32(str(item.question_id).encode()))
    return ChatRequest([Message("user", benchmark.prompt(item))], image)


def _answers_in(predictions_path: Path, echo=print) -> dict[str, str]:
    """question id -> answer of the lines already in a predictions file (none when it does not exist); a torn
    last line is cut off (its question is asked again), any other bad line is a DataError naming it."""
    rows = read_jsonl(predictions_path, repair=True, redo="answered", echo=echo)
    records = records_with(predictions_path, rows, {"question_id": object, "text": str})
    return {str(record["question_id"]): record["text"] for record in records}


def answer_items(
    model: MultimodalModel,
    benchmark: Benchmark,
    items: list[BenchmarkItem],
    predictions_path: Path,
    model_id: str,
    batch_size: int = 16,
    ablation: str | None = None,
    echo=print,
    protocol: Protocol | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Write LLaVA-Med answer lines to ``predictions_path``; questions already there are not asked again.

    With ``meta`` (see :func:`answer_meta`), answers already there must carry the same sidecar, which is written
    before the first new answer is appended.
    """
    if meta is not None:
        refuse_mismatched_resume(predictions_path, meta)
    answered = _answers_in(predictions_path, echo)
    pending = [item for item in items if str(item.question_id) not in answered]
    if answered:
        echo(f"  {len(answered)} answers found in {predictions_path}, {len(pending)} to go")
    protocol = protocol or protocol_for(model, benchmark, {})
    engine = InferenceEngine(model, protocol.template)
    settings = protocol.settings
    progress = tqdm(total=len(pending), desc=f"{benchmark.name}{' [' + ablation + ']' if ablation else ''}")
    if meta is not None:
        write_meta(predictions_path, meta)
    with JsonlAppender(predictions_path, echo=echo) as appender:
        for start in range(0, len(pending), batch_size * 4):
            chunk = pending[start : start + batch_size * 4]
            requests = [_request(benchmark, item, ablation) for item in chunk]
            texts = [c.text for c in engine.answer(requests, settings, batch_size=batch_size)]
            records = []
            for item, request, text in zip(chunk, requests, texts, strict=True):
                records.append({
                    "question_id": item.question_id,
                    "prompt": request.messages[0].content,
                    "text": text,
                    "answer_id": uuid.uuid4().hex,
                    "model_id": model_id,
                    "metadata": {"answer_type": item.answer_type, **({"image_ablation": ablation} if ablation else {})},
                })  # fmt: skip
                answered[str(item.question_id)] = text
            appender.write(records)
            progress.update(len(chunk))
    progress.close()
    return answered


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
    """Delete what ``evaluate`` writes into ``output_dir`` (every answer file, its sidecar, ``metrics.json``) and
    nothing else; returns what was removed."""
    names = [name for kind in (None, *ABLATIONS) for path in answer_files(output_dir, kind).values()
             for name in (path.name, meta_path(path).name)]  # fmt: skip
    removed = []
    for name in dict.fromkeys([*names, "metrics.json"]):
        path = output_dir / name
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(path)
    if removed:
        echo(f"{reason}: removed {', '.join(p.name for p in removed)} from {output_dir}")
    return removed


def evaluate(
    model: MultimodalModel,
    benchmark_name: str,
    output_dir: str | Path,
    data: str | None = None,
    image_root: str | None = None,
    options: dict[str, Any] | None = None,
    batch_size: int = 16,
    image_ablation: str | None = None,
    model_id: str = "model",
    echo=print,
    fresh: bool = False,
    redo_stale: bool = False,
) -> dict[str, Any]:
    """Answer and score one benchmark; with ``image_ablation`` also re-score with ablated images.

    Answers already in ``output_dir`` are reused only when their sidecar matches this evaluation (else a
    DataError); ``fresh`` first removes the answer files, sidecars and ``metrics.json`` an earlier run wrote.
    ``redo_stale`` (``medzoo run``, whose run folder owns its answers) removes them, saying why, only when they do
    not match instead of refusing.
    """
    if image_ablation is not None and image_ablation not in ABLATIONS:
        raise DataError(f"image ablation {image_ablation!r}: expected one of {', '.join(ABLATIONS)}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    options, protocol_options = split_protocol_options(options)
    benchmark = get_benchmark(benchmark_name, options)
    protocol = protocol_for(model, benchmark, protocol_options)
    items = benchmark.load(data, image_root)
    counts = counts_of(benchmark, len(items))
    echo(counts.describe(benchmark_name))
    weights = weights_fingerprint(model)
    files = answer_files(output_dir, image_ablation)
    metas = {
        kind: answer_meta(
            model_id=model_id, weights=weights, benchmark=benchmark_name, options=options, data=data,
            image_root=image_root, protocol=protocol.record(), image_ablation=kind,
        )
        for kind in files
    }  # fmt: skip
    if fresh:
        remove_evaluation_outputs(output_dir, echo)
    for kind, path in files.items():  # refuse every mismatched file before answering anything
        try:
            refuse_mismatched_resume(path, metas[kind])
        except DataError as error:
            if not redo_stale:
                raise
            echo(f"answering {benchmark_name} again: {str(error).split('; ')[0]}")
            remove_evaluation_outputs(output_dir, echo, reason="stale answers")
            break
    started = time.perf_counter()
    predictions = answer_items(
        model, benchmark, items, files[None], model_id, batch_size, echo=echo, protocol=protocol, meta=metas[None]
    )
    metrics: dict[str, Any] = dict(benchmark.score(predictions, items))
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    if image_ablation:
        ablated = answer_items(
            model, benchmark, items, files[image_ablation], model_id, batch_size,
            ablation=image_ablation, echo=echo, protocol=protocol, meta=metas[image_ablation],
        )
        metrics["image_ablation"] = _ablation_report(image_ablation, metrics, benchmark.score(ablated, items))
    metrics["benchmark"] = benchmark_name
    if getattr(benchmark, "split", None):
        metrics["split"] = benchmark.split
    metrics["model_id"] = model_id
    metrics["protocol"] = protocol.describe()
    metrics.update(counts.as_metrics())
    write_atomically(output_dir / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
