"""A local transformers causal LM as a chat backend (hub id or local folder), generating in a worker thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from medzoo import BackendError, BackendReply, InstructBackend, PluginError

ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


def plain_chat_prompt(messages: list[dict[str, str]]) -> str:
    """The fallback when a tokenizer has no chat template: ``Role: text`` blocks ending with ``Assistant:``."""
    blocks = [f"{ROLE_LABELS.get(m['role'], m['role'].title())}: {m['content']}" for m in messages]
    return "\n\n".join([*blocks, "Assistant:"])


class HFBackend(InstructBackend):
    """``AutoModelForCausalLM`` + ``AutoTokenizer`` loaded on first use.

    Options: ``device`` ("cpu", "cuda", "cuda:1"...), ``dtype`` ("auto", "float32", "bfloat16", "float16"),
    ``trust_remote_code`` (off by default), ``max_input_tokens`` (prompts are cut from the left beyond it).
    Requests are served one at a time (one model, one thread); the event loop stays free meanwhile.
    Greedy decoding at temperature 0, sampling (seeded by ``seed``) above it.
    """

    name = "hf"
    request_timeout: float | None = None

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        max_input_tokens: int | None = None,
    ) -> None:
        super().__init__(model, device=device, dtype=dtype)
        if not model:
            raise PluginError("hf backend: --model is required (a hub id or a local model folder)")
        self.device = device
        self.dtype = dtype
        self.trust_remote_code = bool(trust_remote_code)
        self.max_input_tokens = int(max_input_tokens) if max_input_tokens else None
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self.generate_calls = 0

    def load(self) -> None:
        """Load tokenizer and model (idempotent; thread-safe)."""
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model, trust_remote_code=self.trust_remote_code)
            dtype = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
            model = AutoModelForCausalLM.from_pretrained(
                self.model, dtype=dtype, trust_remote_code=self.trust_remote_code
            )
        except (OSError, ValueError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise PluginError(f"hf backend: cannot load model {self.model!r}: {first_line}") from None
        self._tokenizer = tokenizer
        self._model = model.to(self.device).eval()

    def render_prompt(self, messages: list[dict[str, str]]) -> str:
        template = getattr(self._tokenizer, "chat_template", None)
        if template:
            return self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return plain_chat_prompt(messages)

    def _generate(self, messages: list[dict[str, str]], params: dict[str, Any]) -> BackendReply:
        import torch

        with self._lock:
            self.load()
            prompt = self.render_prompt(messages)
            encoded = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            input_ids = encoded["input_ids"]
            if self.max_input_tokens and input_ids.shape[1] > self.max_input_tokens:
                input_ids = input_ids[:, -self.max_input_tokens :]
            if input_ids.shape[1] == 0:
                raise BackendError(f"hf backend: the prompt for {self.model!r} tokenised to nothing")
            temperature = float(params.get("temperature") or 0.0)
            options: dict[str, Any] = {
                "max_new_tokens": int(params.get("max_tokens") or 512),
                "do_sample": temperature > 0,
                "pad_token_id": self._tokenizer.pad_token_id
                if self._tokenizer.pad_token_id is not None
                else self._tokenizer.eos_token_id,
            }
            if temperature > 0:
                options["temperature"] = temperature
                torch.manual_seed(int(params.get("seed") or 0))
            input_ids = input_ids.to(self._model.device)
            with torch.inference_mode():
                output = self._model.generate(
                    input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **options
                )
            self.generate_calls += 1
            new_tokens = output[0, input_ids.shape[1] :]
            text = self._tokenizer.decode(new_tokens, skip_special_tokens=True)
            return BackendReply(text=text, prompt_tokens=int(input_ids.shape[1]), completion_tokens=len(new_tokens))

    async def complete(self, messages: list[dict[str, str]], **params: Any) -> BackendReply:
        return await asyncio.to_thread(self._generate, messages, params)
