"""Answer a benchmark's questions (batched, resumable) and score them."""

from __future__ import annotations

import json
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from medzoo.core.benchmark import Benchmark, BenchmarkItem
from medzoo.core.conversation import Message
from medzoo.core.evaluation.ablation import ablated_image
from medzoo.core.generation import ChatRequest, GenerationSettings, Generator
from medzoo.core.model import MultimodalModel
from medzoo.core.plugin_manager import components
from medzoo.core.training.checkpoint import write_atomically


def get_benchmark(name: str, options: dict[str, Any] | None = None) -> Benchmark:
    return components().get("benchmark", name).factory(**(options or {}))


def settings_for(benchmark: Benchmark) -> GenerationSettings:
    decoding = dict(benchmark.decoding)
    return GenerationSettings(
        max_new_tokens=int(decoding.get("max_new_tokens", 64)),
        temperature=float(decoding.get("temperature", 0.0)) if decoding.get("do_sample") else 0.0,
        top_p=float(decoding.get("top_p", 1.0)),
    )


def _request(benchmark: Benchmark, item: BenchmarkItem, ablation: str | None) -> ChatRequest:
    image = None
    if item.image is not None:
        with Image.open(item.image) as handle:
            image = handle.convert("RGB")
        if ablation:
            image = ablated_image(image, ablation, zlib.crc32(str(item.question_id).encode()))
    return ChatRequest([Message("user", benchmark.prompt(item))], image)


def answer_items(
    model: MultimodalModel,
    benchmark: Benchmark,
    items: list[BenchmarkItem],
    predictions_path: Path,
    model_id: str,
    batch_size: int = 16,
    ablation: str | None = None,
    echo=print,
) -> dict[str, str]:
    """Write LLaVA-Med answer lines to ``predictions_path``; questions already there are not asked again."""
    answered: dict[str, str] = {}
    if predictions_path.exists():
        for line in predictions_path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                answered[str(record["question_id"])] = record["text"]
    pending = [item for item in items if str(item.question_id) not in answered]
    if answered:
        echo(f"  {len(answered)} answers found in {predictions_path}, {len(pending)} to go")
    generator = Generator(model)
    settings = settings_for(benchmark)
    progress = tqdm(total=len(pending), desc=f"{benchmark.name}{' [' + ablation + ']' if ablation else ''}")
    with open(predictions_path, "a") as handle:
        for start in range(0, len(pending), batch_size * 4):
            chunk = pending[start : start + batch_size * 4]
            requests = [_request(benchmark, item, ablation) for item in chunk]
            texts = generator.generate(requests, settings, batch_size=batch_size)
            for item, request, text in zip(chunk, requests, texts, strict=True):
                record = {
                    "question_id": item.question_id,
                    "prompt": request.messages[0].content,
                    "text": text,
                    "answer_id": uuid.uuid4().hex,
                    "model_id": model_id,
                    "metadata": {"answer_type": item.answer_type, **({"image_ablation": ablation} if ablation else {})},
                }
                handle.write(json.dumps(record) + "\n")
                answered[str(item.question_id)] = text
            handle.flush()
            progress.update(len(chunk))
    progress.close()
    return answered


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
) -> dict[str, Any]:
    """Answer and score one benchmark; with ``image_ablation`` also re-score with ablated images."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    benchmark = get_benchmark(benchmark_name, options)
    items = benchmark.load(data, image_root)
    started = time.perf_counter()
    predictions = answer_items(model, benchmark, items, output_dir / "predictions.jsonl", model_id, batch_size, echo=echo)
    metrics: dict[str, Any] = dict(benchmark.score(predictions, items))
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    if image_ablation:
        ablated = answer_items(
            model, benchmark, items, output_dir / f"predictions.{image_ablation}.jsonl", model_id, batch_size,
            ablation=image_ablation, echo=echo,
        )
        ablated_metrics = benchmark.score(ablated, items)
        metrics["image_ablation"] = {
            "kind": image_ablation,
            "metrics": ablated_metrics,
            "drop": {
                key: round(metrics[key] - value, 2)
                for key, value in ablated_metrics.items()
                if isinstance(value, int | float) and key in metrics and key != "n" and not key.startswith("n_")
            },
        }
    metrics["benchmark"] = benchmark_name
    if getattr(benchmark, "split", None):
        metrics["split"] = benchmark.split
    metrics["model_id"] = model_id
    write_atomically(output_dir / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
