"""GPU section: bf16 steps of stage 1 (connector) and stage 2 (LoRA at full depth, full fine-tuning at a depth
that fits one GPU) at LLaVA-Med v1.5 shapes with random weights; MFU, peak memory and the projected curriculum.

Everything here also runs on CPU at tiny shapes (``measure_stage(..., device="cpu")``), which is how it is tested.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from medzoo.app.speedbench.flops import (
    ConnectorShape,
    DecoderShape,
    VisionShape,
    mfu,
    peak_flops,
    roles_for,
    training_step_flops,
)
from medzoo.app.speedbench.projection import LLAVA_MED, StageWork, project
from medzoo.core.model.build import build_model
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import IGNORE_INDEX
from medzoo.core.training.loss import count_targets, step_loss
from medzoo.core.training.trainer import apply_tuning

#: CLIP ViT-L/14-336 and Mistral-7B (LLaVA-Med v1.5)
V15_VISION = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
              "image_size": 336, "patch_size": 14}
V15_LANGUAGE = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                "num_key_value_heads": 8, "vocab_size": 32000, "max_position_embeddings": 4096,
                "tokenizer": "medzoo-tiny"}


@dataclass
class StageRun:
    """One measured configuration: a stage's tuning at a model shape, micro-batch and text length."""

    name: str
    tuning: dict[str, Any]
    micro_batch: int
    text_tokens: int
    vision: dict[str, Any] = field(default_factory=lambda: dict(V15_VISION))
    language: dict[str, Any] = field(default_factory=lambda: dict(V15_LANGUAGE))
    gradient_checkpointing: bool = True
    connector: dict[str, Any] = field(default_factory=lambda: {"name": "mlp2x_gelu"})


def default_runs(full_layers: int = 16) -> list[StageRun]:
    """Stage 1 (connector; caption ~ 64 tokens), stage 2 with LoRA r=128 and full fine-tuning at ``full_layers``
    decoder layers (conversation ~ 320 tokens)."""
    lora = {"vision": "frozen", "connector": "full", "language": "lora",
            "options": {"language": {"r": 128, "alpha": 256}}}
    shallow = {**V15_LANGUAGE, "num_hidden_layers": full_layers}
    return [
        StageRun("stage1-connector", {"vision": "frozen", "connector": "full", "language": "frozen"}, 16, 64),
        StageRun("stage2-lora", lora, 8, 320),
        StageRun(f"stage2-full-{full_layers}L", {"vision": "frozen", "connector": "full", "language": "full"}, 4, 320,
                 language=shallow),
    ]


def build(run: StageRun, device: str, dtype: torch.dtype) -> MultimodalModel:
    spec = {"vision": {"name": "clip", "config": run.vision}, "connector": dict(run.connector),
            "language": {"name": "mistral", "template": "mistral_instruct", "config": run.language}}
    model = build_model(spec).to(device=device, dtype=dtype)
    apply_tuning(model, run.tuning)
    model.set_gradient_checkpointing(run.gradient_checkpointing)
    return model.train()


def synthetic_batch(model: MultimodalModel, run: StageRun, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """One image + ``text_tokens`` random text tokens per sample, every text token a target."""
    generator = torch.Generator().manual_seed(seed)
    size = model.vision.image_size
    vocab = min(len(model.tokenizer), model.language.input_embeddings().num_embeddings)
    special = set(model.markup.expansion(1)) | {model.markup.fill_id}
    text = torch.randint(3, vocab, (run.micro_batch, run.text_tokens), generator=generator)
    for token in special:
        text[text == token] = 3
    image = torch.full((run.micro_batch, model.num_image_tokens), model.markup.fill_id)
    bos = torch.full((run.micro_batch, 1), model.tokenizer.bos_token_id or 1)
    input_ids = torch.cat([bos, image, text], dim=1)
    labels = input_ids.clone()
    labels[:, : 1 + model.num_image_tokens] = IGNORE_INDEX
    pixels = torch.randn(run.micro_batch, 3, size, size, generator=generator)
    batch = {"input_ids": input_ids, "labels": labels, "pixel_values": pixels,
             "attention_mask": torch.ones_like(input_ids)}
    return {key: value.to(device) for key, value in batch.items()}


def shapes(model: MultimodalModel) -> tuple[VisionShape, ConnectorShape, DecoderShape]:
    vision = model.vision.model.config
    language = model.language.input_embeddings()
    text = model.language.model.config
    return (
        VisionShape(vision.hidden_size, vision.intermediate_size, model.vision.num_blocks, model.vision.num_patches + 1,
                    vision.patch_size**2),
        ConnectorShape(vision.hidden_size, text.hidden_size),
        DecoderShape(text.hidden_size, text.intermediate_size, text.num_hidden_layers, text.num_attention_heads,
                     text.num_key_value_heads, language.num_embeddings),
    )


def measure_stage(run: StageRun, device: str = "cuda", dtype: torch.dtype = torch.bfloat16, steps: int = 5,
                  warmup: int = 2, peak: float | None = None) -> dict[str, Any]:
    """Time ``warmup + steps`` optimizer steps; samples/s, tokens/s, model FLOPs, MFU (with ``peak``), memory."""
    torch.manual_seed(0)
    model = build(run, device, dtype)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-5, fused=device.startswith("cuda") or None)
    batch = synthetic_batch(model, run, device)
    targets = count_targets(batch["labels"])
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for index in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
            loss = step_loss(model, batch, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if index >= warmup:
            seconds.append(time.perf_counter() - started)
    step_s = sum(seconds) / len(seconds)
    sequence = batch["input_ids"].shape[1]
    vision, connector, language = shapes(model)
    flops = training_step_flops(vision, connector, language, run.micro_batch, model.num_image_tokens,
                                run.micro_batch, sequence, roles_for(run.tuning))
    result = {
        "run": run.name, "micro_batch": run.micro_batch, "sequence": sequence,
        "decoder_layers": language.layers, "step_s": round(step_s, 4),
        "samples_per_s": round(run.micro_batch / step_s, 3),
        "tokens_per_s": round(run.micro_batch * sequence / step_s, 1),
        "model_tflops_per_step": float(f"{flops / 1e12:.4g}"), "loss": round(loss.detach().item(), 4),
        "trainable_parameters": sum(p.numel() for p in parameters),
    }
    if peak:
        result["mfu"] = float(f"{mfu(flops, step_s, peak):.4g}")
    if cuda:
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    del model, optimizer
    if cuda:
        torch.cuda.empty_cache()
    return result


def full_depth_rate(result: dict[str, Any], full_layers: int, language: DecoderShape, vision: VisionShape,
                    connector: ConnectorShape, roles: dict[str, str], image_tokens: int) -> float:
    """Samples/s at ``full_layers`` decoder layers from a shallower run, assuming the same MFU (FLOPs ratio)."""
    sequence, micro = result["sequence"], result["micro_batch"]
    measured = training_step_flops(vision, connector, language, micro, image_tokens, micro, sequence, roles)
    deep = training_step_flops(vision, connector, replace(language, layers=full_layers), micro, image_tokens, micro,
                               sequence, roles)
    return result["samples_per_s"] * measured / deep


def run_gpu_section(steps: int = 5, warmup: int = 2, full_layers: int = 16, runs: list[StageRun] | None = None,
                    device: str = "cuda", gpus: int = 8, echo=print) -> dict[str, Any]:
    """Measure ``runs`` (default: :func:`default_runs`) and project the LLaVA-Med curriculum on ``gpus`` GPUs."""
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    peak = peak_flops(name)
    runs = runs or default_runs(full_layers)
    results = []
    for run in runs:
        echo(f"gpu: {run.name} ({run.micro_batch} x {run.text_tokens} text tokens + image)")
        results.append(measure_stage(run, device, torch.bfloat16, steps, warmup, peak))
    stage1, full = results[0], results[-1]
    language = DecoderShape(**_decoder_fields(runs[-1].language))
    vision = VisionShape(runs[-1].vision["hidden_size"], runs[-1].vision["intermediate_size"],
                         runs[-1].vision["num_hidden_layers"] - 1,
                         (runs[-1].vision["image_size"] // runs[-1].vision["patch_size"]) ** 2 + 1,
                         runs[-1].vision["patch_size"] ** 2)
    connector = ConnectorShape(runs[-1].vision["hidden_size"], runs[-1].language["hidden_size"])
    image_tokens = vision.tokens - 1
    stage2_rate = full_depth_rate(full, V15_LANGUAGE["num_hidden_layers"], language, vision, connector,
                                  roles_for(runs[-1].tuning), image_tokens)
    work = [StageWork(LLAVA_MED[0][0], LLAVA_MED[0][1], LLAVA_MED[0][2], stage1["samples_per_s"]),
            StageWork(LLAVA_MED[1][0], LLAVA_MED[1][1], LLAVA_MED[1][2], stage2_rate)]
    seconds = project(work, gpus=gpus)
    return {
        "device": name, "peak_bf16_tflops": peak / 1e12 if peak else None, "runs": results,
        "projection": {"gpus": gpus, "scaling": "linear (upper bound)",
                       "stage2_samples_per_s_per_gpu_32L": round(stage2_rate, 3),
                       "hours": {key: round(value / 3600, 2) for key, value in seconds.items()}},
    }


def _decoder_fields(config: dict[str, Any]) -> dict[str, int]:
    return {"hidden": config["hidden_size"], "intermediate": config["intermediate_size"],
            "layers": config["num_hidden_layers"], "heads": config["num_attention_heads"],
            "kv_heads": config["num_key_value_heads"], "vocab": config["vocab_size"]}
