"""Model FLOPs of a training step, counted from layer shapes (matmuls only; attention scores counted in full,
PaLM-style; recomputation under gradient checkpointing not counted, as MFU defines it).

Backward costs twice the forward for a module whose weights train; once (input gradients only) for a frozen
module that gradients pass through on their way to a trained one (the LM in stage 1, a LoRA-tuned LM); nothing
for a frozen module before every trained one (the vision tower).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DecoderShape:
    """A Llama/Mistral decoder: gated MLP, grouped-query attention, untied LM head."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int

    def matmul_params(self) -> int:
        head_dim = self.hidden // self.heads
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_heads * head_dim
        return self.layers * (attention + 3 * self.hidden * self.intermediate) + self.hidden * self.vocab

    def forward_flops(self, tokens: int, sequence: int) -> float:
        """``tokens`` positions in rows of ``sequence`` positions."""
        return 2.0 * self.matmul_params() * tokens + 4.0 * self.layers * self.hidden * sequence * tokens


@dataclass(frozen=True)
class VisionShape:
    """A ViT (CLIP): ``layers`` blocks run, ``tokens`` positions per image (patches + class token)."""

    hidden: int
    intermediate: int
    layers: int
    tokens: int
    patch_pixels: int

    def forward_flops(self, images: int) -> float:
        per_layer = 4 * self.hidden * self.hidden + 2 * self.hidden * self.intermediate
        matmuls = 2.0 * self.layers * per_layer * self.tokens * images
        attention = 4.0 * self.layers * self.hidden * self.tokens * self.tokens * images
        patches = 2.0 * 3 * self.patch_pixels * self.hidden * (self.tokens - 1) * images
        return matmuls + attention + patches


@dataclass(frozen=True)
class ConnectorShape:
    """mlp2x_gelu: vision dim -> language dim -> language dim."""

    vision: int
    language: int

    def forward_flops(self, tokens: int) -> float:
        return 2.0 * (self.vision * self.language + self.language * self.language) * tokens


#: backward / forward multiplier by how a module is treated
BACKWARD = {"trained": 2.0, "gradient_path": 1.0, "frozen": 0.0}


def training_step_flops(
    vision: VisionShape,
    connector: ConnectorShape,
    language: DecoderShape,
    images: int,
    image_tokens: int,
    rows: int,
    sequence: int,
    roles: dict[str, str],
) -> float:
    """Forward + backward FLOPs of one step; ``roles`` maps vision/connector/language to a key of ``BACKWARD``."""
    parts = {
        "vision": vision.forward_flops(images),
        "connector": connector.forward_flops(images * image_tokens),
        "language": language.forward_flops(rows * sequence, sequence),
    }
    return sum(flops * (1.0 + BACKWARD[roles[name]]) for name, flops in parts.items())


def roles_for(tuning: dict[str, str]) -> dict[str, str]:
    """Backward roles from a stage's tuning (frozen | full | lora per module)."""
    language = tuning.get("language", "frozen")
    connector = tuning.get("connector", "frozen")
    return {
        "vision": "trained" if tuning.get("vision") == "full" else "frozen",
        "connector": "trained" if connector in ("full", "lora") else "frozen",
        "language": {"full": "trained", "lora": "gradient_path"}.get(
            language, "gradient_path" if connector != "frozen" else "frozen"
        ),
    }


#: dense bf16 peak FLOP/s (no sparsity) by a substring of the device name
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}


def peak_flops(device_name: str) -> float | None:
    for key, value in PEAK_BF16.items():
        if key in device_name:
            return value
    return None


def mfu(step_flops: float, step_seconds: float, peak: float) -> float:
    return step_flops / step_seconds / peak
