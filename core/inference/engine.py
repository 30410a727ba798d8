"""The one inference engine: batched ``generate`` with images (left padding, KV cache), each row with its own
budget, stop strings, streaming callback and cancellation. Evaluation, chat and serving all answer through it."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence

import torch
from PIL import Image
from transformers import LogitsProcessorList, StoppingCriteriaList

from medzoo.core.cpu_threads import adjust_threads
from medzoo.core.inference.group_decoding import GroupDecoder
from medzoo.core.inference.processing import processor_for
from medzoo.core.inference.requests import ChatRequest, Completion, RowRequest
from medzoo.core.inference.rows import RowState, RowTracker
from medzoo.core.inference.sampling import RowSampler
from medzoo.core.inference.settings import SamplingSettings
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import EncodedSample, collate

GREEDY = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}


class InferenceEngine:
    """Encodes prompts and answers them with a MultimodalModel, several rows per ``generate`` call.

    Two ways in, one machinery: :meth:`run` answers rows that each bring their own settings (serving, chat; a
    sampling row draws from its own generator seeded by its ``seed``, so its answer does not depend on the
    batch), :meth:`answer` answers many conversations with one settings (evaluation, the speed bench: batches
    of similar prompt length; sampling uses Hugging Face's sampler on torch's global generator, seeded once per
    call with ``seed``, so a run is repeatable for the same questions, batch size and device).
    :meth:`run_grouped` answers like :meth:`run` where rows share prompts (GRPO's rollouts): one prefill per prompt
    and a lean decoding loop instead of ``generate`` (core/inference/group_decoding.py).
    """

    def __init__(self, model: MultimodalModel, template_name: str | None = None) -> None:
        self.model = model.eval()
        self.processor = processor_for(model, template_name)
        self.device = next(model.parameters()).device
        #: fast tokenizers are not safe to use from several threads at once: generation decodes with the
        #: model's tokenizer under ``tokenizer_lock``; prompts are encoded with a copy under ``encode_lock``, so
        #: encoding a request never holds up a running batch
        self.tokenizer_lock = threading.Lock()
        self.encode_lock = threading.Lock()
        self._encoder = copy.copy(self.processor)
        self._encoder.tokenizer = copy.deepcopy(model.tokenizer)
        tokenizer = model.tokenizer
        self.eos_ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        #: token ids no row may generate (``EngineRollouts``: the image markup, whose positions the model fills
        #: with image features, so a completion holding one could not be trained on)
        self.suppressed_ids: tuple[int, ...] = ()
        config = model.language.model.config
        self.context_length = int(getattr(config, "max_position_embeddings", 0) or 2048)

    @property
    def template_stops(self) -> tuple[str, ...]:
        return tuple(self.processor.template.stop_strings)

    def encode(self, messages: Sequence[Message], images: Sequence[Image.Image]) -> EncodedSample:
        """The prompt for the assistant's next reply (raises ValueError / DataError on a bad conversation)."""
        with self.encode_lock:
            sizes = [(image.height, image.width) for image in images] if self.model.tiling is not None else None
            sample = self._encoder.encode_text(messages, len(images), add_generation_prompt=True, image_sizes=sizes)
        sample.pixel_values = self.processor.pixels(images)
        return sample

    def run(self, requests: Sequence[RowRequest]) -> list[Completion]:
        """Answer all requests with one ``generate`` call, each row sampling on its own.

        Raises :class:`InvalidSettings` before generating when a row's settings are out of range.
        """
        return self._run(_validated(requests), shared_sampling=False)

    def run_grouped(self, requests: Sequence[RowRequest]) -> list[Completion]:
        """Answer like :meth:`run` (the same tokens for the same rows and seeds) where many rows share a prompt
        (GRPO's completions): requests holding the same ``sample`` object share one prefill, and the rows are
        decoded by the lean loop of ``core/inference/group_decoding.py`` (``generate`` where it cannot)."""
        return self._run(_validated(requests), shared_sampling=False, grouped=True)

    def answer(
        self, requests: Sequence[ChatRequest], settings: SamplingSettings | None = None, batch_size: int = 16
    ) -> list[Completion]:
        """Answers in request order; requests are grouped into batches of similar prompt length."""
        settings = settings or SamplingSettings()
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        template, eos = self.processor.template, self.processor.eos_token
        lengths = [len(template.prompt(r.messages, eos)) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: lengths[i])
        answers: dict[int, Completion] = {}
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            rows = [RowRequest(self.encode(requests[i].messages, requests[i].images), settings) for i in indices]
            for index, completion in zip(indices, self._run(rows, shared_sampling=True), strict=True):
                answers[index] = completion
        return [answers[index] for index in range(len(requests))]

    def _run(self, requests: Sequence[RowRequest], shared_sampling: bool, grouped: bool = False) -> list[Completion]:
        live = [r for r in requests if not r.cancelled.is_set()]
        rows = [RowState(r, self.model.tokenizer, self.template_stops, self.eos_ids) for r in live]
        if rows:
            if self.device.type == "cpu":
                adjust_threads()  # follow the cores other processes leave free
            if not (grouped and self._decode_grouped(rows)):
                self._generate(rows, shared_sampling)
        by_request = {id(row.request): row for row in rows}
        return [
            by_request[id(r)].completion() if id(r) in by_request else Completion("", "cancelled", len(r.sample), 0)
            for r in requests
        ]

    def _decode_grouped(self, rows: list[RowState]) -> bool:
        with torch.no_grad():
            return GroupDecoder(self.model, self.suppressed_ids, self.tokenizer_lock).decode(rows)

    def _generate(self, rows: list[RowState], shared_sampling: bool) -> None:
        settings = [row.request.settings for row in rows]
        batch = collate([row.request.sample for row in rows], self.model.tokenizer.pad_token_id, "left")
        batch.pop("labels")
        batch = {key: value.to(self.device) for key, value in batch.items()}
        options = {
            "max_new_tokens": max(s.max_new_tokens for s in settings),
            "stopping_criteria": StoppingCriteriaList([RowTracker(rows, self.tokenizer_lock)]),
            **sampling_options(settings, shared_sampling),
        }
        if self.suppressed_ids:
            options["suppress_tokens"] = list(self.suppressed_ids)
        self.model.generate(**batch, **options)


def _validated(requests: Sequence[RowRequest]) -> Sequence[RowRequest]:
    """``requests``, once every row's settings are checked (:class:`InvalidSettings` names the first bad one)."""
    for request in requests:
        request.settings.validate()
    return requests


def sampling_options(settings: Sequence[SamplingSettings], shared: bool) -> dict:
    """``generate`` options: greedy, Hugging Face's sampler (``shared``: one settings for the batch) or
    greedy over :class:`RowSampler`'s per-row draws."""
    if all(s.greedy for s in settings):
        return dict(GREEDY)
    if shared:
        first = settings[0]
        if any(s != first for s in settings):
            raise ValueError("shared sampling needs the same settings for every row")
        return {"do_sample": True, "temperature": first.temperature, "top_p": first.top_p}
    return {**GREEDY, "logits_processor": LogitsProcessorList([RowSampler(settings)])}
