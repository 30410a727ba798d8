"""MultimodalModel: vision encoder -> connector -> image features spliced into the language model's input."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medzoo.core.interfaces.connector import Connector
from medzoo.core.interfaces.language_model import LanguageModel
from medzoo.core.interfaces.vision_encoder import VisionEncoder
from medzoo.core.model.image_markup import ImageMarkup


class ImageTokenMismatch(ValueError):
    """The number of image positions in the text does not match the images given."""


class MultimodalModel(nn.Module):
    """A LLaVA-style model built from three swappable components.

    Image features replace the embeddings at the markup's fill positions (``<image>`` repeated, or
    ``<im_patch>`` between ``<im_start>``/``<im_end>``), one image after another in batch order, so
    batches may mix samples with and without images, and pad on either side.
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

    # -- shapes -------------------------------------------------------------------------------------------
    @property
    def num_image_tokens(self) -> int:
        """Feature positions per image in the language model's sequence."""
        return self.connector.num_output_tokens

    @property
    def tokenizer(self):
        return self.language.tokenizer

    @property
    def dtype(self) -> torch.dtype:
        return next(self.language.parameters()).dtype

    # -- forward ------------------------------------------------------------------------------------------
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[n_images, 3, H, W] -> [n_images, num_image_tokens, language_dim]``."""
        vision_dtype = next(self.vision.parameters()).dtype
        features = self.vision(pixel_values.to(vision_dtype))
        connector_dtype = next(self.connector.parameters(), features).dtype
        return self.connector(features.to(connector_dtype))

    def embed_inputs(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        fill = input_ids == self.markup.fill_id
        embeds = self.language.embed(input_ids)
        n_positions = int(fill.sum())
        n_images = 0 if pixel_values is None else pixel_values.shape[0]
        if n_positions != n_images * self.num_image_tokens:
            raise ImageTokenMismatch(
                f"{n_positions} image positions in input_ids but {n_images} image(s) x {self.num_image_tokens} tokens"
            )
        if n_images == 0:
            return embeds
        features = self.encode_images(pixel_values).reshape(-1, embeds.shape[-1]).to(embeds.dtype)
        return embeds.masked_scatter(fill.unsqueeze(-1), features)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        inputs_embeds = self.embed_inputs(input_ids, pixel_values)
        return self.language.model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels, **kwargs
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        **generation_kwargs: Any,
    ) -> torch.Tensor:
        """Generate continuations (KV cache on); returns only the new tokens. Pad prompts on the left."""
        inputs_embeds = self.embed_inputs(input_ids, pixel_values)
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
