"""What every vision encoder over one transformers vision model (CLIP, SigLIP, SigLIP 2, DINOv2) reads the same
way: its width and patch size from ``self.model.config``, and the architecture fields it records."""

from __future__ import annotations

from typing import Any, ClassVar

from medzoo.core.interfaces.vision_encoder import VisionEncoder


class TransformersVisionTower(VisionEncoder):
    """A :class:`VisionEncoder` holding a transformers vision model as ``self.model``."""

    #: the config fields that define the architecture (what :meth:`config_architecture` returns)
    architecture_keys: ClassVar[tuple[str, ...]] = ()
    model: Any

    def config_architecture(self) -> dict[str, Any]:
        """``architecture_keys`` read from the model's config."""
        return {key: getattr(self.model.config, key) for key in self.architecture_keys}

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def patch_size(self) -> int:
        return self.model.config.patch_size
