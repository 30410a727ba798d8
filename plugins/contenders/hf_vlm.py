"""The ``hf-vlm`` contender: any transformers image-text-to-text model (``AutoModelForImageTextToText`` plus
``AutoProcessor``, a hub id or a local ``save_pretrained`` folder) answering benchmarks with its own chat template.

Each batch is rendered and encoded by ``processor.apply_chat_template`` (left padding), answered by
``model.generate`` (greedy unless the protocol samples) and only the new tokens are decoded. The prompt template
recorded with the answers is ``chat_template@<sha256 prefix>``, so a resume notices a changed template.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medzoo import (
    DTYPE_NAMES,
    Answerer,
    DataError,
    PluginError,
    PromptChoice,
    check_multi_image_policy,
    torch_dtype,
    weights_fingerprint,
)
from medzoo.plugins.contenders.hf_messages import request_messages

if TYPE_CHECKING:  # torch and transformers load when a contender does, not when the plugin registers
    from medzoo import Benchmark, ChatRequest, SamplingSettings

CHAT_TEMPLATE = "chat_template"
DTYPES = ("auto", *DTYPE_NAMES)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _dtype_argument(dtype: str) -> dict[str, Any]:
    """``dtype=`` (transformers >= 4.56) or ``torch_dtype=`` (older)."""
    import transformers

    value = "auto" if dtype == "auto" else torch_dtype(dtype)
    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype": value} if (major, minor) >= (4, 56) else {"torch_dtype": value}


def _model_id(source: str, local: Path | None) -> str:
    """A hub id as given; a local folder by its name (``models/llava-1.5-7b-hf`` -> ``llava-1.5-7b-hf``)."""
    return local.resolve().name if local is not None else source


def _cut(text: str, stops: Sequence[str]) -> str:
    ends = [index for stop in stops if stop and (index := text.find(stop)) >= 0]
    return (text[: min(ends)] if ends else text).strip()


class HfVlmContender(Answerer):
    """A transformers vision-language model and its processor, answering through its own chat template."""

    def __init__(self, model: Any, processor: Any, model_id: str) -> None:
        template = getattr(processor, "chat_template", None)
        if not template:
            raise PluginError(f"{model_id}: the processor has no chat template (chat_template.jinja or "
                              "chat_template.json); hf-vlm asks every model with its own")
        self.model = model.eval()
        self.processor = processor
        self.model_id = model_id
        tokenizer = processor.tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        digest = hashlib.sha256(str(template).encode("utf-8")).hexdigest()[:12]
        self.template_name = f"{CHAT_TEMPLATE}@{digest}"
        self._padding = {"padding": True, "padding_side": "left"}
        self._new_style = "processor_kwargs" in inspect.signature(processor.apply_chat_template).parameters

    @classmethod
    def from_pretrained(
        cls, source: str, dtype: str = "auto", model_id: str | None = None, multi_image: str = "all"
    ) -> HfVlmContender:
        """Load ``source`` (a hub id, or a folder ``save_pretrained`` wrote) in ``dtype`` (``auto``: the
        checkpoint's own); a one-line PluginError naming the source when it is not such a model.
        ``multi_image``: ``all`` (a question's images go to the chat template as image parts, each where its
        placeholder stood), or for a model that takes one image ``first`` / ``refuse`` (see ``Answerer``)."""
        policy = check_multi_image_policy(multi_image, "contender hf-vlm: option multi_image")
        if dtype not in DTYPES:
            raise PluginError(f"contender hf-vlm: option dtype={dtype!r}: expected one of {', '.join(DTYPES)}")
        path = Path(source).expanduser()
        local = path if path.exists() else None
        if local is not None and not (local / "config.json").is_file():
            raise PluginError(f"{local}: no config.json; expected a folder written by a transformers model's "
                              "save_pretrained, or a hub id")
        from transformers import AutoModelForImageTextToText, AutoProcessor

        where = str(local) if local is not None else source
        try:
            processor = AutoProcessor.from_pretrained(where)
            model = AutoModelForImageTextToText.from_pretrained(where, **_dtype_argument(dtype))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise PluginError(f"{where}: not a loadable transformers image-text-to-text model "
                              f"({type(error).__name__}: {_first_line(error)})") from None
        if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
            raise PluginError(f"{where}: AutoProcessor gave a {type(processor).__name__}, expected a processor "
                              "with a tokenizer and an image processor")
        contender = cls(model, processor, model_id or _model_id(source, local))
        contender.multi_image = policy
        return contender

    # -- the answerer interface ---------------------------------------------------------------------------
    def weights_fingerprint(self) -> str:
        return weights_fingerprint(self.model)

    def prompt_for(self, benchmark: Benchmark, requested: str | None) -> PromptChoice:
        if requested not in (None, CHAT_TEMPLATE, self.template_name):
            raise DataError(f"benchmark option prompt_template={requested!r}: the hf-vlm contender asks with the "
                            f"model's own chat template; leave the option out (or give {CHAT_TEMPLATE})")
        return PromptChoice(self.template_name)

    def to_device(self, device: str) -> HfVlmContender:
        self.model.to(device)
        return self

    def answer(
        self, requests: Sequence[ChatRequest], settings: SamplingSettings, template: str, batch_size: int
    ) -> list[str]:
        """Answers in request order, batches of similar prompt length; sampling is seeded once per call."""
        import torch

        if template != self.template_name:
            raise DataError(f"hf-vlm answers with {self.template_name}, not {template!r}")
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        conversations = [request_messages(request) for request in requests]
        lengths = [sum(len(part.get("text", "")) for m in c for part in m["content"]) for c in conversations]
        order = sorted(range(len(requests)), key=lambda index: lengths[index])
        answers: dict[int, str] = {}
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            texts = self.generate([conversations[index] for index in indices], settings)
            answers.update(zip(indices, texts, strict=True))
        return [answers[index] for index in range(len(requests))]

    # -- encoding and generation --------------------------------------------------------------------------
    def encode(self, conversations: Sequence[list[dict[str, Any]]]) -> dict[str, Any]:
        """The model inputs of a batch of chat conversations (rendered with the chat template, left padded)."""
        import torch

        options: dict[str, Any] = {"processor_kwargs": self._padding} if self._new_style else dict(self._padding)
        inputs = self.processor.apply_chat_template(
            list(conversations), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
            **options,
        )
        inputs.pop("labels", None)  # PaliGemma's processor adds training labels
        device, dtype = self.model.device, self.model.dtype
        return {
            key: (value.to(device, dtype=dtype) if value.is_floating_point() else value.to(device))
            if isinstance(value, torch.Tensor) else value
            for key, value in inputs.items()
        }

    def generate(self, conversations: Sequence[list[dict[str, Any]]], settings: SamplingSettings) -> list[str]:
        """One answer per conversation: the decoded new tokens, cut at the settings' stop strings."""
        import torch

        inputs = self.encode(conversations)
        prompt_length = inputs["input_ids"].shape[1]
        with torch.inference_mode():
            output = self.model.generate(**inputs, **generation_options(settings, self.processor.tokenizer))
        texts = self.processor.batch_decode(output[:, prompt_length:], skip_special_tokens=True)
        return [_cut(text, settings.stop) for text in texts]


def generation_options(settings: SamplingSettings, tokenizer: Any) -> dict[str, Any]:
    """``generate`` options: greedy (whatever the checkpoint's generation config says) or sampled."""
    options: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    if settings.greedy:
        return {**options, "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {**options, "do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p}
