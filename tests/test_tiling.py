"""LLaVA-NeXT AnyRes tiling (core/model/tiling.py) against transformers' LlavaNext image processor and processor
(transformers/models/llava_next/image_processing_pil_llava_next.py and processing_llava_next.py, the installed
release): the same grid choice, the same crops and thumbnail bit for bit, the same image-token count; and the
recipe's bad values refused in one line."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image
from transformers.image_processing_utils import select_best_resolution as transformers_select
from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

from medzoo.core.errors import RecipeError
from medzoo.core.model.tiling import (
    check_grid,
    check_token_cap,
    image_token_count,
    select_best_resolution,
    tile_image,
)

CROP = 32
#: LLaVA-NeXT's default pinpoints (336-px crops) scaled to 32-px crops, plus 3x3 and a wide 1x4
PINPOINTS = [[32, 64], [64, 32], [64, 64], [96, 32], [32, 96], [96, 96], [32, 128]]
#: image sizes (height, width): square, tall, wide, tiny, odd, larger than every resolution, exact fits
SIZES = [(50, 50), (130, 50), (50, 130), (7, 9), (33, 97), (500, 301), (64, 64), (32, 128), (96, 32), (1, 200)]


def processor(**changes) -> LlavaNextImageProcessorPil:
    return LlavaNextImageProcessorPil(size={"shortest_edge": CROP}, crop_size={"height": CROP, "width": CROP},
                                      image_grid_pinpoints=PINPOINTS, **changes)


def picture(height: int, width: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_grid_choice_equals_transformers_for_every_size_up_to_200_px():
    for height, width in itertools.product(range(1, 201, 3), range(1, 201, 7)):
        assert select_best_resolution((height, width), PINPOINTS) == tuple(
            transformers_select((height, width), PINPOINTS)), (height, width)


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_thumbnail_and_crops_equal_the_processor_bit_for_bit(height, width):
    image = picture(height, width, seed=height * 1000 + width)
    tiling = tile_image(image, PINPOINTS, CROP)
    theirs = processor(do_rescale=False, do_normalize=False)(images=[image], return_tensors="np")["pixel_values"][0]
    ours = np.stack([np.asarray(crop).transpose(2, 0, 1) for crop in tiling.images])
    assert len(tiling.crops) == tiling.grid[0] * tiling.grid[1]
    assert tiling.grid == (tiling.resolution[0] // CROP, tiling.resolution[1] // CROP)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert np.array_equal(ours, theirs)


def test_normalised_pixels_equal_the_processor_through_the_clip_transform():
    """The tiles go through the tower's own transform (CLIP's here): the processor's normalised pixel values."""
    from medzoo.core.model.image_processing import ImageTransform

    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    transform = ImageTransform(CROP, mean, std, aspect="crop")
    image = picture(70, 150, seed=4)
    ours = np.stack([transform(crop).numpy() for crop in tile_image(image, PINPOINTS, CROP).images])
    theirs = processor()(images=[image], return_tensors="np")["pixel_values"][0]
    assert np.array_equal(ours, theirs)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from medzoo.core.resources import package_root

    return AutoTokenizer.from_pretrained(str(package_root() / "plugins" / "language" / "assets" / "tiny-tokenizer"))


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize("patch", [8, 16])
def test_image_token_count_equals_the_llava_next_processor(height, width, patch, tokenizer):
    from transformers import LlavaNextProcessor

    hf = LlavaNextProcessor(image_processor=processor(), tokenizer=tokenizer, patch_size=patch,
                            vision_feature_select_strategy="default")
    expected = hf._get_number_of_features(height, width, CROP, CROP)
    assert image_token_count((height, width), PINPOINTS, CROP, CROP // patch) == expected
    assert image_token_count((height, width), PINPOINTS, CROP, CROP // patch, unpad=False, newline=False) == (
        (CROP // patch) ** 2 * (1 + len(tile_image(picture(height, width), PINPOINTS, CROP).crops)))


@pytest.mark.parametrize(("value", "message"), [
    ([[32, 64], [64, 50]], "model.vision.options.image_grid_pinpoints[1]: [64, 50]: 50 is not a positive multiple "
                           "of the tower's 32-px crops; expected a list of [height, width] pairs whose sides are "
                           "multiples of the tower's 32-px crops"),
    ([[0, 32]], "model.vision.options.image_grid_pinpoints[0]: [0, 32]: 0 is not a positive multiple"),
    ([[32, 64, 96]], "model.vision.options.image_grid_pinpoints[0]: [32, 64, 96]; expected a list of [height, "
                     "width] pairs"),
    ([], "model.vision.options.image_grid_pinpoints: []; expected a list of [height, width] pairs"),
    ("anyres", "model.vision.options.image_grid_pinpoints: 'anyres'; expected a list"),
])
def test_a_grid_that_does_not_divide_into_the_towers_size_is_refused_in_one_line(value, message):
    with pytest.raises(RecipeError) as refused:
        check_grid(value, CROP, "model.vision.options.image_grid_pinpoints")
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_a_good_grid_comes_back_as_pairs():
    assert check_grid(PINPOINTS, CROP, "k") == [tuple(pair) for pair in PINPOINTS]


@pytest.mark.parametrize(("value", "message"), [
    (15, "model.vision.options.max_image_tokens: 15 is below one crop's 16 image tokens; expected an integer >= 16 "
         "(one crop's image tokens), or null for no cap"),
    (0, "model.vision.options.max_image_tokens: 0 is below one crop's 16 image tokens"),
    ("many", "model.vision.options.max_image_tokens: 'many'; expected an integer >= 16"),
    (True, "model.vision.options.max_image_tokens: True; expected an integer >= 16"),
])
def test_an_image_token_cap_below_one_crop_is_refused_in_one_line(value, message):
    with pytest.raises(RecipeError) as refused:
        check_token_cap(value, 16, "model.vision.options.max_image_tokens")
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
    assert check_token_cap(16, 16, "k") == 16 and check_token_cap(None, 16, "k") is None


def test_image_token_count_equals_the_processor_over_a_sweep_of_sizes(tokenizer):
    from transformers import LlavaNextProcessor

    hf = LlavaNextProcessor(image_processor=processor(), tokenizer=tokenizer, patch_size=2,
                            vision_feature_select_strategy="default")
    for height, width in itertools.product(range(1, 400, 7), range(1, 400, 11)):
        assert image_token_count((height, width), PINPOINTS, CROP, CROP // 2) == hf._get_number_of_features(
            height, width, CROP, CROP), (height, width)
