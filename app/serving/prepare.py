"""OpenAI request -> encoded prompt and sampling settings, with every limit checked."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from medzoo.app.serving.images import ImageLoader
from medzoo.app.serving.limits import RequestError, ServeLimits
from medzoo.app.serving.openai_schema import ChatCompletionRequest, ChatMessage
from medzoo.core.errors import DataError
from medzoo.core.inference import MIN_TEMPERATURE, InferenceEngine, InvalidSettings, SamplingSettings
from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER, Message
from medzoo.core.model.processor import EncodedSample


@dataclass
class PreparedRequest:
    sample: EncodedSample
    settings: SamplingSettings


def conversation(messages: list[ChatMessage], loader: ImageLoader, limits: ServeLimits
                 ) -> tuple[list[Message], list[Image.Image]]:
    """Messages in medzoo's form: each ``image_url`` part of a user message becomes an ``<image>`` line where it
    stood among the text parts (several images: several placeholders, in order; the processor's image placement
    still moves a turn's single image as the template wants)."""
    if len(messages) > limits.max_messages:
        raise RequestError(400, f"{len(messages)} messages; the limit is {limits.max_messages}", param="messages")
    out: list[Message] = []
    images: list[Image.Image] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}].content"
        parts = [message.content] if isinstance(message.content, str) else message.content
        pieces: list[str] = []
        for part_index, part in enumerate(parts):
            if isinstance(part, str) or part.type == "text":
                text = part if isinstance(part, str) else part.text
                if IMAGE_PLACEHOLDER in text:
                    raise RequestError(400, f"text must not contain {IMAGE_PLACEHOLDER!r}; send images as image_url "
                                       "parts", param=param)
                pieces.append(text)
                continue
            if message.role != "user":
                raise RequestError(400, f"images are only accepted in user messages, not {message.role!r}",
                                   param=param)
            if len(images) >= limits.max_images_per_request:
                raise RequestError(400, f"more than {limits.max_images_per_request} image(s) in the request",
                                   param=param, code="too_many_images")
            images.append(loader.load(part.image_url.url, f"{param}[{part_index}].image_url"))
            pieces.append(IMAGE_PLACEHOLDER)
        role = "system" if message.role == "developer" else message.role
        out.append(Message(role, "\n".join(pieces)))
    return out, images


def check_values(request: ChatCompletionRequest, limits: ServeLimits) -> None:
    """The numeric fields in range (400 naming the field, its value and the allowed range), before any work."""
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(request, name)
        if value is not None and value < 1:
            raise RequestError(400, f"{name} is {value}; it must be at least 1", param=name)
    if request.temperature is not None and math.isfinite(request.temperature) \
            and request.temperature > limits.max_temperature:
        raise RequestError(400, f"temperature is {request.temperature!r}; it must be 0 (greedy) or between "
                           f"{MIN_TEMPERATURE:g} and {limits.max_temperature:g}", param="temperature")
    try:
        SamplingSettings(temperature=_or(request.temperature, 0.0), top_p=_or(request.top_p, 1.0),
                         seed=request.seed).validate()
    except InvalidSettings as error:
        raise RequestError(400, str(error), param=error.field) from None


def _or(value, default):
    return default if value is None else value


def check_prompt_size(messages: list[ChatMessage], max_chars: int) -> None:
    """Refuse more text than ``max_chars`` characters in all, and text that is not valid Unicode (a lone
    surrogate escaped in the JSON), before anything is tokenised."""
    total = 0
    for index, message in enumerate(messages):
        parts = [message.content] if isinstance(message.content, str) else message.content
        texts = [part if isinstance(part, str) else part.text for part in parts
                 if isinstance(part, str) or part.type == "text"]
        total += sum(len(text) for text in texts)
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise RequestError(400, f"messages.{index}.content: not valid Unicode (a lone surrogate "
                                   f"{text[error.start]!r} at character {error.start})", param="messages") from None
    if total > max_chars:
        raise RequestError(400, f"the messages hold {total} characters of text; the limit is {max_chars}",
                           param="messages", code="context_length_exceeded")


def sampling(request: ChatCompletionRequest, prompt_tokens: int, context: int, limits: ServeLimits
             ) -> SamplingSettings:
    check_values(request, limits)
    requested = request.max_completion_tokens or request.max_tokens
    if requested is not None and requested > limits.max_tokens_cap:
        raise RequestError(400, f"max_tokens is {requested}; the limit is {limits.max_tokens_cap}",
                           param="max_tokens", code="max_tokens_too_large")
    room = context - prompt_tokens
    if room < 1 or (requested is not None and requested > room):
        raise RequestError(400, f"the prompt has {prompt_tokens} tokens; with max_tokens {requested or 1} it "
                           f"exceeds the model's context of {context}", param="messages", code="context_length_exceeded")
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    if len(stops) > limits.max_stop_strings:
        raise RequestError(400, f"{len(stops)} stop strings; the limit is {limits.max_stop_strings}", param="stop")
    settings = SamplingSettings(
        max_new_tokens=requested or min(limits.default_max_tokens, room),
        temperature=_or(request.temperature, 0.0),
        top_p=_or(request.top_p, 1.0),
        stop=tuple(s for s in stops if s),
        seed=request.seed,
    )
    try:
        return settings.validate()
    except InvalidSettings as error:
        raise RequestError(400, str(error), param=error.field) from None


def prepare(request: ChatCompletionRequest, engine: InferenceEngine, loader: ImageLoader, limits: ServeLimits
            ) -> PreparedRequest:
    """Checks (sizes and values first, cheapest first), images, then the prompt tokenised (outside the lock
    that generation holds)."""
    check_values(request, limits)
    if len(request.messages) > limits.max_messages:
        raise RequestError(400, f"{len(request.messages)} messages; the limit is {limits.max_messages}",
                           param="messages")
    check_prompt_size(request.messages, limits.prompt_chars(engine.context_length))
    messages, images = conversation(request.messages, loader, limits)
    try:
        sample = engine.encode(messages, images)
    except (DataError, ValueError) as error:
        raise RequestError(400, str(error).splitlines()[0], param="messages") from None
    return PreparedRequest(sample, sampling(request, len(sample), engine.context_length, limits))
