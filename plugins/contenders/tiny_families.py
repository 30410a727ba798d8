"""Tiny random transformers vision-language models, one per family a contender answers with, saved the way the
hub ships them (``save_pretrained`` of the real model class plus a processor with a chat template).

Each family pairs a tiny vision tower (32 px images, 8 px patches, width 32, 2 layers) with a tiny language model
(width 64, 2 layers) over medzoo's shipped tiny tokenizer extended with the family's image tokens, and sets the
processor's image-token bookkeeping (tokens per image, patch size) from the same vision config. Tests and demos
evaluate these folders as ``medzoo eval --contender hf-vlm FOLDER``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_SIZE = 32
PATCH = 8
VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "max_position_embeddings": 512}
#: the chat template every family renders its turns with; the parts around them are the family's own
CHAT_TEMPLATE = (
    "{{ prefix }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ user }}{% else %}{{ assistant }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ image }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ end }}{% endfor %}{% if add_generation_prompt %}{{ assistant }}{% endif %}"
)


@dataclass(frozen=True)
class Turns:
    """What the family's chat template writes before the conversation, around each turn and for an image."""

    prefix: str
    user: str
    assistant: str
    end: str
    image: str

    def chat_template(self) -> str:
        """The chat template with these strings in place (as jinja string literals)."""
        template = CHAT_TEMPLATE
        for key, value in vars(self).items():
            literal = "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
            template = template.replace("{{ " + key + " }}", "{{ " + literal + " }}")
        return template


def tokenizer_with(tokens: list[str], named: dict[str, str] | None = None) -> Any:
    """medzoo's tiny tokenizer (left padding) with the family's special tokens (``named``: also as attributes such
    as ``tokenizer.boi_token``)."""
    from transformers import AutoTokenizer

    from medzoo.plugins.language.tiny_tokenizer import tiny_tokenizer_path

    options = {"extra_special_tokens": dict(named)} if named else {}
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_path()), padding_side="left", **options)
    missing = [token for token in tokens if token not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    return tokenizer


def _ids(tokenizer: Any, *tokens: str) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(token) for token in tokens]


def _text(tokenizer: Any, **extra: Any) -> dict[str, Any]:
    return {**TEXT, "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, **extra}


def _vision(**extra: Any) -> dict[str, Any]:
    return {**VISION, "image_size": IMAGE_SIZE, "patch_size": PATCH, **extra}


# ---- the families ---------------------------------------------------------------------------------------------
LLAVA_TURNS = Turns(prefix="<s>", user="USER: ", assistant="ASSISTANT:", end=" ", image="<image>\n")


def _llava(text_model: str) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        from transformers import (
            CLIPImageProcessor,
            LlavaConfig,
            LlavaForConditionalGeneration,
            LlavaProcessor,
        )

        tokenizer = tokenizer_with(["<image>"])
        config = LlavaConfig(
            vision_config={"model_type": "clip_vision_model", **_vision(projection_dim=32)},
            text_config={"model_type": text_model, **_text(tokenizer)},
            image_token_index=_ids(tokenizer, "<image>")[0], vision_feature_select_strategy="default",
            vision_feature_layer=-2,
        )
        image_processor = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                             crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
        processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=LLAVA_TURNS.chat_template())
        return LlavaForConditionalGeneration(config), processor

    return build


QWEN_TURNS = Turns(prefix="", user="<|im_start|>user\n", assistant="<|im_start|>assistant\n", end="<|im_end|>\n",
                   image="<|vision_start|><|image_pad|><|vision_end|>")
QWEN_TOKENS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def _onevision() -> tuple[Any, Any]:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    tokenizer = tokenizer_with(["<image>", "<video>", "<|im_start|>", "<|im_end|>"])
    grid = [[IMAGE_SIZE, IMAGE_SIZE]]
    config = LlavaOnevisionConfig(
        vision_config={"model_type": "siglip_vision_model", **_vision()},
        text_config={"model_type": "qwen2", **_text(tokenizer)},
        image_token_index=_ids(tokenizer, "<image>")[0], video_token_index=_ids(tokenizer, "<video>")[0],
        vision_feature_select_strategy="full", vision_feature_layer=-1, image_grid_pinpoints=grid,
        vision_aspect_ratio="anyres_max_9",
    )
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=grid),
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        tokenizer=tokenizer, num_image_tokens=(IMAGE_SIZE // PATCH) ** 2, vision_feature_select_strategy="full",
        chat_template=Turns(prefix="", user="<|im_start|>user ", assistant="<|im_start|>assistant\n",
                                     end="<|im_end|>", image="<image>\n").chat_template(),
    )
    return LlavaOnevisionForConditionalGeneration(config), processor


def _qwen_processor(tokenizer: Any) -> Any:
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    pixels = {"min_pixels": IMAGE_SIZE * IMAGE_SIZE, "max_pixels": IMAGE_SIZE * IMAGE_SIZE}
    grid = {"patch_size": PATCH, "merge_size": 2, "temporal_patch_size": 2}
    return Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**pixels, **grid),
                            video_processor=Qwen2VLVideoProcessor(**pixels, **grid), tokenizer=tokenizer,
                            chat_template=QWEN_TURNS.chat_template())


def _qwen_ids(tokenizer: Any) -> dict[str, int]:
    image, video, start = _ids(tokenizer, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>")
    return {"image_token_id": image, "video_token_id": video, "vision_start_token_id": start}


def _qwen_rope() -> dict[str, Any]:
    head = TEXT["hidden_size"] // TEXT["num_attention_heads"]  # 32: mrope sections sum to head / 2
    return {"rope_type": "default", "mrope_section": [head // 8, head * 3 // 16, head * 3 // 16]}


def _qwen2_vl() -> tuple[Any, Any]:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    tokenizer = tokenizer_with(QWEN_TOKENS)
    config = Qwen2VLConfig(
        text_config={**_text(tokenizer, rope_scaling=_qwen_rope())},
        vision_config={"depth": 2, "embed_dim": 32, "hidden_size": TEXT["hidden_size"], "num_heads": 2,
                       "mlp_ratio": 2, "patch_size": PATCH, "spatial_merge_size": 2, "temporal_patch_size": 2},
        **_qwen_ids(tokenizer),
    )
    return Qwen2VLForConditionalGeneration(config), _qwen_processor(tokenizer)


def _qwen2_5_vl() -> tuple[Any, Any]:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = tokenizer_with(QWEN_TOKENS)
    config = Qwen2_5_VLConfig(
        text_config={**_text(tokenizer, rope_scaling=_qwen_rope())},
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                       "out_hidden_size": TEXT["hidden_size"], "patch_size": PATCH, "spatial_merge_size": 2,
                       "temporal_patch_size": 2, "window_size": 2 * PATCH * 2, "fullatt_block_indexes": [1]},
        **_qwen_ids(tokenizer),
    )
    return Qwen2_5_VLForConditionalGeneration(config), _qwen_processor(tokenizer)


GEMMA_IMAGE_TOKENS = {"boi_token": "<start_of_image>", "image_token": "<image_soft_token>",
                      "eoi_token": "<end_of_image>"}


def _gemma3() -> tuple[Any, Any]:
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
    )

    tokenizer = tokenizer_with(["<start_of_turn>", "<end_of_turn>"], GEMMA_IMAGE_TOKENS)
    tokens_per_image = 4  # pooled from the 4x4 patches
    boi, image, eoi = _ids(tokenizer, *GEMMA_IMAGE_TOKENS.values())
    config = Gemma3Config(
        vision_config={"model_type": "siglip_vision_model", **_vision()},
        text_config={**_text(tokenizer, head_dim=32, sliding_window=64, query_pre_attn_scalar=32)},
        mm_tokens_per_image=tokens_per_image, boi_token_index=boi, eoi_token_index=eoi, image_token_index=image,
    )
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer, image_seq_length=tokens_per_image,
        chat_template=Turns(prefix="<s>", user="<start_of_turn>user\n", assistant="<start_of_turn>model\n",
                                     end="<end_of_turn>\n", image="<start_of_image>").chat_template(),
    )
    return Gemma3ForConditionalGeneration(config), processor


def _idefics3() -> tuple[Any, Any]:
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    tokenizer = tokenizer_with(["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"])
    scale = 2
    config = Idefics3Config(
        vision_config={**_vision()}, text_config={"model_type": "llama", **_text(tokenizer)},
        scale_factor=scale, image_token_id=_ids(tokenizer, "<image>")[0],
    )
    edge = {"longest_edge": IMAGE_SIZE}
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessor(size=edge, max_image_size=edge, do_image_splitting=False),
        tokenizer=tokenizer, image_seq_len=(IMAGE_SIZE // PATCH) ** 2 // scale**2,
        chat_template=Turns(prefix="<s>", user="User:", assistant="Assistant:", end="<end_of_utterance>\n",
                                     image="<image>").chat_template(),
    )
    return Idefics3ForConditionalGeneration(config), processor


def _paligemma() -> tuple[Any, Any]:
    from transformers import (
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessor,
    )

    tokenizer = tokenizer_with(["<image>"])
    image_processor = SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    image_processor.image_seq_length = (IMAGE_SIZE // PATCH) ** 2
    # the processor adds PaliGemma's location and segmentation tokens: the vocabulary is counted after it
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                   chat_template=Turns(prefix="", user="", assistant="", end="",
                                                                image="<image>").chat_template())
    config = PaliGemmaConfig(
        vision_config={"model_type": "siglip_vision_model", **_vision(projection_dim=TEXT["hidden_size"])},
        text_config={"model_type": "gemma", **_text(tokenizer, head_dim=32)},
        image_token_index=_ids(tokenizer, "<image>")[0], projection_dim=TEXT["hidden_size"],
    )
    return PaliGemmaForConditionalGeneration(config), processor


#: family -> builder of (a tiny random model of the real class, its processor)
FAMILIES: dict[str, Callable[[], tuple[Any, Any]]] = {
    "llava-1.5": _llava("llama"),
    "llava-med": _llava("mistral"),
    "llava-onevision": _onevision,
    "qwen2-vl": _qwen2_vl,
    "qwen2.5-vl": _qwen2_5_vl,
    "gemma3": _gemma3,
    "idefics3": _idefics3,
    "paligemma": _paligemma,
}


def save_tiny_family(family: str, directory: str | Path, seed: int = 0) -> Path:
    """Build ``family``'s tiny random model (seeded) and save it with its processor into ``directory``."""
    import torch

    torch.manual_seed(seed)
    model, processor = FAMILIES[family]()
    tokenizer = processor.tokenizer
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    directory = Path(directory)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
