"""How a medzoo vision encoder is written as the vision tower of ``LlavaForConditionalGeneration``.

llava-hf builds its tower with ``AutoModel.from_config(vision_config)`` and feeds the projector
``hidden_states[vision_feature_layer]``, without the first token when ``vision_feature_select_strategy`` is
``default``. Each encoder says whether and how through its ``llava_hf_export`` (by default: it holds one
transformers model that AutoModel builds from that model's own config, CLIP, SigLIP, ...); the features are then
checked by running both on one probe image, so a tower with extra processing (a post-LayerNorm, register tokens,
...) is refused rather than exported wrong.
"""

from __future__ import annotations

from typing import Any

import torch

from medzoo.core.errors import ExportRefused
from medzoo.core.interfaces.llava_hf import LlavaHfTower, refusal
from medzoo.core.interfaces.vision_encoder import VisionEncoder

#: bookkeeping fields of a transformers config that an exported config does not carry
CONFIG_BOOKKEEPING = frozenset({
    "architectures", "_name_or_path", "transformers_version", "dtype", "torch_dtype", "use_cache",
    "_attn_implementation_autoset", "_commit_hash",
})


def tower_config(tower: LlavaHfTower) -> dict[str, Any]:
    """``vision_config``: the tower model's config, from which AutoModel builds its class."""
    return config_dict(tower.model.config)


def config_dict(config: Any) -> dict[str, Any]:
    """A transformers config as the fields that rebuild it (``model_type`` included), without bookkeeping."""
    return {key: value for key, value in config.to_diff_dict().items() if key not in CONFIG_BOOKKEEPING}


def express_vision_tower(encoder: VisionEncoder, name: str, probe: bool = True) -> LlavaHfTower:
    """The llava-hf tower of ``encoder`` (plugin ``name``), or :class:`ExportRefused` saying why there is none;
    ``probe``: check the features on a probe image (one forward of the tower)."""
    tower = encoder.llava_hf_export(name)
    if probe:
        check_features(encoder, name, tower)
    return tower


def check_features(encoder: VisionEncoder, name: str, tower: LlavaHfTower) -> None:
    """Refuse unless the encoder's features are the tower's hidden state as llava-hf selects it (one probe)."""
    size = encoder.image_size
    parameter = next(tower.model.parameters())
    pixels = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pixels = pixels.to(parameter.device, parameter.dtype)
    with torch.no_grad():
        ours = encoder(pixels).float()
        hidden = tower.model(pixel_values=pixels, output_hidden_states=True).hidden_states[tower.feature_layer]
        theirs = (hidden[:, 1:] if tower.select_strategy == "default" else hidden).float()
    layout = f"hidden_states[{tower.feature_layer}] ({tower.select_strategy!r} selection)"
    what = refusal("vision encoder", name, encoder)
    if ours.shape != theirs.shape:
        raise ExportRefused(f"{what}: its features {tuple(ours.shape)} are not the tower's {layout} "
                            f"{tuple(theirs.shape)}")
    difference = float((ours - theirs).abs().max())
    tolerance = 1e-4 if parameter.dtype == torch.float32 else 2e-2
    if difference > tolerance * max(1.0, float(theirs.abs().max())):
        raise ExportRefused(f"{what}: its features differ from the tower's {layout} (max difference "
                            f"{difference:.3g}); llava-hf applies no other processing")
