"""The LanguageModel interface: a Hugging Face causal LM with its tokenizer and conversation template."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
from torch import nn

from medzoo.core.interfaces.buildable import Buildable


class LanguageModel(nn.Module, Buildable):
    """Wraps a causal LM (``self.model``), its fast tokenizer and the name of its conversation template."""

    model: nn.Module
    tokenizer: Any
    template_name: str

    @property
    @abstractmethod
    def hidden_size(self) -> int: ...

    @property
    @abstractmethod
    def decoder_layer_class(self) -> type[nn.Module]:
        """The decoder block class (FSDP wrap unit)."""

    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.input_embeddings()(input_ids)

    def forward(self, **kwargs: Any) -> Any:
        return self.model(**kwargs)

    def add_special_tokens(self, tokens: list[str]) -> list[int]:
        """Add tokens the tokenizer lacks, grow the embeddings if needed, return their ids."""
        missing = [t for t in tokens if t not in self.tokenizer.get_vocab()]
        if missing:
            self.tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
        if len(self.tokenizer) > self.input_embeddings().num_embeddings:
            self.model.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
        return [self.tokenizer.convert_tokens_to_ids(t) for t in tokens]

    @abstractmethod
    def save_pretrained(self, directory: str, save_weights: bool = True) -> None:
        """Write the tokenizer and config (and weights when asked) to ``directory``."""
