"""Tiny checkpoints in the official LLaVA layouts and a reference forward that follows LLaVA's own code.

Imported by name by the interop tests (pytest puts tests/ on the path). The reference model keeps the
official module names, so its ``state_dict`` has exactly the published keys:
``model.layers.N.*``, ``lm_head.weight``, ``model.mm_projector.*``, ``model.vision_tower.vision_tower.vision_model.*``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoTokenizer,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
)

from medzoo.app.interop.checkpoint_files import save_state_dict
from medzoo.plugins.language.tiny_tokenizer import tiny_tokenizer_path

#: LLaVA's marker for the image position in official input ids
IMAGE_TOKEN_INDEX = -200
TOWER_MEAN = [0.5, 0.4, 0.3]
TOWER_STD = [0.2, 0.25, 0.3]
V1_TOKENS = ["<im_patch>", "<im_start>", "<im_end>"]
LEFTOVER_FIELDS = {"feature_outs": "encoder+decoder", "img_size": 640, "vision_backbone": "convnext-large"}


def tiny_clip(image_size: int = 32) -> CLIPVisionModel:
    """A random CLIP vision tower of the clip plugin's tiny size (``ClipVisionEncoder.tiny_config``)."""
    from medzoo.plugins.vision.clip import ClipVisionEncoder

    config = CLIPVisionConfig(**{**ClipVisionEncoder.tiny_config(), "image_size": image_size})
    return CLIPVisionModel(config).eval()


def save_tower(tower: CLIPVisionModel, directory: Path) -> Path:
    """A CLIP vision checkpoint as ``mm_vision_tower`` names it, with its own image statistics."""
    tower.save_pretrained(str(directory))
    size = tower.config.image_size
    processor = {"crop_size": {"height": size, "width": size}, "image_mean": TOWER_MEAN, "image_std": TOWER_STD}
    (directory / "preprocessor_config.json").write_text(json.dumps(processor))
    return directory


def tiny_tokenizer(extra_tokens: list[str] | None = None):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_path()))
    if extra_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": extra_tokens})
    return tokenizer


@dataclass
class OfficialLlava:
    """An official-layout LLaVA model: causal LM + ``mm_projector`` + CLIP tower, and LLaVA's forward."""

    lm: nn.Module
    projector: nn.Module
    tower: CLIPVisionModel
    config: dict
    tokenizer: object

    def state_dict(self, with_vision: bool = True) -> dict[str, torch.Tensor]:
        state = dict(self.lm.state_dict())
        state.update({f"model.mm_projector.{k}": v for k, v in self.projector.state_dict().items()})
        if with_vision:
            prefix = "model.vision_tower.vision_tower.vision_model."
            state.update({prefix + k: v for k, v in self.tower.state_dict().items()})
        return state

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.tower(pixel_values, output_hidden_states=True).hidden_states[self.config["mm_vision_select_layer"]]
        if self.config.get("mm_vision_select_feature", "patch") == "patch":
            hidden = hidden[:, 1:]
        return self.projector(hidden)

    @torch.no_grad()
    def logits(self, input_ids: list[int], pixel_values: torch.Tensor) -> torch.Tensor:
        """LLaVA v1.5: ``IMAGE_TOKEN_INDEX`` replaced by the image features; v1.0: features at ``<im_patch>``."""
        features = self.image_features(pixel_values)[0]
        embed = self.lm.get_input_embeddings()
        if IMAGE_TOKEN_INDEX in input_ids:
            at = input_ids.index(IMAGE_TOKEN_INDEX)
            before = embed(torch.tensor(input_ids[:at]))
            after = embed(torch.tensor(input_ids[at + 1:]))
            embeds = torch.cat([before, features, after])
        else:
            ids = torch.tensor(input_ids)
            patch = self.tokenizer.convert_tokens_to_ids("<im_patch>")
            embeds = embed(ids).masked_scatter((ids == patch).unsqueeze(-1), features)
        return self.lm(inputs_embeds=embeds.unsqueeze(0)).logits[0]

    def save(self, directory: Path, with_vision: bool = True, max_shard_bytes: int | None = None,
             as_bin: bool = False) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        state = self.state_dict(with_vision)
        if as_bin:
            save_bin_shards(state, directory)
        else:
            save_state_dict(state, directory, max_shard_bytes or 10**12)
        (directory / "config.json").write_text(json.dumps(self.config, indent=2))
        self.tokenizer.save_pretrained(str(directory))
        return directory


def save_bin_shards(state: dict[str, torch.Tensor], directory: Path) -> None:
    """Two ``pytorch_model-*.bin`` shards and ``pytorch_model.bin.index.json``."""
    keys = sorted(state)
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2:]]
    weight_map = {}
    for number, names in enumerate(halves, start=1):
        name = f"pytorch_model-{number:05d}-of-00002.bin"
        torch.save({key: state[key].clone() for key in names}, directory / name)
        weight_map.update(dict.fromkeys(names, name))
    (directory / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def official_model(
    family: str = "mistral",
    tower_dir: Path | None = None,
    projector: str = "mlp2x_gelu",
    select_feature: str = "patch",
    select_layer: int = -2,
    v1_markup: bool = False,
    seed: int = 0,
    vocab_extra: int = 0,
) -> OfficialLlava:
    """A tiny LLaVA in the official layout; ``config`` is its ``config.json`` (with leftover fields)."""
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer(V1_TOKENS if v1_markup else None)
    common = dict(vocab_size=len(tokenizer) + vocab_extra, hidden_size=64, intermediate_size=128,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, rope_theta=1e6)
    if family == "mistral":
        lm, model_type = MistralForCausalLM(MistralConfig(**common, sliding_window=None)), "llava_mistral"
    else:
        lm, model_type = LlamaForCausalLM(LlamaConfig(**common)), "llava_llama" if not v1_markup else "llava"
    tower = tiny_clip()
    if projector == "linear":
        mm_projector: nn.Module = nn.Linear(32, 64)
    else:
        mm_projector = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 64))
    config = {
        **{k: v for k, v in lm.config.to_dict().items() if k not in ("rope_parameters", "architectures", "dtype")},
        "rope_theta": 1e6,
        "model_type": model_type,
        "architectures": ["LlavaMistralForCausalLM" if family == "mistral" else "LlavaLlamaForCausalLM"],
        "torch_dtype": "float32",
        "mm_vision_tower": str(tower_dir) if tower_dir else "openai/clip-vit-large-patch14-336",
        "mm_hidden_size": 32,
        "mm_projector_type": projector,
        "mm_vision_select_layer": select_layer,
        "mm_vision_select_feature": select_feature,
        "mm_use_im_start_end": v1_markup,
        "mm_use_im_patch_token": v1_markup,
        "image_aspect_ratio": "pad",
        "tokenizer_model_max_length": 2048,
        "tokenizer_padding_side": "right",
        **LEFTOVER_FIELDS,
    }
    if tower_dir is not None:
        tower = CLIPVisionModel.from_pretrained(str(tower_dir)).eval()
    return OfficialLlava(lm.eval(), mm_projector.eval(), tower, config, tokenizer)


def official_ids(medzoo_ids: list[int], fill_id: int) -> list[int]:
    """medzoo's ids with the run of image positions collapsed to LLaVA's single ``IMAGE_TOKEN_INDEX``."""
    out: list[int] = []
    for token in medzoo_ids:
        if token == fill_id:
            if not out or out[-1] != IMAGE_TOKEN_INDEX:
                out.append(IMAGE_TOKEN_INDEX)
        else:
            out.append(token)
    return out
