"""medzoo's image preprocessing gives the official code's pixels, tensor for tensor, for every mode and size.

The "official" pixels are made here by running the official algorithms literally, re-written in this file from
the official sources (cited at each function), on transformers' real CLIP image processor:

* ``CLIPImageProcessorPil``: in transformers >= 5 the class named ``CLIPImageProcessor`` is a torchvision
  implementation (torch bicubic with antialiasing, not PIL's filter); the PIL / NumPy implementation the
  official code ran (transformers 4.28-dev for LLaVA-Med v1.0.0, 4.36.2 for LLaVA-Med main, 4.37.2 for
  LLaVA-1.5) is now ``CLIPImageProcessorPil``, same resize, crop and float arithmetic;
* transformers < 5's ``convert_to_rgb`` was a plain ``image.convert("RGB")`` (alpha dropped); 5.x composites
  transparency onto white. :func:`legacy_convert_to_rgb` applies the old rule and the processor's own
  conversion is switched off, so the reference is what the official environment computed.
"""

from __future__ import annotations

import random

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessorPil

from medzoo.core.model.image_processing import (
    ImageTransform,
    expand_to_square,
    high_bit_depth_to_l,
    resize_shortest_edge,
)
from medzoo.plugins.vision import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from medzoo.plugins.vision.biomedclip import BiomedClipVisionEncoder
from medzoo.plugins.vision.clip import ClipVisionEncoder

# (width, height): tiny and degenerate, odd / even, landscape / portrait, already square, and sizes where the
# long edge int(size * long / short) differs from round(...) (e.g. 500x333 at 33 px: 49.55; 640x480 at 224 px).
SIZES = [
    (1, 7), (7, 1), (1, 1), (2, 3), (3, 2), (5, 5), (32, 32), (33, 32), (31, 33), (64, 48), (48, 64),
    (97, 61), (61, 97), (100, 75), (227, 224), (500, 333), (333, 500), (1001, 37), (37, 1001),
]
TARGETS = (32, 33)
LARGE = [((640, 480), 224), ((480, 640), 224), ((1024, 1024), 224), ((2048, 1536), 336), ((999, 1000), 336)]
MODES = ("RGB", "L", "I;16", "I;16B", "RGBA", "P", "P+tRNS", "LA", "1", "CMYK", "F")


def processor(size: int) -> CLIPImageProcessorPil:
    """The CLIP processor of openai/clip-vit-large-patch14(-336) (and -base-patch16), built from its settings."""
    return CLIPImageProcessorPil(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        resample=3,  # PIL bicubic
        do_center_crop=True,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(OPENAI_CLIP_MEAN),
        image_std=list(OPENAI_CLIP_STD),
        do_convert_rgb=False,  # legacy_convert_to_rgb does transformers 4.x's conversion instead
    )


def legacy_convert_to_rgb(image: Image.Image) -> Image.Image:
    """transformers 4.x ``image_transforms.convert_to_rgb`` (4.27 - 4.37): a PIL image is ``convert("RGB")``-ed."""
    return image if image.mode == "RGB" else image.convert("RGB")


def run_processor(image: Image.Image, clip: CLIPImageProcessorPil) -> torch.Tensor:
    """``image_processor.preprocess(image, return_tensors='pt')['pixel_values'][0]`` in the official environment."""
    return clip.preprocess(legacy_convert_to_rgb(image), return_tensors="pt")["pixel_values"][0]


def expand2square_centred(pil_img: Image.Image, background_color) -> Image.Image:
    """haotian-liu/LLaVA ``llava/mm_utils.py`` ``expand2square`` @ c121f0432da27facab705978f83c4ada465e46fd
    (the same function sits in its ``llava/train/train.py`` and in microsoft/LLaVA-Med ``llava/train/train.py``
    @ v1.0.0 b9a98a736d2ef05bcf5ff345be6403fb3a664eaf): paste centred, the offset floored."""
    width, height = pil_img.size
    if width == height:
        return pil_img
    if width > height:
        canvas = Image.new(pil_img.mode, (width, width), background_color)
        canvas.paste(pil_img, (0, (width - height) // 2))
        return canvas
    canvas = Image.new(pil_img.mode, (height, height), background_color)
    canvas.paste(pil_img, ((height - width) // 2, 0))
    return canvas


def expand2square_llava_med(pil_img: Image.Image, background_color, randint=random.randint) -> Image.Image:
    """microsoft/LLaVA-Med ``llava/mm_utils.py`` ``expand2square`` @ d406e3fc7c3d1e4c797a7676de18cbfd070b6d2c
    (main, v1.5): the short axis offset is ``random.randint(d // 2, d // 2 + 1)``; ``randint`` pins the draw."""
    width, height = pil_img.size
    if width == height:
        return pil_img
    if width > height:
        canvas = Image.new(pil_img.mode, (width, width), background_color)
        canvas.paste(pil_img, (0, randint((width - height) // 2, (width - height) // 2 + 1)))
        return canvas
    canvas = Image.new(pil_img.mode, (height, height), background_color)
    canvas.paste(pil_img, (randint((height - width) // 2, (height - width) // 2 + 1), 0))
    return canvas


def official_training(image: Image.Image, clip: CLIPImageProcessorPil, aspect: str) -> torch.Tensor:
    """haotian-liu/LLaVA ``llava/train/train.py`` ``LazySupervisedDataset.__getitem__`` @ c121f04 (LLaVA-1.5) and
    microsoft/LLaVA-Med ``llava/train/train.py`` @ v1.0.0 (``image_aspect_ratio`` 'square' is the processor
    alone, 'pad' expand2square first); LLaVA-1.5's ``model_vqa.py`` / ``process_images`` open images the same
    way (``.convert('RGB')``) and pad with the same function."""
    image = image.convert("RGB")
    if aspect == "pad":
        image = expand2square_centred(image, tuple(int(x * 255) for x in clip.image_mean))
    return run_processor(image, clip)


def official_v10_eval(image: Image.Image, clip: CLIPImageProcessorPil) -> torch.Tensor:
    """microsoft/LLaVA-Med ``llava/eval/model_vqa_med.py`` ``eval_model`` @ v1.0.0: ``Image.open`` then
    ``image_processor.preprocess(image)``, no conversion of its own, no padding."""
    return run_processor(image, clip)


def official_v15_process_images(image: Image.Image, clip: CLIPImageProcessorPil, randint=None) -> torch.Tensor:
    """microsoft/LLaVA-Med ``llava/mm_utils.py`` ``process_images`` @ d406e3f with ``image_aspect_ratio`` 'pad',
    on the unconverted ``Image.open`` result (``llava/eval/model_vqa.py``): mode L gets one grey level."""
    if image.mode == "L":
        background_color = int(255 * sum(clip.image_mean) / len(clip.image_mean))
    else:
        background_color = tuple(int(x * 255) for x in clip.image_mean)
    image = expand2square_llava_med(image, background_color, randint or (lambda low, high: low))
    return run_processor(image, clip)


def make_image(mode: str, width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng([seed, width, height, sum(map(ord, mode))])
    if mode == "RGB":
        return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    if mode in ("P", "P+tRNS"):
        image = Image.frombytes("P", (width, height), rng.integers(0, 16, height * width, dtype=np.uint8).tobytes())
        image.putpalette(rng.integers(0, 256, 16 * 3, dtype=np.uint8).tolist())
        if mode == "P+tRNS":
            image.info["transparency"] = 3
        return image
    if mode in ("L", "1"):
        image = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8))
        return image.convert("1") if mode == "1" else image
    if mode == "RGBA":
        return Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8))
    if mode == "LA":
        return Image.fromarray(rng.integers(0, 256, (height, width, 2), dtype=np.uint8))
    if mode == "CMYK":
        return Image.frombytes("CMYK", (width, height), rng.integers(0, 256, height * width * 4, dtype=np.uint8).tobytes())
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "I;16B":
        values = rng.integers(0, 65536, (height, width)).astype(">u2")
        return Image.frombytes("I;16B", (width, height), values.tobytes())
    if mode == "F":
        return Image.fromarray(rng.uniform(-100.0, 400.0, (height, width)).astype(np.float32))
    raise AssertionError(mode)


def transform(size: int, aspect: str, **options) -> ImageTransform:
    return ImageTransform(size, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, aspect, **options)


def assert_same(ours: torch.Tensor, official: torch.Tensor, what: str) -> None:
    assert ours.dtype == official.dtype == torch.float32, what
    assert ours.shape == official.shape, what
    difference = float((ours - official).abs().max())
    assert difference == 0.0, f"{what}: max abs diff {difference}"


def cases():
    for width, height in SIZES:
        for target in TARGETS:
            yield (width, height), target
    yield from LARGE


# --- 8-bit images: bit-identical to the official pipelines ----------------------------------------------------


@pytest.mark.parametrize("aspect", ["pad", "crop"])
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "P+tRNS", "LA", "1", "CMYK"])
def test_training_pipeline_llava15_and_v10(mode, aspect):
    """``.convert('RGB')`` on opening (+ centred expand2square): the defaults (pad_greyscale rgb, alpha drop)."""
    for (width, height), target in cases():
        image = make_image(mode, width, height)
        ours = transform(target, aspect)(image)
        official = official_training(image, processor(target), aspect)
        assert_same(ours, official, f"{mode} {width}x{height} -> {target} {aspect}")


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "P+tRNS", "LA", "1", "CMYK"])
def test_v10_evaluation_on_unconverted_images(mode):
    """model_vqa_med.py hands the raw image to the processor; its 4.x convert_to_rgb is the same conversion."""
    for (width, height), target in cases():
        image = make_image(mode, width, height)
        assert_same(
            transform(target, "crop")(image),
            official_v10_eval(image, processor(target)),
            f"{mode} {width}x{height} -> {target}",
        )


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "CMYK"])
def test_v15_process_images_with_grey_padding(mode):
    """LLaVA-Med v1.5: mode L is padded in L with one grey level (pad_greyscale: grey); other modes as before."""
    for (width, height), target in cases():
        image = make_image(mode, width, height)
        ours = transform(target, "pad", pad_greyscale="grey")(image)
        if mode == "CMYK" and width != height:
            # the official code pads in CMYK with an RGB triple (then converts): a different, unintended colour
            assert not torch.equal(ours, official_v15_process_images(image, processor(target)))
            assert_same(ours, official_training(image, processor(target), "pad"), f"CMYK {width}x{height}")
            continue
        assert_same(ours, official_v15_process_images(image, processor(target)), f"{mode} {width}x{height} -> {target}")


def test_grey_padding_level_and_that_the_lineages_differ_on_greyscale():
    image = make_image("L", 20, 40)
    clip = processor(32)
    grey = transform(32, "pad", pad_greyscale="grey")
    rgb = transform(32, "pad")
    assert grey.squared(image).getpixel((0, 20)) == (114, 114, 114)  # int(255 * sum(mean) / 3) = int(114.54)
    assert rgb.squared(image).getpixel((0, 20)) == (122, 116, 104)  # tuple(int(255 * m)): 122.77, 116.75, 104.09
    assert not torch.equal(grey(image), rgb(image))
    assert_same(rgb(image), official_training(image, clip, "pad"), "rgb")
    assert_same(grey(image), official_v15_process_images(image, clip), "grey")


def test_fill_colour_is_truncated_as_the_official_code():
    """Mismatch 1: the fill is tuple(int(x * 255)), not rounded ((123, 117, 104) before the fix)."""
    image = Image.new("RGB", (10, 30), (0, 0, 0))
    assert transform(32, "pad").squared(image).getpixel((0, 0)) == (122, 116, 104)


def test_short_side_resize_truncates_like_transformers():
    """Mismatch 4: 640x480 -> 224 px has a 298.67 px long edge: transformers makes it 298, not 299."""
    image = make_image("RGB", 640, 480)
    assert resize_shortest_edge(image, 224).size == (298, 224)
    assert resize_shortest_edge(make_image("RGB", 333, 500), 33).size == (33, 49)  # 49.55 truncated
    assert_same(transform(224, "crop")(image), official_v10_eval(image, processor(224)), "640x480")


def test_size_list_covers_truncation_and_odd_crop_offsets():
    """The size list exercises what it claims: long edges where truncation and rounding differ, odd crops."""
    truncations = crops = 0
    for (width, height), target in cases():
        short, long = sorted((width, height))
        exact = target * long / short
        truncations += round(exact) != int(exact)
        crops += (int(exact) - target) % 2 == 1
    assert truncations >= 3 and crops >= 3


# --- the random 0/+1 paste offset of LLaVA-Med v1.5 -----------------------------------------------------------


def test_random_pad_offset_is_one_of_the_official_draws_and_seeded():
    clip = processor(33)
    ours = transform(33, "pad", pad_greyscale="grey", pad_offset="random", pad_seed=7)
    draws = set()
    for index in range(24):
        image = make_image("RGB" if index % 2 else "L", 40 + index % 3, 25, seed=index)
        low = official_v15_process_images(image, clip, randint=lambda low, high: low)
        high = official_v15_process_images(image, clip, randint=lambda low, high: high)
        tensor = ours(image)
        assert torch.equal(tensor, low) or torch.equal(tensor, high), index
        draws.add("low" if torch.equal(tensor, low) else "high")
        assert torch.equal(tensor, ours(image)), "the same image and seed draw the same offset"
    assert draws == {"low", "high"}
    # another seed draws differently for some images; the default (centre) is the low draw, deterministic
    other = transform(33, "pad", pad_greyscale="grey", pad_offset="random", pad_seed=8)
    images = [make_image("RGB", 41, 26, seed=i) for i in range(16)]
    assert any(not torch.equal(ours(image), other(image)) for image in images)
    centred = transform(33, "pad", pad_greyscale="grey")
    for image in images:
        assert_same(centred(image), official_v15_process_images(image, clip), "centre")


def test_expand_to_square_offsets():
    image = Image.new("L", (10, 4), 255)
    centred = expand_to_square(image, 0)
    assert np.asarray(centred)[:, 0].tolist() == [0, 0, 0, 255, 255, 255, 255, 0, 0, 0]  # (10 - 4) // 2 = 3
    seen = {
        int(np.argmax(np.asarray(expand_to_square(image, 0, "random", seed))[:, 0])) for seed in range(32)
    }
    assert seen == {3, 4}
    with pytest.raises(ValueError, match="pad_offset"):
        expand_to_square(image, 0, "left")


# --- modes the official code mishandles: deliberate differences -----------------------------------------------


def test_v15_process_images_garbles_palette_images_and_medzoo_does_not():
    """Pasting a P image onto a new P canvas keeps its indices but not its palette: the official v1.5 pixels
    of a non-square palette image are wrong; medzoo converts to RGB first (the training pipeline's pixels)."""
    image = make_image("P", 30, 20)
    clip = processor(32)
    ours = transform(32, "pad", pad_greyscale="grey")(image)
    assert not torch.equal(ours, official_v15_process_images(image, clip))
    assert_same(ours, official_training(image, clip, "pad"), "P")


@pytest.mark.parametrize("mode", ["LA", "1", "I;16", "F"])
def test_v15_process_images_crashes_on_some_modes_and_medzoo_pads_them_grey(mode):
    """``Image.new`` refuses an RGB triple for LA / 1 / I;16 / F canvases: the official code raises TypeError on
    every non-square image of those modes. medzoo treats them as greyscale (the L branch)."""
    image = make_image(mode, 30, 20)
    with pytest.raises(TypeError):
        official_v15_process_images(image, processor(32))
    squared = transform(32, "pad", pad_greyscale="grey", high_bit_depth="clip").squared(image)
    assert squared.getpixel((0, 0)) == (114, 114, 114)


# --- 16-bit greyscale -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_high_bit_depth_clip_reproduces_pil_and_the_official_pixels(mode):
    for (width, height), target in cases():
        image = make_image(mode, width, height)
        for aspect in ("pad", "crop"):
            assert_same(
                transform(target, aspect, high_bit_depth="clip")(image),
                official_training(image, processor(target), aspect),
                f"{mode} {width}x{height} {aspect}",
            )
        assert_same(
            transform(target, "crop", high_bit_depth="clip")(image),
            official_v10_eval(image, processor(target)),
            f"{mode} {width}x{height} eval",
        )
    square = make_image(mode, 32, 32)
    assert transform(32, "crop", high_bit_depth="clip").pixels(square).tobytes() == square.convert("RGB").tobytes()


def test_float_images_clip_like_pil_and_scale_min_max_by_default():
    image = make_image("F", 32, 32)
    assert transform(32, "crop", high_bit_depth="clip").pixels(image).tobytes() == image.convert("RGB").tobytes()
    assert_same(
        transform(32, "pad", high_bit_depth="clip")(make_image("F", 40, 31)),
        official_training(make_image("F", 40, 31), processor(32), "pad"),
        "F",
    )
    values = np.asarray(image, dtype=np.float64)
    levels = np.asarray(transform(32, "crop").pixels(image))[..., 0]
    expected = np.floor((values - values.min()) * 255 / (values.max() - values.min()) + 0.5)
    assert np.array_equal(levels, expected) and levels.min() == 0 and levels.max() == 255


def test_full_range_16_bit_is_scaled_not_saturated():
    """Mismatch 3: PIL's conversion saturates everything above 255 (99.6 % of a full-range image); the default
    ``scale`` maps 0..65535 onto 0..255 (rounded), ``minmax`` the image's own range."""
    ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    image = Image.fromarray(ramp)
    assert image.mode == "I;16"
    clipped = np.asarray(transform(256, "crop", high_bit_depth="clip").pixels(image))[..., 0]
    scaled = np.asarray(transform(256, "crop").pixels(image))[..., 0]
    assert (clipped == 255).mean() > 0.996
    assert np.array_equal(scaled, (ramp.astype(np.int64) * 255 + 32767) // 65535)
    assert (scaled == 255).mean() < 0.01 and np.unique(scaled).size == 256

    narrow = Image.fromarray((np.arange(1000, 2000, dtype=np.uint16)).reshape(25, 40))
    stretched = np.asarray(transform(32, "crop", high_bit_depth="minmax").squared(narrow))[..., 0]
    assert stretched.min() == 0 and stretched.max() == 255
    assert np.asarray(high_bit_depth_to_l(narrow, "scale")).max() == round(1999 * 255 / 65535)
    constant = Image.fromarray(np.full((4, 4), 500, dtype=np.uint16))
    assert np.asarray(high_bit_depth_to_l(constant, "minmax")).max() == 0

    # the tensor of the scaled image is the processor's tensor of the scaled 8-bit image
    sample = make_image("I;16", 61, 97)
    eight_bit = Image.fromarray(((np.asarray(sample).astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8))
    assert_same(transform(33, "pad")(sample), official_training(eight_bit, processor(33), "pad"), "scaled")

    # I (32-bit, how older Pillow opened 16-bit PNGs) scales like I;16, clipped to the 16-bit range
    as_int32 = Image.fromarray(np.array([[-5, 0, 65535, 70000]], dtype=np.int32))
    assert as_int32.mode == "I"
    assert np.asarray(high_bit_depth_to_l(as_int32, "scale")).tolist() == [[0, 0, 255, 255]]
    with pytest.raises(ValueError, match="high_bit_depth"):
        transform(32, "crop", high_bit_depth="stretch")


# --- alpha ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P+tRNS"])
def test_alpha_white_equals_transformers_5_compositing(mode):
    """``alpha: white`` is transformers 5's ``convert_to_rgb`` (transparency composited onto white)."""
    modern = processor(33)
    modern.do_convert_rgb = True
    for (width, height), target in list(cases())[:12]:
        image = make_image(mode, width, height)
        modern.size, modern.crop_size = {"shortest_edge": target}, {"height": target, "width": target}
        official = modern.preprocess(image, return_tensors="pt")["pixel_values"][0]
        assert_same(transform(target, "crop", alpha="white")(image), official, f"{mode} {width}x{height}")
    image = make_image(mode, 20, 20)
    assert not torch.equal(transform(20, "crop", alpha="white")(image), transform(20, "crop")(image))


# --- the encoders' transforms ---------------------------------------------------------------------------------


def test_clip_encoder_options_reach_its_transform():
    config = ClipVisionEncoder.tiny_config()
    encoder = ClipVisionEncoder.from_config(
        config, image_aspect="pad", pad_greyscale="grey", pad_offset="random", pad_seed=3, high_bit_depth="clip",
        alpha="white",
    )
    t = encoder.transform
    assert (t.aspect, t.pad_greyscale, t.pad_offset, t.pad_seed, t.high_bit_depth, t.alpha) == (
        "pad", "grey", "random", 3, "clip", "white"
    )
    default = ClipVisionEncoder.from_config(config).transform
    assert (default.pad_greyscale, default.pad_offset, default.high_bit_depth, default.alpha) == (
        "rgb", "centre", "scale", "drop"
    )


def tiny_biomedclip(**options) -> BiomedClipVisionEncoder:
    config = {"timm_model_name": "vit_base_patch16_224", "img_size": 224, "patch_size": 16, "embed_dim": 32,
              "depth": 1, "num_heads": 2, "mlp_ratio": 2.0}
    torch.manual_seed(0)
    return BiomedClipVisionEncoder.from_config(config, image_aspect="crop", **options)


def test_biomedclip_default_is_v10s_clip_vit_base_patch16_processor():
    """Mismatch 6: LLaVA-Med v1.0 preprocessed for BiomedCLIP with
    ``CLIPImageProcessor.from_pretrained("openai/clip-vit-base-patch16")`` (``llava/model/llava.py``
    ``initialize_vision_modules_from_biomed_clip`` and ``llava/eval/model_vqa_med.py`` @ v1.0.0): shortest edge
    224, bicubic, centre crop 224, OpenAI CLIP mean / std. ``processor(224)`` has exactly those settings."""
    encoder = tiny_biomedclip()
    assert encoder.image_mean == OPENAI_CLIP_MEAN and encoder.image_std == OPENAI_CLIP_STD
    clip = processor(224)
    for width, height in [(227, 224), (500, 333), (333, 500), (224, 224), (37, 1001)]:
        for mode in ("RGB", "L"):
            image = make_image(mode, width, height)
            assert_same(encoder.transform(image), official_v10_eval(image, clip), f"{mode} {width}x{height}")
            assert_same(encoder.transform(image), official_training(image, clip, "crop"), f"{mode} {width}x{height}")


def test_biomedclip_open_clip_option_is_open_clips_own_transform():
    encoder = tiny_biomedclip(preprocess="open_clip")
    theirs = open_clip.transform.image_transform(224, is_train=False, mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD)
    for width, height in [(227, 224), (500, 333), (224, 224)]:
        image = make_image("RGB", width, height)
        assert torch.equal(encoder.transform(image), theirs(image))
    # 227x224: the crop drops 3 columns: CLIP's processor offsets them by 3 // 2 = 1, torchvision by round(1.5) = 2
    image = make_image("RGB", 227, 224)
    assert not torch.equal(encoder.transform(image), tiny_biomedclip().transform(image))
    rebuilt = BiomedClipVisionEncoder.from_config(encoder.architecture_config(), image_aspect="crop", preprocess="open_clip")
    assert torch.equal(rebuilt.transform(image), encoder.transform(image))
