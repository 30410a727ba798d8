"""Inference throughput: questions/s answering a benchmark's questions 16 at a time against one at a time (how
the official LLaVA-Med evaluation runs), same model, same questions, chunks timed alternately."""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from medzoo.app.speedbench.timing import interleaved
from medzoo.core.evaluation.evaluate_model import get_benchmark, protocol_for, split_protocol_options
from medzoo.core.inference import ChatRequest, InferenceEngine
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.components import as_dict
from medzoo.core.model.multimodal import MultimodalModel


def requests_for(benchmark: Any, count: int) -> list[ChatRequest]:
    requests = []
    for item in benchmark.load(None, None)[:count]:
        images = []
        for path in item.images:  # every image of the question, in placeholder order
            with Image.open(path) as handle:
                images.append(handle.convert("RGB"))
        requests.append(ChatRequest([Message("user", benchmark.prompt(item))], images[0] if images else None,
                                    images[1:]))
    return requests


def run_inference_bench(
    model: MultimodalModel,
    recipe: Any,
    questions: int = 32,
    batch_size: int = 16,
    max_new_tokens: int = 32,
    echo=print,
) -> dict[str, Any]:
    """Questions/s at ``batch_size`` and at 1 on the recipe's first benchmark; ``ratio`` = batched / single."""
    spec = as_dict(recipe.benchmarks[0])
    options = {**(spec.get("options") or {}), "max_new_tokens": max_new_tokens}
    options, protocol_options = split_protocol_options(options)
    benchmark = get_benchmark(spec["name"], options)
    requests = requests_for(benchmark, questions)
    chunks = [requests[i : i + batch_size] for i in range(0, len(requests), batch_size)]
    protocol = protocol_for(model, benchmark, protocol_options)
    settings = protocol.settings
    engine = InferenceEngine(model, protocol.template)
    echo(f"inference: {len(requests)} {benchmark.name} questions, batch {batch_size} vs 1, "
         f"up to {max_new_tokens} new tokens")
    with torch.no_grad():
        timings = interleaved(
            {
                f"batch {batch_size}": lambda i: engine.answer(chunks[i], settings, batch_size=batch_size),
                "batch 1": lambda i: engine.answer(chunks[i], settings, batch_size=1),
            },
            rounds=len(chunks),
            warmup=0,
        )
    batched_timing, single_timing = timings[f"batch {batch_size}"], timings["batch 1"]
    batched = len(requests) / batched_timing.total
    single = len(requests) / single_timing.total
    per_round = sorted(s / b for s, b in zip(single_timing.seconds, batched_timing.seconds, strict=True))
    return {
        "benchmark": benchmark.name, "questions": len(requests), "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "questions_per_s": round(batched, 3), "baseline_questions_per_s": round(single, 3),
        "ratio": round(batched / single, 2), "median_round_ratio": round(per_round[len(per_round) // 2], 2),
    }
