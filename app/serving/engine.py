"""One batched ``generate`` call answering several independent requests, each with its own sampling
settings, token budget, stop strings, streaming callback and cancellation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from medzoo.app.serving.sampling import RowSampler, SamplingParams
from medzoo.app.serving.text_stream import IncrementalDecoder, StopScanner
from medzoo.core.generation import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import EncodedSample, collate


@dataclass
class Completion:
    text: str
    #: "stop" (end of sequence or a stop string), "length" (token budget) or "cancelled"
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class RowRequest:
    """An encoded prompt plus how to answer it; ``on_text`` receives answer text as it is generated."""

    sample: EncodedSample
    params: SamplingParams
    on_text: Callable[[str], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)


class RowState:
    """Follows one row of the batch: decodes its tokens, applies its stops and budget, streams its text."""

    def __init__(self, request: RowRequest, tokenizer, template_stops: Sequence[str], eos_ids: set[int]) -> None:
        self.request = request
        self.decoder = IncrementalDecoder(tokenizer)
        self.scanner = StopScanner([*template_stops, *request.params.stop])
        self.eos_ids = eos_ids
        self.finish_reason: str | None = None
        self.count = 0

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def push(self, token: int) -> None:
        if self.request.cancelled.is_set():
            self.finish_reason = "cancelled"
            return
        self.count += 1
        if token in self.eos_ids:
            self._finish("stop")
            return
        self._emit(self.scanner.feed(self.decoder.push(token)))
        if self.scanner.stopped:
            self.finish_reason = "stop"
        elif self.count >= self.request.params.max_tokens:
            self._finish("length")

    def _finish(self, reason: str) -> None:
        self._emit(self.scanner.feed(self.decoder.flush()))
        self._emit(self.scanner.finish())
        self.finish_reason = "stop" if self.scanner.stopped else reason

    def _emit(self, text: str) -> None:
        if text and self.request.on_text is not None:
            self.request.on_text(text)

    def completion(self) -> Completion:
        if not self.done:
            self._finish("length")
        return Completion(self.scanner.text, self.finish_reason or "length", len(self.request.sample), self.count)


class RowTracker(StoppingCriteria):
    """Feeds each step's new tokens to the row states and reports which rows are finished."""

    def __init__(self, rows: list[RowState], lock: threading.Lock) -> None:
        self.rows = rows
        self.lock = lock

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs) -> torch.BoolTensor:
        last = input_ids[:, -1].tolist()
        with self.lock:
            for row, token in zip(self.rows, last, strict=True):
                if not row.done:
                    row.push(token)
        return torch.tensor([row.done for row in self.rows], dtype=torch.bool, device=input_ids.device)


class BatchEngine:
    """Encodes prompts and answers batches of :class:`RowRequest` with a MultimodalModel."""

    def __init__(self, model: MultimodalModel, template_name: str | None = None) -> None:
        self.model = model.eval()
        self.processor = processor_for(model, template_name)
        self.device = next(model.parameters()).device
        #: fast tokenizers are not safe to use from several threads at once
        self.tokenizer_lock = threading.Lock()
        tokenizer = model.tokenizer
        self.eos_ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        config = model.language.model.config
        self.context_length = int(getattr(config, "max_position_embeddings", 0) or 2048)

    @property
    def template_stops(self) -> tuple[str, ...]:
        return tuple(self.processor.template.stop_strings)

    def encode(self, messages: Sequence[Message], images: Sequence[Image.Image]) -> EncodedSample:
        """The prompt for the assistant's next reply (raises ValueError / DataError on a bad conversation)."""
        with self.tokenizer_lock:
            sample = self.processor.encode_text(messages, len(images), add_generation_prompt=True)
        sample.pixel_values = self.processor.image_transform.batch(list(images)) if images else None
        return sample

    def run(self, requests: Sequence[RowRequest]) -> list[Completion]:
        """Answer all requests with one ``generate`` call (left padding, KV cache)."""
        live = [r for r in requests if not r.cancelled.is_set()]
        rows = [RowState(r, self.model.tokenizer, self.template_stops, self.eos_ids) for r in live]
        if rows:
            self._generate(rows)
        by_request = {id(row.request): row for row in rows}
        return [
            by_request[id(r)].completion() if id(r) in by_request else Completion("", "cancelled", len(r.sample), 0)
            for r in requests
        ]

    def _generate(self, rows: list[RowState]) -> None:
        params = [row.request.params for row in rows]
        batch = collate([row.request.sample for row in rows], self.model.tokenizer.pad_token_id, "left")
        batch.pop("labels")
        batch = {key: value.to(self.device) for key, value in batch.items()}
        options: dict = {
            "max_new_tokens": max(p.max_tokens for p in params),
            "do_sample": False, "temperature": None, "top_p": None, "top_k": None,
            "stopping_criteria": StoppingCriteriaList([RowTracker(rows, self.tokenizer_lock)]),
        }
        if any(not p.greedy for p in params):
            options["logits_processor"] = LogitsProcessorList([RowSampler(params)])
        self.model.generate(**batch, **options)
