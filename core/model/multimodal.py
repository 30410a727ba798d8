"""MultimodalModel: vision encoder -> connector -> image features spliced into the language model's input."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medzoo.core.interfaces.connector import Connector
from medzoo.core.interfaces.language_model import LanguageModel
from medzoo.core.interfaces.vision_encoder import VisionEncoder
from medzoo.core.model.anyres import NEWLINE, Tiling, image_features, split_crops, tiling_for
from medzoo.core.model.image_markup import ImageMarkup
from medzoo.core.model.multiscale import (
    check_square_tokens,
    multiscale_features,
    multiscale_for,
    scaled_transform,
)


class ImageTokenMismatch(ValueError):
    """The number of image positions in the text does not match the images given."""


class MultimodalModel(nn.Module):
    """A LLaVA-style model built from three swappable components.

    Image features replace the embeddings at the markup's fill positions (``<image>`` repeated, or
    ``<im_patch>`` between ``<im_start>``/``<im_end>``), one image after another in batch order, so
    batches may mix samples with and without images, and pad on either side.

    With tiling (the vision options ``image_grid_pinpoints`` ...; core/model/anyres.py) an image is its
    thumbnail and crops, ``image_sizes`` gives each image's original (height, width), and its token count
    varies with its size (:meth:`image_token_count`); the learned newline feature is the connector's
    ``image_newline`` parameter, so it trains, saves and loads with the connector.
    """

    def __init__(
        self,
        vision: VisionEncoder,
        connector: Connector,
        language: LanguageModel,
        image_markup: str = "placeholder",
        spec: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.vision = vision
        self.connector = connector
        self.language = language
        ids = language.add_special_tokens(ImageMarkup.tokens_for(image_markup))
        self.markup = ImageMarkup.from_ids(image_markup, ids)
        #: how the model was built (components, sources, options): saved with the weights
        self.spec: dict[str, Any] = dict(spec or {})
        #: S2-style scales the tower reads each image at (None: one); the connector takes their concatenation
        self.scales = multiscale_for(self.spec)
        self._scale_side = None if self.scales is None else check_square_tokens(vision.num_tokens, self.scales)
        self.image_transform = (vision.transform if self.scales is None
                                else scaled_transform(vision.transform, self.scales))
        #: dynamic-resolution tiling (None: one fixed-size picture per image)
        self.tiling: Tiling | None = tiling_for(self.spec, vision.image_size, connector.num_output_tokens)
        if self.tiling is not None and self.tiling.newline and not hasattr(connector, NEWLINE):
            raise ValueError("tiling with newline tokens: the connector has no image_newline (build it with "
                             "build_connector(..., newline=True))")

    # -- shapes -------------------------------------------------------------------------------------------
    @property
    def num_image_tokens(self) -> int:
        """Feature positions per fixed-size image (with tiling: per crop; see :meth:`image_token_count`)."""
        return self.connector.num_output_tokens

    def image_token_count(self, size: tuple[int, int] | None = None) -> int:
        """Feature positions of one image of ``size`` (height, width) in the language model's sequence."""
        if self.tiling is None:
            return self.num_image_tokens
        if size is None:
            raise ValueError("with tiling an image's token count depends on its size (height, width)")
        return self.tiling.token_count(size)

    @property
    def tokenizer(self):
        return self.language.tokenizer

    @property
    def dtype(self) -> torch.dtype:
        return next(self.language.parameters()).dtype

    # -- forward ------------------------------------------------------------------------------------------
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[n_pictures, 3, H, W] -> [n_pictures, num_image_tokens, language_dim]`` (with tiling a picture is
        one crop or thumbnail)."""
        vision_dtype = next(self.vision.parameters()).dtype
        if self.scales is None:
            features = self.vision(pixel_values.to(vision_dtype))
        else:
            features = multiscale_features(self.vision, pixel_values.to(vision_dtype), self.scales, self._scale_side)
        connector_dtype = next(self.connector.parameters(), features).dtype
        return self.connector(features.to(connector_dtype))

    def image_features(self, pixel_values: torch.Tensor, image_sizes: torch.Tensor | None = None) -> torch.Tensor:
        """All images' features, one after another: ``[sum of image token counts, language_dim]``."""
        features = self.encode_images(pixel_values)
        if self.tiling is None:
            return features.reshape(-1, features.shape[-1])
        if image_sizes is None:
            raise ImageTokenMismatch("tiled images need image_sizes (each image's original height and width)")
        sizes = [(int(height), int(width)) for height, width in image_sizes.tolist()]
        newline = getattr(self.connector, NEWLINE, None)
        return torch.cat([image_features(self.tiling, crops, size, newline)
                          for crops, size in zip(split_crops(self.tiling, features, sizes), sizes, strict=True)])

    def embed_inputs(
        self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None, image_sizes: torch.Tensor | None = None
    ) -> torch.Tensor:
        fill = input_ids == self.markup.fill_id
        embeds = self.language.embed(input_ids)
        n_positions = int(fill.sum())
        if self.tiling is not None:
            if pixel_values is not None and image_sizes is None:
                raise ImageTokenMismatch("tiled images need image_sizes (each image's original height and width)")
            sizes = [] if image_sizes is None else [tuple(size) for size in image_sizes.tolist()]
            expected = sum(self.image_token_count(size) for size in sizes)
            described = f"{len(sizes)} tiled image(s) of {expected} tokens in all"
        else:
            n_images = 0 if pixel_values is None else pixel_values.shape[0]
            expected = n_images * self.num_image_tokens
            described = f"{n_images} image(s) x {self.num_image_tokens} tokens"
        if n_positions != expected:
            raise ImageTokenMismatch(f"{n_positions} image positions in input_ids but {described}")
        if pixel_values is None or n_positions == 0:
            return embeds
        features = self.image_features(pixel_values, image_sizes).to(embeds.dtype)
        return embeds.masked_scatter(fill.unsqueeze(-1), features)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        inputs_embeds = self.embed_inputs(input_ids, pixel_values, image_sizes)
        return self.language.model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels, **kwargs
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
        **generation_kwargs: Any,
    ) -> torch.Tensor:
        """Generate continuations (KV cache on); returns only the new tokens. Pad prompts on the left."""
        inputs_embeds = self.embed_inputs(input_ids, pixel_values, image_sizes)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        tokenizer = self.tokenizer
        generation_kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)
        generation_kwargs.setdefault("eos_token_id", tokenizer.eos_token_id)
        if generation_kwargs.get("stop_strings"):
            generation_kwargs.setdefault("tokenizer", tokenizer)
        return self.language.model.generate(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=True, **generation_kwargs
        )

    # -- persistence --------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, directory: str, dtype: str | None = None) -> MultimodalModel:
        """Load a medzoo model directory (see ``medzoo.core.model.persistence``)."""
        from medzoo.core.model.persistence import load_model

        return load_model(cls, directory, dtype=dtype)

    def save_pretrained(self, directory: str, extra: dict[str, Any] | None = None, folder_files: Any = None) -> None:
        """Save a medzoo model directory; ``folder_files`` (see ``persistence.FolderFiles``) adds files to it."""
        from medzoo.core.model.persistence import save_model

        save_model(self, directory, extra=extra, folder_files=folder_files)

    # -- training helpers ---------------------------------------------------------------------------------
    def modules_by_name(self) -> dict[str, nn.Module]:
        return {"vision": self.vision, "connector": self.connector, "language": self.language}

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        from medzoo.core.model.activation_checkpointing import set_activation_checkpointing

        model = self.language.model
        set_activation_checkpointing(model, enabled)
        if enabled:
            model.enable_input_require_grads()
        self.vision.set_gradient_checkpointing(enabled)

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        counts = {}
        for name, module in self.modules_by_name().items():
            total = sum(p.numel() for p in module.parameters())
            trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
            counts[name] = {"total": total, "trainable": trainable}
        return counts
