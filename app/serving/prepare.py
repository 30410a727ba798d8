"""OpenAI request -> encoded prompt and sampling settings, with every limit checked."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from medzoo.app.serving.images import ImageLoader
from medzoo.app.serving.limits import RequestError, ServeLimits
from medzoo.app.serving.openai_schema import ChatCompletionRequest, ChatMessage
from medzoo.core.errors import DataError
from medzoo.core.inference import InferenceEngine, SamplingSettings
from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER, Message
from medzoo.core.model.processor import EncodedSample


@dataclass
class PreparedRequest:
    sample: EncodedSample
    settings: SamplingSettings


def conversation(messages: list[ChatMessage], loader: ImageLoader, limits: ServeLimits
                 ) -> tuple[list[Message], list[Image.Image]]:
    """Messages in medzoo's form; each user message's images become ``<image>`` lines before its text."""
    if len(messages) > limits.max_messages:
        raise RequestError(400, f"{len(messages)} messages; the limit is {limits.max_messages}", param="messages")
    out: list[Message] = []
    images: list[Image.Image] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}].content"
        parts = [message.content] if isinstance(message.content, str) else message.content
        texts: list[str] = []
        n_images = 0
        for part_index, part in enumerate(parts):
            if isinstance(part, str) or part.type == "text":
                text = part if isinstance(part, str) else part.text
                if IMAGE_PLACEHOLDER in text:
                    raise RequestError(400, f"text must not contain {IMAGE_PLACEHOLDER!r}; send images as image_url "
                                       "parts", param=param)
                texts.append(text)
                continue
            if message.role != "user":
                raise RequestError(400, f"images are only accepted in user messages, not {message.role!r}",
                                   param=param)
            if len(images) >= limits.max_images_per_request:
                raise RequestError(400, f"more than {limits.max_images_per_request} image(s) in the request",
                                   param=param, code="too_many_images")
            images.append(loader.load(part.image_url.url, f"{param}[{part_index}].image_url"))
            n_images += 1
        role = "system" if message.role == "developer" else message.role
        out.append(Message(role, f"{IMAGE_PLACEHOLDER}\n" * n_images + "\n".join(texts)))
    return out, images


def sampling(request: ChatCompletionRequest, prompt_tokens: int, context: int, limits: ServeLimits
             ) -> SamplingSettings:
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
    return SamplingSettings(
        max_new_tokens=requested or min(limits.default_max_tokens, room),
        temperature=request.temperature if request.temperature is not None else 0.0,
        top_p=request.top_p if request.top_p is not None else 1.0,
        stop=tuple(s for s in stops if s),
        seed=request.seed,
    )


def prepare(request: ChatCompletionRequest, engine: InferenceEngine, loader: ImageLoader, limits: ServeLimits
            ) -> PreparedRequest:
    messages, images = conversation(request.messages, loader, limits)
    try:
        sample = engine.encode(messages, images)
    except (DataError, ValueError) as error:
        raise RequestError(400, str(error).splitlines()[0], param="messages") from None
    return PreparedRequest(sample, sampling(request, len(sample), engine.context_length, limits))
