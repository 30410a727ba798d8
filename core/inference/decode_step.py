"""One decoding step of a Llama-family language model (Llama, Mistral, Qwen2) without its modules' Python wrappers.

At a new token per row, a small model's step is mostly Python: the model's forward decorators, every module's
``__call__``, keyword plumbing and config lookups. :class:`LlamaFamilyStep` runs the same tensor operations, in the
same order and on the same weights as transformers' ``MistralDecoderLayer`` / ``LlamaDecoderLayer`` /
``Qwen2DecoderLayer`` with sdpa attention (``transformers/models/mistral/modeling_mistral.py`` and
``transformers/integrations/sdpa_attention.py``, transformers 5.x), so its logits equal the model's forward
bit for bit (tests/test_group_decoding.py). :func:`llama_family_step` returns None, and the caller uses the model's
forward, for anything else: another architecture, another attention implementation, a projection that is not a
plain ``nn.Linear`` (LoRA, quantised), hooks on a layer, or a model in training mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.integrations.sdpa_attention import pack_gqa, use_gqa_in_sdpa


def _family() -> dict[type, tuple[type, type, type]]:
    """Causal-LM class -> (decoder layer, attention, RMS norm) classes the step reproduces."""
    from transformers.models.llama import modeling_llama as llama
    from transformers.models.mistral import modeling_mistral as mistral
    from transformers.models.qwen2 import modeling_qwen2 as qwen2

    return {
        llama.LlamaForCausalLM: (llama.LlamaDecoderLayer, llama.LlamaAttention, llama.LlamaRMSNorm),
        mistral.MistralForCausalLM: (mistral.MistralDecoderLayer, mistral.MistralAttention, mistral.MistralRMSNorm),
        qwen2.Qwen2ForCausalLM: (qwen2.Qwen2DecoderLayer, qwen2.Qwen2Attention, qwen2.Qwen2RMSNorm),
    }


def _plain(module: nn.Module) -> bool:
    """No hooks anywhere inside (the step would skip them)."""
    return all(not (m._forward_hooks or m._forward_pre_hooks or hasattr(m, "_hf_hook")) for m in module.modules())


def llama_family_step(language_model: Any, first_positions: torch.Tensor, steps: int) -> LlamaFamilyStep | None:
    """The lean step for ``language_model`` (rows whose first generated token is at ``first_positions``
    ``[rows, 1]``, up to ``steps`` tokens), or None where it would not compute what the model's forward does."""
    classes = _family().get(type(language_model))
    if classes is None or language_model.training:
        return None
    if getattr(language_model.config, "_attn_implementation", None) != "sdpa":
        return None
    layer_class, attention_class, norm_class = classes
    inner = language_model.model
    embed = inner.embed_tokens
    if (type(inner.norm) is not norm_class or not _plain(inner.norm) or not _plain(inner.rotary_emb)
            or type(embed) is not nn.Embedding or embed.max_norm is not None or not _plain(embed)):
        return None
    for layer in inner.layers:
        attention, mlp = layer.self_attn, layer.mlp
        linears = (attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj,
                   mlp.gate_proj, mlp.up_proj, mlp.down_proj)
        if (type(layer) is not layer_class or type(attention) is not attention_class or not _plain(layer)
                or any(type(linear) is not nn.Linear for linear in linears)
                or any(type(norm) is not norm_class for norm in (layer.input_layernorm,
                                                                 layer.post_attention_layernorm))):
            return None
    return LlamaFamilyStep(language_model, first_positions, steps)


def rms_norm(hidden: torch.Tensor, weight: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``LlamaRMSNorm.forward``'s operations (on the CPU in fp32 as torch's ``rms_norm``, which computes the same
    operations in one call: ``x * rsqrt(mean(x^2) + eps) * weight``)."""
    dtype = hidden.dtype
    if dtype == torch.float32 and weight.dtype == torch.float32 and hidden.device.type == "cpu":
        return F.rms_norm(hidden, (hidden.shape[-1],), weight, epsilon)
    if dtype != torch.float32:
        hidden = hidden.to(torch.float32)
    variance = hidden.pow(2).mean(-1, keepdim=True)
    hidden = hidden * torch.rsqrt(variance + epsilon)
    return weight * (hidden if dtype == torch.float32 else hidden.to(dtype))


@dataclass(frozen=True)
class LayerParts:
    """What one decoder layer's step reads, looked up once."""

    before: tuple[torch.Tensor, float]
    after: tuple[torch.Tensor, float]
    #: (weight, bias) of q, k, v, o, gate, up, down
    linears: tuple[tuple[torch.Tensor, torch.Tensor | None], ...]
    head_dim: int
    groups: int
    scaling: float
    act: Any

    @classmethod
    def of(cls, layer: nn.Module) -> LayerParts:
        attention, mlp = layer.self_attn, layer.mlp
        linears = (attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj,
                   mlp.gate_proj, mlp.up_proj, mlp.down_proj)
        norms = (layer.input_layernorm, layer.post_attention_layernorm)
        before, after = ((norm.weight, norm.variance_epsilon) for norm in norms)
        return cls(before, after, tuple((linear.weight, linear.bias) for linear in linears), attention.head_dim,
                   attention.num_key_value_groups, attention.scaling, activation(mlp.act_fn))


def activation(module: Any) -> Any:
    """The function a SiLU activation module calls (skipping its ``__call__``), else the module itself."""
    from transformers.activations import SiLUActivation

    if type(module) in (SiLUActivation, nn.SiLU) and not getattr(module, "inplace", False) and _plain(module):
        return F.silu
    return module


def signed_sin(sin: torch.Tensor) -> torch.Tensor:
    """``sin`` with its first half negated: ``rotate_half(x) * sin`` (``cat(-x2, x1) * sin``) equals
    ``x.roll(half) * signed_sin(sin)`` bit for bit (a product's sign is exact), in one operation instead of four."""
    half = sin.shape[-1] // 2
    return torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


class LlamaFamilyStep:
    """``step(tokens, index, mask, cache)``: the next-token logits ``[rows, vocab]`` after feeding ``tokens``
    ``[rows]`` as generated token ``index`` (at position ``first_positions + index``), with the attention mask the
    model's sdpa would get and a cache of ``BufferLayer`` s (core/inference/group_decoding.py)."""

    #: rotary types whose frequencies follow the longest position seen so far (computed step by step)
    STEPWISE_ROPE = ("dynamic", "longrope")

    def __init__(self, language_model: Any, first_positions: torch.Tensor, steps: int) -> None:
        self.language_model = language_model
        inner = language_model.model
        self.embed, self.rotary, self.norm = inner.embed_tokens, inner.rotary_emb, inner.norm
        #: per layer: its norms' weights and epsilons, its projections' (weight, bias), the attention's head size,
        #: query groups and scale, the activation (looked up once: attribute access on modules is slow)
        self.layers = [LayerParts.of(layer) for layer in inner.layers]
        self.final_norm = (self.norm.weight, self.norm.variance_epsilon)
        self.first_positions = first_positions
        #: sdpa's grouped-query choice, by whether the step has a mask
        self.gqa: dict[bool, bool] = {}
        #: each step's (cos, signed sin), ``[rows, 1, 1, head_dim]`` views
        self.rotations: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        if getattr(self.rotary, "rope_type", "default") not in self.STEPWISE_ROPE:
            # every step's cos and sin at once: the same elementwise operations on the same positions
            like = self.embed.weight[:1, None]
            positions = first_positions + torch.arange(steps, device=first_positions.device)
            cos, sin = self.rotary(like, position_ids=positions)
            cos, sin = cos.unsqueeze(1), signed_sin(sin).unsqueeze(1)
            self.rotations = [(cos[:, :, i : i + 1], sin[:, :, i : i + 1]) for i in range(steps)]

    def __call__(self, tokens: torch.Tensor, index: int, mask: torch.Tensor | None, cache: Any) -> torch.Tensor:
        hidden = F.embedding(tokens[:, None], self.embed.weight)
        rows = hidden.shape[0]
        if self.rotations is not None:
            cos, sin = self.rotations[index]
        else:
            cos, sin = self.rotary(hidden, position_ids=self.first_positions + index)
            cos, sin = cos.unsqueeze(1), signed_sin(sin).unsqueeze(1)
        half = cos.shape[-1] // 2
        for parts, layer in zip(self.layers, cache.layers, strict=True):
            q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj = parts.linears
            head_dim, groups = parts.head_dim, parts.groups
            residual = hidden
            hidden = rms_norm(hidden, *parts.before)
            # one query position: [rows, 1, heads x head_dim] viewed as [rows, heads, 1, head_dim] is the model's
            # view-and-transpose without the transpose
            shape = (rows, -1, 1, head_dim)
            query = F.linear(hidden, *q_proj).view(shape)
            key = F.linear(hidden, *k_proj).view(shape)
            value = F.linear(hidden, *v_proj).view(shape)
            query = (query * cos) + (query.roll(half, -1) * sin)
            key = (key * cos) + (key.roll(half, -1) * sin)
            keys, values = layer.update(key, value)
            options = {}
            if groups > 1:  # sdpa_attention_forward's grouped-query handling for one query token
                gqa = self.gqa.get(mask is None)
                if gqa is None:  # its answer depends only on whether there is a mask and on head sizes
                    gqa = self.gqa[mask is None] = use_gqa_in_sdpa(mask, keys, values)
                if gqa:
                    options["enable_gqa"] = True
                else:
                    query = pack_gqa(query, groups)
            out = F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, dropout_p=0.0,
                                                 scale=parts.scaling, is_causal=False, **options)
            out = out.reshape(rows, 1, -1)  # heads then head_dim, as the model's transpose-and-reshape lays them out
            hidden = residual + F.linear(out, *o_proj)
            residual = hidden
            hidden = rms_norm(hidden, *parts.after)
            gate = parts.act(F.linear(hidden, *gate_proj))
            hidden = residual + F.linear(gate * F.linear(hidden, *up_proj), *down_proj)
        hidden = rms_norm(hidden, *self.final_norm)
        return self.language_model.lm_head(hidden)[:, -1]
