"""How an image is marked in the token sequence: the placeholder token and what it expands to."""

from __future__ import annotations

from dataclasses import dataclass

from medzoo.core.errors import RecipeError
from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER

IM_START, IM_END, IM_PATCH = "<im_start>", "<im_end>", "<im_patch>"
MARKUPS = ("placeholder", "im_start_end")


@dataclass(frozen=True)
class ImageMarkup:
    """Token ids of the image markup.

    ``placeholder`` (v1.5): the ``<image>`` token is repeated once per image feature.
    ``im_start_end`` (v1.0): ``<image>`` becomes ``<im_start>`` + N x ``<im_patch>`` + ``<im_end>``.
    ``fill_id`` is the id whose positions receive the projected image features.
    """

    kind: str
    placeholder_id: int
    fill_id: int
    start_id: int | None = None
    end_id: int | None = None

    def expansion(self, num_tokens: int) -> list[int]:
        body = [self.fill_id] * num_tokens
        if self.kind == "im_start_end":
            return [self.start_id, *body, self.end_id]
        return body

    @staticmethod
    def tokens_for(kind: str) -> list[str]:
        if kind == "placeholder":
            return [IMAGE_PLACEHOLDER]
        if kind == "im_start_end":
            return [IMAGE_PLACEHOLDER, IM_START, IM_END, IM_PATCH]
        raise RecipeError(f"model.image_markup: unknown markup {kind!r}; expected one of {', '.join(MARKUPS)}")

    @classmethod
    def from_ids(cls, kind: str, ids: list[int]) -> ImageMarkup:
        if kind == "placeholder":
            return cls(kind, placeholder_id=ids[0], fill_id=ids[0])
        return cls(kind, placeholder_id=ids[0], fill_id=ids[3], start_id=ids[1], end_id=ids[2])
