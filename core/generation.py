"""Batched generation with images: left padding, KV cache, length-sorted batches, stop strings, streaming."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image

from medzoo.core.interfaces.conversation import Message
from medzoo.core.interfaces.templates import get_template
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import MultimodalProcessor, collate


@dataclass
class GenerationSettings:
    max_new_tokens: int = 64
    #: 0 means greedy decoding
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None

    def kwargs(self, template_stops: Sequence[str]) -> dict:
        options: dict = {"max_new_tokens": self.max_new_tokens}
        if self.temperature > 0:
            options.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        stops = [*template_stops, *self.stop]
        if stops:
            options["stop_strings"] = stops
        return options


@dataclass
class ChatRequest:
    messages: list[Message]
    image: Image.Image | None = None


def processor_for(
    model: MultimodalModel,
    template_name: str | None = None,
    image_placement: str | None = None,
    label_masking: str = "exact",
) -> MultimodalProcessor:
    """The processor for ``model`` with a template (default: the language model's) and text settings."""
    template = get_template(template_name or model.language.template_name)
    return MultimodalProcessor(
        model.tokenizer, template, model.vision.transform, model.num_image_tokens, model.markup,
        image_placement=image_placement, label_masking=label_masking,
    )


class Generator:
    """Answers chat requests with a MultimodalModel, several at a time."""

    def __init__(self, model: MultimodalModel, template_name: str | None = None) -> None:
        self.model = model
        self.processor = processor_for(model, template_name)
        self.device = next(model.parameters()).device

    def _stop_strings(self) -> tuple[str, ...]:
        return self.processor.template.stop_strings

    def _batch(self, requests: Sequence[ChatRequest]) -> dict[str, torch.Tensor]:
        samples = [
            self.processor.encode(r.messages, [r.image] if r.image is not None else [], add_generation_prompt=True)
            for r in requests
        ]
        pad_id = self.model.tokenizer.pad_token_id
        batch = collate(samples, pad_id, padding_side="left")
        batch.pop("labels")
        return {key: value.to(self.device) for key, value in batch.items()}

    def _decode(self, tokens: torch.Tensor, stops: Sequence[str]) -> str:
        text = self.model.tokenizer.decode(tokens, skip_special_tokens=True)
        for stop in stops:
            index = text.find(stop)
            if index >= 0:
                text = text[:index]
        return text.strip()

    def generate(
        self, requests: Sequence[ChatRequest], settings: GenerationSettings | None = None, batch_size: int = 16
    ) -> list[str]:
        """Answers in request order; requests are grouped into batches of similar prompt length."""
        settings = settings or GenerationSettings()
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        stops = [*self._stop_strings(), *settings.stop]
        kwargs = settings.kwargs(self._stop_strings())
        lengths = [len(self.processor.template.prompt(r.messages, self.processor.eos_token)) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: lengths[i])
        answers: list[str] = [""] * len(requests)
        self.model.eval()
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            batch = self._batch([requests[i] for i in indices])
            output = self.model.generate(**batch, **kwargs)
            for row, index in enumerate(indices):
                answers[index] = self._decode(output[row], stops)
        return answers

    def stream(self, request: ChatRequest, settings: GenerationSettings | None = None) -> Iterator[str]:
        """Yield text pieces of one answer as they are generated."""
        from transformers import TextIteratorStreamer

        settings = settings or GenerationSettings()
        streamer = TextIteratorStreamer(self.model.tokenizer, skip_prompt=False, skip_special_tokens=True)
        kwargs = settings.kwargs(self._stop_strings())
        batch = self._batch([request])
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self.model.generate(**batch, streamer=streamer, **kwargs)
            except BaseException as error:  # surfaced to the caller below
                errors.append(error)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        stops = [*self._stop_strings(), *settings.stop]
        emitted = ""
        buffer = ""
        for piece in streamer:
            buffer += piece
            cut = min((buffer.find(s) for s in stops if s in buffer), default=-1)
            if cut >= 0:
                tail = buffer[:cut][len(emitted):]
                if tail:
                    yield tail
                break
            # hold back text that could be the beginning of a stop string
            hold = max((len(s) - 1 for s in stops), default=0)
            safe = buffer[: max(len(emitted), len(buffer) - hold)]
            if len(safe) > len(emitted):
                yield safe[len(emitted):]
                emitted = safe
        else:
            if len(buffer) > len(emitted):
                yield buffer[len(emitted):]
        thread.join()
        if errors:
            raise errors[0]
