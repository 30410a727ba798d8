"""The answerer interface: what ``medzoo eval`` answers a benchmark with.

A medzoo model is one answerer (``medzoo.core.evaluation.medzoo_answerer``); a contender plugin (hook
``register_contenders``) is another, e.g. ``hf-vlm`` for any transformers image-text-to-text model. Evaluation only
asks for what is here: the answers to a batch of conversations, a fingerprint of the weights (so a resume never
mixes answers of other weights in), the name recorded with every answer, and the prompt the model is asked with
by default.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medzoo.core.inference import ChatRequest, SamplingSettings
    from medzoo.core.interfaces.benchmark import Benchmark


@dataclass(frozen=True)
class PromptChoice:
    """The prompt template an evaluation asks with (recorded with the answers) and its default decoding
    (``{"do_sample": True, "temperature": 0.7}``; empty: greedy)."""

    template: str
    decoding: dict[str, Any] = field(default_factory=dict)


class Answerer(ABC):
    """Answers benchmark questions: a medzoo model, or a contender from another library."""

    #: the name written into every answer line and ``metrics.json`` (``model_id``)
    model_id: str = "model"
    #: how it answers a question with several images: ``all`` (each image at its placeholder), ``first`` (the
    #: first image only) or ``refuse`` (not asked); see ``medzoo.core.evaluation.multi_image``
    multi_image: str = "all"

    @abstractmethod
    def answer(
        self, requests: Sequence[ChatRequest], settings: SamplingSettings, template: str, batch_size: int
    ) -> list[str]:
        """One answer text per request, in request order, asked with the prompt ``template`` (a name
        :meth:`prompt_for` chose) and decoded with ``settings``; at most ``batch_size`` rows per forward pass."""

    def answer_groups(
        self, requests: Sequence[ChatRequest], settings: SamplingSettings, template: str, batch_size: int
    ) -> Iterator[list[tuple[int, str]]]:
        """The answers as groups of (request index, answer) pairs, each group as soon as it is ready (any order):
        evaluation writes each group to the answer file at once, so a killed run keeps it. Default: one group,
        :meth:`answer`'s. An answerer whose answers arrive one by one (a served model) yields them one by one."""
        yield list(enumerate(self.answer(requests, settings, template, batch_size)))

    @abstractmethod
    def weights_fingerprint(self) -> str:
        """A digest that changes whenever the weights do (see ``medzoo.core.evaluation.answer_meta``)."""

    @abstractmethod
    def prompt_for(self, benchmark: Benchmark, requested: str | None) -> PromptChoice:
        """The template to ask ``benchmark`` with: ``requested`` (the benchmark option ``prompt_template``) when
        given and usable, else the model's own; a DataError naming the option when it cannot be used."""

    def describe(self) -> dict[str, Any]:
        """What ``metrics.json`` records about this answerer under ``contender`` besides its name (a served model:
        the endpoint's model id and decoding settings; never a secret). Default: nothing."""
        return {}

    def to_device(self, device: str) -> Answerer:
        """Move the weights to ``device`` (``cpu``, ``cuda:1``...); returns self."""
        return self
