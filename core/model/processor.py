"""Conversation + image -> model tensors: render with the template, tokenise the text between image
placeholders chunk by chunk (as LLaVA's ``tokenizer_image_token``), label assistant spans, expand image
placeholders to the encoder's token count, truncate (and say so)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike

import torch
from PIL import Image

from medzoo.core.interfaces.conversation import (
    IMAGE_PLACEHOLDER,
    LABEL_MASKINGS,
    ConversationTemplate,
    Message,
    place_images,
)
from medzoo.core.model.anyres import Tiling, tiled_pixels
from medzoo.core.model.image_markup import ImageMarkup
from medzoo.core.model.image_processing import ImageTransform

IGNORE_INDEX = -100


@dataclass
class EncodedSample:
    input_ids: list[int]
    labels: list[int]
    pixel_values: torch.Tensor | None
    truncated: bool = False
    sample_id: str = ""
    #: each image's original (height, width), kept when the model tiles images (their token counts vary)
    image_sizes: list[tuple[int, int]] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


class SampleTooLong(ValueError):
    """Truncation to ``max_length`` would leave nothing to learn (the prompt alone is that long) or cut through the
    image tokens, so the sample cannot be used. ``reason`` is the skip reason it is counted under."""

    PROMPT = "prompt longer than max_length"
    IMAGE = "max_length cuts through the image tokens"

    def __init__(self, sample_id: str, max_length: int, length: int, prompt_tokens: int | None, cuts_image: bool):
        self.sample_id, self.max_length, self.length = sample_id or "?", max_length, length
        self.prompt_tokens, self.cuts_image = prompt_tokens, cuts_image
        super().__init__(self.describe())

    @property
    def prompt_too_long(self) -> bool:
        return self.prompt_tokens is not None and self.prompt_tokens >= self.max_length

    @property
    def reason(self) -> str:
        return self.PROMPT if self.prompt_too_long else self.IMAGE

    def describe(self) -> str:
        image = " and would cut through its image tokens" if self.cuts_image else ""
        if self.prompt_too_long:
            return (f"sample {self.sample_id}: the prompt alone is {self.prompt_tokens} tokens (image tokens "
                    f"included), not shorter than max_length {self.max_length}: truncation leaves no answer to "
                    f"learn{image}; raise max_length or shorten the prompt")
        return (f"sample {self.sample_id}: max_length {self.max_length} cuts through the image tokens (the sample is "
                f"{self.length} tokens); raise max_length or shorten the text before the image")


class MultimodalProcessor:
    """Turns conversations and images into ``input_ids``, ``labels`` and ``pixel_values``."""

    def __init__(
        self,
        tokenizer,
        template: ConversationTemplate,
        image_transform: ImageTransform,
        num_image_tokens: int,
        markup: ImageMarkup,
        image_placement: str | None = None,
        label_masking: str = "exact",
        tiling: Tiling | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        #: bound to the tokenizer (a ``chat_template`` template renders with the tokenizer's own Jinja)
        self.template = template = template.for_tokenizer(tokenizer)
        self.image_transform = image_transform
        self.num_image_tokens = num_image_tokens
        self.markup = markup
        #: where ``<image>`` goes in its turn: keep | front | end (None: the template's own choice)
        self.image_placement = image_placement or template.image_placement
        if label_masking not in LABEL_MASKINGS:
            raise ValueError(f"label_masking {label_masking!r}: expected one of {', '.join(LABEL_MASKINGS)}")
        if label_masking == "official" and not hasattr(template, "official_pieces"):
            raise ValueError(f"label_masking 'official': template {template.name!r} has no official masking")
        self.label_masking = label_masking
        #: dynamic-resolution tiling (core/model/anyres.py): images become a thumbnail plus crops
        self.tiling = tiling

    @property
    def eos_token(self) -> str:
        return self.tokenizer.eos_token or ""

    def encode(
        self,
        messages: Sequence[Message],
        images: Sequence[Image.Image] = (),
        max_length: int | None = None,
        add_generation_prompt: bool = False,
        sample_id: str = "",
    ) -> EncodedSample:
        sizes = [(image.height, image.width) for image in images] if self.tiling is not None else None
        sample = self.encode_text(messages, len(images), max_length, add_generation_prompt, sample_id, sizes)
        sample.pixel_values = self.pixels(images)
        return sample

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor | None:
        """The tower's input for ``images`` (``None`` for none): one picture each, or with tiling each image's
        thumbnail and crops one image after another."""
        if not images:
            return None
        if self.tiling is None:
            return self.image_transform.batch(list(images))
        return torch.cat([tiled_pixels(self.image_transform, self.tiling, image) for image in images])

    def record_image_sizes(self, images: str | Sequence[str] | None) -> list[tuple[int, int]] | None:
        """The (height, width) of a training record's image(s) when this processor tiles (their token counts
        follow the sizes; only the headers are read), else None. ``images``: one path, a list of paths or None.
        Raises ``OSError`` for an image that cannot be opened."""
        paths = [] if images is None else [images] if isinstance(images, str | PathLike) else list(images)
        if not paths or self.tiling is None:
            return None
        sizes = []
        for path in paths:
            with Image.open(path) as handle:
                sizes.append((handle.height, handle.width))
        return sizes

    def image_token_counts(self, num_images: int, image_sizes: Sequence[tuple[int, int]] | None) -> list[int]:
        """The image tokens each image expands to (with tiling they follow each image's size)."""
        if self.tiling is None:
            return [self.num_image_tokens] * num_images
        if image_sizes is None or len(image_sizes) != num_images:
            raise ValueError(f"tiled images need each image's size: {num_images} image(s), sizes {image_sizes!r}")
        return [self.tiling.token_count(size) for size in image_sizes]

    def encode_text(
        self,
        messages: Sequence[Message],
        num_images: int,
        max_length: int | None = None,
        add_generation_prompt: bool = False,
        sample_id: str = "",
        image_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> EncodedSample:
        """Token ids and labels only (images are transformed later, e.g. when the batch is assembled); with
        tiling ``image_sizes`` (each image's height and width) sets each image's token count."""
        counts = self.image_token_counts(num_images, image_sizes)
        messages = place_images(messages, self.image_placement)
        rendered = self.template.render(messages, self.eos_token, add_generation_prompt=add_generation_prompt)
        ids, offsets = self.tokenize(rendered.text)
        n_placeholders = sum(1 for token in ids if token == self.markup.placeholder_id)
        if n_placeholders != num_images:
            raise ValueError(
                f"sample {sample_id or '?'}: {n_placeholders} <image> placeholder(s) in the text but {num_images} image(s)"
            )
        labels = _label_spans(ids, offsets, _with_leading_spaces(rendered.text, rendered.target_spans))
        ids, labels = self._expand_images(ids, labels, counts)
        if self.label_masking == "official" and not add_generation_prompt:
            labels = self._official_labels(messages, ids, counts)
        truncated = False
        if max_length is not None and len(ids) > max_length:
            cuts_image = self.markup.fill_id in ids[max_length:] or (
                self.markup.end_id is not None and self.markup.end_id in ids[max_length:]
            )
            # the prompt: every token before the first one the model is trained to predict
            prompt_tokens = next((i for i, label in enumerate(labels) if label >= 0), None)
            if cuts_image or (prompt_tokens is not None and prompt_tokens >= max_length):
                raise SampleTooLong(sample_id, max_length, len(ids), prompt_tokens, cuts_image)
            ids, labels, truncated = ids[:max_length], labels[:max_length], True
        sizes = [tuple(size) for size in image_sizes] if self.tiling is not None and image_sizes else None
        return EncodedSample(ids, labels, None, truncated, sample_id, sizes)

    def tokenize(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and character offsets of ``text``, the way LLaVA's ``tokenizer_image_token`` builds them.

        Follows haotian-liu/LLaVA ``llava/mm_utils.py`` ``tokenizer_image_token`` (also LLaVA-Med main): the
        text is split at ``<image>``, each chunk is tokenised on its own (so the text after an image starts with
        a word-start piece whatever the tokenizer's ``legacy`` mode), the BOS of every chunk but the first is
        dropped, and one placeholder id joins the chunks.
        """
        # the processor measures lengths against max_length itself and says what happened (issue 29): transformers'
        # "sequence length is longer than the specified maximum" log line would only add noise (once per tokenizer)
        warned = getattr(self.tokenizer, "deprecation_warnings", None)
        if isinstance(warned, dict):
            warned["sequence-length-is-longer-than-the-specified-maximum"] = True
        return tokenize_around_images(self.tokenizer, text, self.markup.placeholder_id)

    def token_count(self, text: str, image_counts: list[int] | None = None) -> int:
        """Tokens of ``text`` with its images expanded (BOS included when the tokenizer adds one); with tiling
        ``image_counts`` holds the token counts of the images still to come (those in ``text`` are taken)."""
        ids, _ = self.tokenize(text)
        images = ids.count(self.markup.placeholder_id)
        if image_counts is None:
            counts = [self.num_image_tokens] * images
        else:
            counts, image_counts[:] = image_counts[:images], image_counts[images:]
        return len(ids) - images + sum(len(self.markup.expansion(count)) for count in counts)

    def _official_labels(
        self, messages: Sequence[Message], expanded_ids: list[int], counts: list[int] | None = None
    ) -> list[int]:
        """Labels as the template's official code computes them (positions in the image-expanded sequence).

        Follows microsoft/LLaVA-Med v1.0.0 ``llava/train/train.py`` ``_mask_targets``: the header and every
        turn are tokenised on their own, each with its BOS, and those lengths are walked through the full
        sequence; the first two tokens of every human turn and all of every assistant turn stay targets.
        """
        header, pieces = self.template.official_pieces(messages)  # type: ignore[attr-defined]
        labels = list(expanded_ids)
        remaining = None if counts is None else list(counts)
        cursor = self.token_count(header, remaining)
        labels[:cursor] = [IGNORE_INDEX] * min(cursor, len(labels))
        for speaker, text in pieces:
            length = self.token_count(text, remaining)
            if speaker == "user":
                end = min(cursor + length, len(labels))
                labels[cursor + 2 : end] = [IGNORE_INDEX] * max(0, end - cursor - 2)
            cursor += length
        return labels

    def _expand_images(self, ids: list[int], labels: list[int], counts: list[int]) -> tuple[list[int], list[int]]:
        pending = iter(counts)
        out_ids: list[int] = []
        out_labels: list[int] = []
        for token, label in zip(ids, labels, strict=True):
            if token == self.markup.placeholder_id:
                expansion = self.markup.expansion(next(pending))
                out_ids.extend(expansion)
                out_labels.extend([IGNORE_INDEX] * len(expansion))
            else:
                out_ids.append(token)
                out_labels.append(label)
        return out_ids, out_labels


def tokenize_around_images(tokenizer, text: str, placeholder_id: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids and character offsets of ``text`` with every ``<image>`` as ``placeholder_id``, each text chunk
    tokenised on its own with the BOS of all chunks but the first dropped (LLaVA's ``tokenizer_image_token``)."""
    chunks = text.split(IMAGE_PLACEHOLDER)
    encodings = [tokenizer(chunk, return_offsets_mapping=True, add_special_tokens=True) for chunk in chunks]
    bos = tokenizer.bos_token_id
    first = list(encodings[0]["input_ids"])
    skip = 1 if first and bos is not None and first[0] == bos else 0
    ids: list[int] = first[:skip]
    offsets: list[tuple[int, int]] = [(0, 0)] * skip
    start = 0
    for index, (chunk, encoding) in enumerate(zip(chunks, encodings, strict=True)):
        if index:
            ids.append(placeholder_id)
            offsets.append((start - len(IMAGE_PLACEHOLDER), start))
        ids.extend(encoding["input_ids"][skip:])
        offsets.extend((start + a, start + b) for a, b in encoding["offset_mapping"][skip:])
        start += len(chunk) + len(IMAGE_PLACEHOLDER)
    return ids, offsets


def _with_leading_spaces(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Target spans widened over the spaces before them.

    SentencePiece tokenisers carry a word's leading space in its first piece ("▁yes"), but split it off as
    a lone "▁" before pieces it does not merge with ("▁", "h", "&", "e"; LLaMA's digits). That lone piece is
    the first token the model must produce, so it belongs to the target.
    """
    widened = []
    for start, end in spans:
        while start > 0 and text[start - 1] == " ":
            start -= 1
        widened.append((start, end))
    return widened


def _label_spans(ids: list[int], offsets, spans: list[tuple[int, int]]) -> list[int]:
    """Label a token with its id when its characters lie inside a target span, else IGNORE_INDEX."""
    labels = [IGNORE_INDEX] * len(ids)
    for index, ((start, end), token) in enumerate(zip(offsets, ids, strict=True)):
        if end <= start:
            continue
        for span_start, span_end in spans:
            if start < span_end and end > span_start:
                labels[index] = token
                break
    return labels


def collate(samples: Sequence[EncodedSample], pad_id: int, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Pad a batch; images of all samples are stacked in sample order (samples without images add none)."""
    width = max(len(sample) for sample in samples)
    input_ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(samples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(samples), width), dtype=torch.long)
    for row, sample in enumerate(samples):
        n = len(sample)
        columns = slice(width - n, width) if padding_side == "left" else slice(0, n)
        input_ids[row, columns] = torch.tensor(sample.input_ids)
        labels[row, columns] = torch.tensor(sample.labels)
        attention_mask[row, columns] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    add_images(batch, samples)
    return batch


def add_images(batch: dict[str, torch.Tensor], samples: Sequence[EncodedSample]) -> None:
    """``pixel_values`` of all samples in sample order (samples without images add none), and with tiling
    ``image_sizes`` (``[n_images, 2]``: each image's original height and width) to cut them back per image."""
    pixels = [sample.pixel_values for sample in samples if sample.pixel_values is not None]
    if pixels:
        batch["pixel_values"] = torch.cat(pixels)
    sizes = [size for sample in samples for size in (sample.image_sizes or ())]
    if sizes:
        batch["image_sizes"] = torch.tensor(sizes, dtype=torch.long)
