"""Training trade-offs (the ``levers`` section of ``medzoo speed``): two training options, each against its
baseline in the same process, on CPU at tiny widths with LLaVA-Med v1.5's image grid (CLIP-336: 336 / 14 =
24 x 24 = 576 patch tokens per image), random weights.

- token-reducing connector: a stage-1 step (connector trained, tower and LM frozen) with ``multigranularity``
  (pools the 24 x 24 grid to 12 x 12 + 6 x 6 + 1 x 1 = 181 tokens) against ``mlp2x_gelu`` (576 tokens);
- gradient checkpointing: a stage-2 step (connector and LM trained) with ``set_gradient_checkpointing(True)``
  against without: bytes kept for backward (:mod:`activation_memory`) and step time.

Steps are optimizer steps (forward, backward, clipping, AdamW, zero_grad) on one fixed synthetic batch, timed
in interleaved rounds after warmup rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from medzoo.app.speedbench.activation_memory import model_activation_bytes
from medzoo.app.speedbench.gpu import StageRun, build, synthetic_batch
from medzoo.app.speedbench.timing import Timing, interleaved
from medzoo.app.speedbench.train_step import medzoo_step
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.training.loss import count_targets, step_loss

#: a narrow CLIP tower on CLIP-336's patch grid (one block runs: feature layer -2 of 2)
GRID_VISION = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
               "image_size": 336, "patch_size": 14}
SMALL_LANGUAGE = {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 4,
                  "num_key_value_heads": 2, "max_position_embeddings": 2048, "tokenizer": "medzoo-tiny"}
STAGE1 = {"vision": "frozen", "connector": "full", "language": "frozen"}
STAGE2 = {"vision": "frozen", "connector": "full", "language": "full"}
BASELINE_CONNECTOR = {"name": "mlp2x_gelu"}
REDUCING_CONNECTOR = {"name": "multigranularity"}


@dataclass(frozen=True)
class TradeoffShapes:
    """Model widths and the two stages' micro-batches (stage 1: caption ~ 64 tokens; stage 2: ~ 320)."""

    vision: dict[str, Any] = field(default_factory=lambda: dict(GRID_VISION))
    language: dict[str, Any] = field(default_factory=lambda: dict(SMALL_LANGUAGE))
    stage1_micro_batch: int = 4
    stage1_text_tokens: int = 64
    stage2_micro_batch: int = 2
    stage2_text_tokens: int = 320


@dataclass
class BenchedRun:
    """A model built for one run, its fixed batch and its optimizer step."""

    run: StageRun
    model: MultimodalModel
    batch: dict[str, torch.Tensor]
    step: Callable[[dict[str, torch.Tensor]], float]

    @classmethod
    def build(cls, run: StageRun) -> BenchedRun:
        torch.manual_seed(0)  # vision and LM are built before the connector: the same weights for every run
        model = build(run, "cpu", torch.float32)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        return cls(run, model, synthetic_batch(model, run, "cpu"), medzoo_step(model, optimizer, 1.0))

    def __call__(self, _round: int) -> float:
        return self.step(self.batch)

    @property
    def sequence(self) -> int:
        return int(self.batch["input_ids"].shape[1])


def _times(timing: Timing) -> dict[str, float]:
    return {"step_s": round(timing.total / len(timing.seconds), 5), "median_step_s": round(timing.median, 5)}


def connector_tradeoff(shapes: TradeoffShapes, steps: int, warmup: int) -> dict[str, Any]:
    """Stage-1 steps with the token-reducing connector against ``mlp2x_gelu``; ``ratio`` = samples/s over the
    baseline's (mean step times), ``median_ratio`` the same from median step times."""
    batch, text = shapes.stage1_micro_batch, shapes.stage1_text_tokens
    contenders = {
        spec["name"]: BenchedRun.build(StageRun(f"stage1-{spec['name']}", STAGE1, batch, text, shapes.vision,
                                               shapes.language, False, spec))
        for spec in (BASELINE_CONNECTOR, REDUCING_CONNECTOR)
    }
    timings = interleaved(dict(contenders), steps, warmup)
    rows = []
    for name, contender in contenders.items():
        times = _times(timings[name])
        rows.append({"connector": name, "image_tokens": contender.model.num_image_tokens,
                     "sequence": contender.sequence, **times,
                     "samples_per_s": round(batch / times["step_s"], 2),
                     "tokens_per_s": round(batch * contender.sequence / times["step_s"], 1)})
    baseline = rows[0]
    for row in rows:
        row["ratio"] = round(baseline["step_s"] / row["step_s"], 3)
        row["median_ratio"] = round(baseline["median_step_s"] / row["median_step_s"], 3)
    return {"stage": "stage 1: connector trained, vision and LM frozen", "micro_batch": batch,
            "text_tokens": text, "baseline": BASELINE_CONNECTOR["name"], "rows": rows}


def checkpointing_tradeoff(shapes: TradeoffShapes, steps: int, warmup: int) -> dict[str, Any]:
    """Stage-2 steps with gradient checkpointing against without: activation bytes and step time; ratios are
    checkpointing / baseline (memory below 1 saves memory, time above 1 is the recomputation's cost)."""
    batch, text = shapes.stage2_micro_batch, shapes.stage2_text_tokens
    contenders = {
        label: BenchedRun.build(StageRun(f"stage2-{label}", STAGE2, batch, text, shapes.vision, shapes.language,
                                        enabled, BASELINE_CONNECTOR))
        for label, enabled in (("off", False), ("on", True))
    }
    memory = {}
    for label, contender in contenders.items():
        model = contender.model
        memory[label] = model_activation_bytes(model, contender.batch,
                                               lambda b, m=model: step_loss(m, b, count_targets(b["labels"])))
    timings = interleaved(dict(contenders), steps, warmup)
    rows = [{"gradient_checkpointing": label == "on", "saved_bytes": memory[label].saved,
             "held_bytes": memory[label].held, **_times(timings[label])} for label in contenders]
    off, on = rows
    return {
        "stage": "stage 2: connector and LM trained, vision frozen", "micro_batch": batch,
        "sequence": contenders["off"].sequence,
        "decoder_layers": shapes.language["num_hidden_layers"], "rows": rows,
        "saved_ratio": round(on["saved_bytes"] / off["saved_bytes"], 3),
        "held_ratio": round(on["held_bytes"] / off["held_bytes"], 3),
        "time_ratio": round(on["step_s"] / off["step_s"], 3),
        "median_time_ratio": round(on["median_step_s"] / off["median_step_s"], 3),
    }


def run_tradeoffs_section(steps: int = 10, warmup: int = 2, shapes: TradeoffShapes | None = None,
                       echo=print) -> dict[str, Any]:
    """Both trade-offs at ``shapes`` (default: :class:`TradeoffShapes`)."""
    shapes = shapes or TradeoffShapes()
    echo(f"levers: token-reducing connector (stage 1) and gradient checkpointing (stage 2), {warmup} warmup + "
         f"{steps} timed rounds")
    return {"connector": connector_tradeoff(shapes, steps, warmup),
            "checkpointing": checkpointing_tradeoff(shapes, steps, warmup)}
