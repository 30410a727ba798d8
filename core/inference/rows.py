"""Following each row of a batched ``generate``: its text, stop strings, budget, stream and cancellation."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
from transformers import StoppingCriteria

from medzoo.core.inference.requests import Completion, RowRequest
from medzoo.core.inference.text_stream import IncrementalDecoder, StopScanner


class RowState:
    """Decodes one row's tokens, applies its stops and budget, streams its text."""

    def __init__(self, request: RowRequest, tokenizer, template_stops: Sequence[str], eos_ids: set[int]) -> None:
        self.request = request
        self.decoder = IncrementalDecoder(tokenizer)
        self.scanner = StopScanner([*template_stops, *request.settings.stop], releases=request.on_text is not None)
        self.eos_ids = eos_ids
        self.finish_reason: str | None = None
        self.count = 0
        self.token_ids: list[int] = []

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def push(self, token: int) -> None:
        if self.request.cancelled.is_set():
            self.finish_reason = "cancelled"
            return
        self.count += 1
        self.token_ids.append(token)
        if token in self.eos_ids:
            self._finish("stop")
            return
        self._emit(self.scanner.feed(self.decoder.push(token)))
        if self.scanner.stopped:
            self.finish_reason = "stop"
        elif self.count >= self.request.settings.max_new_tokens:
            self._finish("length")

    def _finish(self, reason: str) -> None:
        self._emit(self.scanner.feed(self.decoder.flush()))
        self._emit(self.scanner.finish())
        self.finish_reason = "stop" if self.scanner.stopped else reason

    def _emit(self, text: str) -> None:
        if text and self.request.on_text is not None:
            self.request.streamed = True
            self.request.on_text(text)

    def completion(self) -> Completion:
        if not self.done:
            self._finish("length")
        return Completion(self.scanner.text, self.finish_reason or "length", len(self.request.sample), self.count,
                          tuple(self.token_ids))


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
