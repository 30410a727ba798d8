"""Decoding rows that share prompts (GRPO's G completions of each prompt) without Hugging Face's ``generate``.

Each distinct prompt is prefilled once, with its images; its KV cache and last logits are copied to its rows; then
every row is decoded together by a lean loop that calls the language model's forward with the cache, the new
tokens, their positions and a padding mask built once. Per token this skips what ``generate`` pays for in Python
(logits-processor and stopping-criteria lists, ``prepare_inputs_for_generation``, a causal mask rebuilt every step,
a cache grown by concatenation: here the cache is preallocated for the whole generation and written in place).

The tokens are what :class:`InferenceEngine`'s ``generate`` path picks for the same rows: greedy rows take the
argmax, sampling rows draw from their own seeded generator (:class:`RowSampler`, a row's draws depend only on its
seed), the engine's ``suppressed_ids`` are never picked, and rows stop on end of sequence, their stop strings and
their budget (:class:`RowState`). A model the loop cannot drive exactly as ``generate`` would (an attention
implementation other than sdpa or eager, a sliding window shorter than the generation, a cache other than plain
key/value layers, generation defaults that change the logits) is answered by ``generate`` instead.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

from medzoo.core.inference.rows import RowState
from medzoo.core.inference.sampling import RowSampler
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import EncodedSample, collate

#: attention implementations whose padding mask the loop builds itself (sdpa: boolean, eager: additive)
MASKED_ATTENTION = ("sdpa", "eager")
#: generation defaults that would change the logits ``generate`` samples from (the loop applies none of them)
LOGIT_CHANGING_DEFAULTS = {
    "repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "bad_words_ids": None,
    "min_length": 0, "min_new_tokens": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
    "suppress_tokens": None, "begin_suppress_tokens": None, "sequence_bias": None,
    "exponential_decay_length_penalty": None,
}


class BufferLayer(DynamicLayer):
    """One layer's keys and values, preallocated for the whole generation: a step writes in place and attention
    reads the filled part (``generate``'s cache concatenates, copying the whole cache every step)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()
        self.key_buffer, self.value_buffer, self.length = keys, values, length
        self.dtype, self.device = keys.dtype, keys.device
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        added = key_states.shape[-2]
        self.key_buffer.narrow(2, self.length, added).copy_(key_states)
        self.value_buffer.narrow(2, self.length, added).copy_(value_states)
        self.length += added
        self.keys, self.values = self.key_buffer.narrow(2, 0, self.length), self.value_buffer.narrow(2, 0, self.length)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length


def expanded_cache(prefilled: Cache, owners: torch.Tensor, capacity: int) -> Cache | None:
    """The prompts' cache copied to their rows (row ``i`` gets prompt ``owners[i]``'s) in buffers of ``capacity``
    positions; None when a layer is not a plain full-length key/value layer."""
    layers = []
    for layer in prefilled.layers:
        if not isinstance(layer, DynamicLayer) or not layer.is_initialized or layer.keys.dim() != 4:
            return None
        keys, values = layer.keys, layer.values
        length = keys.shape[-2]
        key_buffer = keys.new_empty((len(owners), keys.shape[1], capacity, keys.shape[-1]))
        value_buffer = values.new_empty((len(owners), values.shape[1], capacity, values.shape[-1]))
        key_buffer[:, :, :length] = keys.index_select(0, owners)
        value_buffer[:, :, :length] = values.index_select(0, owners)
        layers.append(BufferLayer(key_buffer, value_buffer, length))
    return Cache(layers=layers)


def unsupported_reason(language_model: Any, total_length: int) -> str | None:
    """Why the lean loop cannot decode with ``language_model`` up to ``total_length`` positions (None: it can)."""
    config = language_model.config
    attention = getattr(config, "_attn_implementation", None)
    if attention not in MASKED_ATTENTION:
        return f"attention implementation {attention!r}"
    if not getattr(config, "is_causal", True):
        return "a bidirectional language model"
    window = getattr(config, "sliding_window", None)
    if isinstance(window, int) and window < total_length:
        return f"sliding window {window} shorter than the generation ({total_length} positions)"
    parameters = inspect.signature(language_model.forward).parameters
    if not {"position_ids", "past_key_values", "logits_to_keep"} <= set(parameters):
        return "a forward without position_ids, past_key_values or logits_to_keep"
    defaults = getattr(language_model, "generation_config", None)
    for name, neutral in LOGIT_CHANGING_DEFAULTS.items():
        if defaults is not None and getattr(defaults, name, neutral) not in (neutral, None):
            return f"generation default {name}={getattr(defaults, name)!r}"
    return None


def group_rows(rows: Sequence[RowState]) -> tuple[list[EncodedSample], list[int]]:
    """The distinct prompts (in order of first use) and each row's prompt index; rows share a prompt when their
    requests hold the same ``EncodedSample`` object."""
    prompts: list[EncodedSample] = []
    index_of: dict[int, int] = {}
    owners = []
    for row in rows:
        sample = row.request.sample
        if id(sample) not in index_of:
            index_of[id(sample)] = len(prompts)
            prompts.append(sample)
        owners.append(index_of[id(sample)])
    return prompts, owners


class GroupDecoder:
    """Decodes one batch of rows (see the module docstring); ``decode`` returns False, having done nothing,
    when the model needs ``generate``."""

    def __init__(self, model: MultimodalModel, suppressed_ids: Sequence[int], lock: threading.Lock) -> None:
        self.model = model
        self.language_model = model.language.model
        self.suppressed_ids = tuple(suppressed_ids)
        self.lock = lock

    def decode(self, rows: list[RowState]) -> bool:
        settings = [row.request.settings for row in rows]
        budget = max(s.max_new_tokens for s in settings)
        prompts, owners = group_rows(rows)
        width = max(len(prompt) for prompt in prompts)
        if unsupported_reason(self.language_model, width + budget) is not None:
            return False
        device = next(self.model.parameters()).device
        owner_index = torch.tensor(owners, dtype=torch.long, device=device)
        prefill = self.prefill(prompts, device)
        if prefill is None:
            return False
        cache_of_prompts, logits, padding = prefill
        del prefill
        cache = expanded_cache(cache_of_prompts, owner_index, width + budget)
        del cache_of_prompts  # the rows' copies replace it
        if cache is None:
            return False
        padding = padding.index_select(0, owner_index)
        step_mask = self.mask_for_steps(padding, budget)
        positions = padding.sum(dim=-1, keepdim=True)  # the first generated token's position, per row
        logits = logits.index_select(0, owner_index)
        choose = token_chooser(settings, self.suppressed_ids, device)
        forward = self.forward_for_steps(cache, step_mask, positions, budget)
        for step in range(budget):
            tokens = choose(logits)
            listed = tokens.tolist()
            with self.lock:
                for row, token in zip(rows, listed, strict=True):
                    if not row.done:
                        row.push(token)
            if all(row.done for row in rows) or step + 1 == budget:
                break
            logits = forward(tokens, step, width + step + 1)
        return True

    def forward_for_steps(self, cache: Cache, step_mask: Callable[[int], torch.Tensor | None],
                          positions: torch.Tensor, steps: int) -> Callable[[torch.Tensor, int, int], torch.Tensor]:
        """``forward(tokens, step, keys)``: the next logits after feeding each row's token of ``step``, attending to
        the first ``keys`` positions: the Llama family's lean step where it applies (core/inference/decode_step.py),
        else the model's own forward."""
        from medzoo.core.inference.decode_step import llama_family_step

        lean = llama_family_step(self.language_model, positions, steps)
        if lean is not None:
            return lambda tokens, step, keys: lean(tokens, step, step_mask(keys), cache)

        def forward(tokens: torch.Tensor, step: int, keys: int) -> torch.Tensor:
            out = self.language_model(input_ids=tokens[:, None], attention_mask=step_mask(keys),
                                      position_ids=positions + step, past_key_values=cache, use_cache=True)
            return out.logits[:, -1]

        return forward

    def prefill(self, prompts: list[EncodedSample], device: torch.device
                ) -> tuple[Cache, torch.Tensor, torch.Tensor] | None:
        """The prompts' cache, their last positions' logits and padding (``[prompts, width]``, left-padded)."""
        batch = collate(prompts, self.model.tokenizer.pad_token_id, "left")
        batch.pop("labels")
        batch = {key: value.to(device) for key, value in batch.items()}
        padding = batch["attention_mask"]
        embeds = self.model.embed_inputs(batch["input_ids"], batch.get("pixel_values"), batch.get("image_sizes"))
        positions = (padding.cumsum(dim=-1) - 1).masked_fill(padding == 0, 0)
        out = self.language_model(inputs_embeds=embeds, attention_mask=padding, position_ids=positions,
                                  use_cache=True, logits_to_keep=1)
        if not isinstance(out.past_key_values, Cache):
            return None
        return out.past_key_values, out.logits[:, -1], padding

    def mask_for_steps(self, padding: torch.Tensor, budget: int) -> Callable[[int], torch.Tensor | None]:
        """``mask(keys)``: the attention mask of one decoding step over the first ``keys`` positions: None when no
        row is padded (as ``generate`` passes sdpa), else the padding as the attention implementation takes it."""
        if bool(padding.all()):
            return lambda keys: None
        rows = padding.shape[0]
        allowed = torch.cat([padding.bool(), padding.new_ones((rows, budget), dtype=torch.bool)], dim=-1)
        if self.language_model.config._attn_implementation == "eager":
            dtype = self.model.dtype
            full = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
            full = full.masked_fill(~allowed, torch.finfo(dtype).min)[:, None, None, :]
        else:
            full = allowed[:, None, None, :]
        return lambda keys: full[..., :keys]


def token_chooser(settings: Sequence[Any], suppressed_ids: Sequence[int], device: torch.device
                  ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``choose(logits)``: each row's next token from its last-position logits: suppressed ids never, greedy rows
    the argmax, sampling rows their own seeded draw (one call per step, as ``generate`` calls its processors)."""
    sampler = RowSampler(settings)
    sampled = sampler.row_index.to(device)
    suppressed = torch.tensor(sorted(suppressed_ids), dtype=torch.long, device=device)

    on_cpu = device.type == "cpu"

    def choose(logits: torch.Tensor) -> torch.Tensor:
        scores = logits if logits.dtype == torch.float32 else logits.float()
        if len(suppressed):
            scores = scores.index_fill(-1, suppressed, float("-inf"))
        if len(sampler.rows) == len(scores):
            chosen = sampler.choose(scores)
            return chosen if on_cpu else chosen.to(device)
        tokens = scores.argmax(dim=-1)
        if sampler.rows:
            tokens[sampled] = sampler.choose(scores).to(device)
        return tokens

    return choose
