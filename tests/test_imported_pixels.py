"""An imported checkpoint sees, through medzoo's evaluation path, the pixels its official evaluation script gave it.

A tiny checkpoint in the official layout goes through ``import_checkpoint``, ``MultimodalModel.from_pretrained``
and the model's processor (``processor_for(model).encode``), on image files opened as ``medzoo eval`` opens them
(``evaluate_model._image_of``). The official pixels come from literal re-writings of the official evaluation
scripts (below, each pinned to its repository, file and commit) on the tower's own ``CLIPImageProcessorPil``
(transformers 4.x's PIL processor, see tests/test_pixel_fidelity.py, whose reference functions are reused):

* LLaVA-Med v1.5: microsoft/LLaVA-Med ``llava/eval/model_vqa.py`` @ d406e3fc7c3d1e4c797a7676de18cbfd070b6d2c,
  ``Image.open`` without conversion, then ``llava/mm_utils.py`` ``process_images`` (mode L padded with one grey
  level, centred draw of ``expand2square``'s offset);
* LLaVA-1.5: haotian-liu/LLaVA ``llava/eval/model_vqa.py`` @ c121f0432da27facab705978f83c4ada465e46fd,
  ``Image.open(...).convert('RGB')``, then ``llava/mm_utils.py`` ``process_images`` (RGB mean colour);
* LLaVA-Med v1.0: microsoft/LLaVA-Med ``llava/eval/model_vqa_med.py`` @ b9a98a736d2ef05bcf5ff345be6403fb3a664eaf
  (v1.0.0), ``Image.open`` then ``image_processor.preprocess`` alone (no padding).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support import official_llava as helpers
from test_pixel_fidelity import (
    assert_same,
    expand2square_centred,
    official_v15_process_images,
    run_processor,
)
from transformers import CLIPImageProcessorPil

from medzoo.app.interop import InteropError
from medzoo.app.interop.llava_import import import_cached, import_checkpoint
from medzoo.app.interop.official_preprocessing import PREPROCESSING_REVISION
from medzoo.core.evaluation.evaluate_model import _image_of
from medzoo.core.inference import processor_for
from medzoo.core.interfaces.benchmark import BenchmarkItem
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.persistence import MANIFEST
from medzoo.plugins.vision import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

QUESTION = [Message("user", "<image>\nIs there an effusion?")]
#: the language family and markup of each official format's tiny checkpoint
FORMATS = {
    "llava-med-v1.5": {"family": "mistral"},
    "llava-v1.5": {"family": "llama"},
    "llava-med-v1.0": {"family": "llama", "projector": "linear", "v1_markup": True},
}
#: (mode, width, height): non-square, landscape and portrait; 70x44 L is the issue's radiograph
IMAGES = [("L", 70, 44), ("L", 31, 50), ("RGBA", 44, 70), ("RGBA", 50, 33), ("RGB", 70, 44), ("RGB", 33, 50)]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tower_dir(tmp_path_factory) -> Path:
    """A tiny CLIP tower whose ``preprocessor_config.json`` is openai/clip-vit-large-patch14-336's at 32 px."""
    torch.manual_seed(11)
    directory = tmp_path_factory.mktemp("tower")
    helpers.tiny_clip().save_pretrained(str(directory))
    (directory / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 32},
        "crop_size": {"height": 32, "width": 32}, "do_resize": True, "do_center_crop": True, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "resample": 3, "do_convert_rgb": True,
        "image_mean": list(OPENAI_CLIP_MEAN), "image_std": list(OPENAI_CLIP_STD),
    }))
    return directory


@pytest.fixture(scope="module")
def imported(tower_dir, tmp_path_factory) -> dict[str, MultimodalModel]:
    """Each official format imported once (config ``image_aspect_ratio: pad``, as the published checkpoints)."""
    root = tmp_path_factory.mktemp("imported")
    models = {}
    for format_name, options in FORMATS.items():
        source = helpers.official_model(tower_dir=tower_dir, **options)
        import_checkpoint(source.save(root / f"{format_name}-src"), format_name, root / format_name)
        models[format_name] = MultimodalModel.from_pretrained(str(root / format_name))
    return models


@pytest.fixture(scope="module")
def image_files(tmp_path_factory) -> dict[tuple[str, int, int], Path]:
    root = tmp_path_factory.mktemp("images")
    files = {}
    for mode, width, height in IMAGES:
        rng = np.random.default_rng([width, height, len(mode)])
        channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
        pixels = rng.integers(0, 256, (height, width, *channels), dtype=np.uint8)
        if mode == "RGBA":
            pixels[..., 3] = np.where(rng.random((height, width)) < 0.5, 0, pixels[..., 3])  # transparent areas
        path = root / f"{mode}-{width}x{height}.png"
        Image.fromarray(pixels, mode).save(path)
        files[mode, width, height] = path
    return files


def official_processor(tower_dir: Path) -> CLIPImageProcessorPil:
    """``CLIPImageProcessor.from_pretrained(mm_vision_tower)`` as transformers 4.x built it (the official
    ``clip_encoder.py``); ``run_processor`` applies 4.x's ``convert_to_rgb``."""
    return CLIPImageProcessorPil.from_pretrained(str(tower_dir), do_convert_rgb=False)


def official_evaluation_pixels(format_name: str, path: Path, clip: CLIPImageProcessorPil) -> torch.Tensor:
    if format_name == "llava-med-v1.5":  # model_vqa.py: Image.open(...); process_images(..., 'pad')
        return official_v15_process_images(Image.open(path), clip)
    if format_name == "llava-v1.5":  # model_vqa.py: Image.open(...).convert('RGB'); process_images(..., 'pad')
        image = Image.open(path).convert("RGB")
        return run_processor(expand2square_centred(image, tuple(int(x * 255) for x in clip.image_mean)), clip)
    return run_processor(Image.open(path), clip)  # model_vqa_med.py: Image.open(...); preprocess(image)


def medzoo_evaluation_pixels(model: MultimodalModel, path: Path) -> torch.Tensor:
    image = _image_of(BenchmarkItem("q1", "Is there an effusion?", "yes", image=path))
    sample = processor_for(model).encode(QUESTION, [image], add_generation_prompt=True)
    return sample.pixel_values[0]


@pytest.mark.parametrize("format_name", FORMATS)
def test_imported_model_sees_the_official_evaluation_pixels(format_name, imported, image_files, tower_dir):
    model, clip = imported[format_name], official_processor(tower_dir)
    for (mode, width, height), path in image_files.items():
        assert_same(
            medzoo_evaluation_pixels(model, path),
            official_evaluation_pixels(format_name, path, clip),
            f"{format_name} {mode} {width}x{height}",
        )


def test_the_lineages_differ_on_greyscale_so_the_comparison_can_fail(imported, image_files):
    """v1.5 pads an L image with grey 114, LLaVA-1.5 with (122, 116, 104), v1.0 does not pad: three pixel sets."""
    path = image_files["L", 70, 44]
    pixels = {name: medzoo_evaluation_pixels(model, path) for name, model in imported.items()}
    assert not torch.equal(pixels["llava-med-v1.5"], pixels["llava-v1.5"])
    assert not torch.equal(pixels["llava-med-v1.0"], pixels["llava-v1.5"])
    padding_row = pixels["llava-med-v1.5"][:, 0, :]  # 70x44 pasted 13 rows down a 70x70 square: row 0 is padding
    grey = torch.tensor([(114 / 255 - m) / s for m, s in zip(OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, strict=True)])
    torch.testing.assert_close(padding_row, grey[:, None].expand_as(padding_row), atol=1e-6, rtol=0)


def test_every_preprocessing_setting_is_written_explicitly(imported):
    """The imported spec names each transform option, so a change of medzoo's defaults cannot change them."""
    expected = {
        "llava-med-v1.5": ("pad", "grey"), "llava-v1.5": ("pad", "rgb"), "llava-med-v1.0": ("crop", "rgb"),
    }
    for format_name, model in imported.items():
        options = model.spec["vision"]["options"]
        aspect, greyscale = expected[format_name]
        assert options == {"feature_layer": -2, "feature_select": "patch", "image_aspect": aspect,
                           "pad_greyscale": greyscale, "pad_offset": "centre", "alpha": "drop",
                           "high_bit_depth": "scale"}, format_name
        transform = model.vision.transform
        assert (transform.aspect, transform.pad_greyscale, transform.size) == (aspect, greyscale, 32)
        assert transform.mean == OPENAI_CLIP_MEAN and transform.std == OPENAI_CLIP_STD


# --- where the official code garbles or crashes: medzoo's deliberate differences -------------------------------


def test_palette_images_keep_their_colours_unlike_v15s_process_images(imported, tmp_path, tower_dir):
    """v1.5's ``expand2square`` pastes a P image onto a new P canvas without its palette: wrong colours. medzoo
    pads the RGB image (what LLaVA-1.5's ``.convert('RGB')`` on opening gives)."""
    rng = np.random.default_rng(3)
    image = Image.frombytes("P", (40, 26), rng.integers(0, 16, 40 * 26, dtype=np.uint8).tobytes())
    image.putpalette(rng.integers(0, 256, 48, dtype=np.uint8).tolist())
    image.save(tmp_path / "palette.png")
    clip = official_processor(tower_dir)
    ours = medzoo_evaluation_pixels(imported["llava-med-v1.5"], tmp_path / "palette.png")
    assert not torch.equal(ours, official_evaluation_pixels("llava-med-v1.5", tmp_path / "palette.png", clip))
    assert_same(ours, official_evaluation_pixels("llava-v1.5", tmp_path / "palette.png", clip), "P as RGB")


def test_non_square_16_bit_images_are_scaled_and_padded_grey_where_v15_raises(imported, tmp_path, tower_dir):
    """v1.5's ``process_images`` gives a one-level background to mode L only: a 16-bit image gets an RGB triple,
    which ``Image.new`` refuses for its mode (TypeError). medzoo scales it to 8 bit and pads it grey."""
    values = np.arange(40 * 26, dtype=np.uint16).reshape(26, 40) * 60
    Image.fromarray(values).save(tmp_path / "ct.png")
    with Image.open(tmp_path / "ct.png") as opened:
        assert opened.mode.startswith("I")
    with pytest.raises(TypeError):
        official_evaluation_pixels("llava-med-v1.5", tmp_path / "ct.png", official_processor(tower_dir))
    model = imported["llava-med-v1.5"]
    squared = model.vision.transform.squared(_image_of(BenchmarkItem("q", "", "", image=tmp_path / "ct.png")))
    assert squared.getpixel((0, 0)) == (114, 114, 114)
    levels = np.asarray(squared)[7:33, :, 0]  # (40 - 26) // 2 = 7 rows of padding above
    assert np.array_equal(levels, ((values.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8))
    assert int(levels.max()) < 255 and np.unique(levels).size > 200  # not saturated as convert('RGB') would


# --- the config's aspect, and cached imports made with older settings ------------------------------------------


def test_v10_ignores_a_pad_aspect_and_anyres_is_refused(tmp_path, tower_dir):
    source = helpers.official_model("llama", tower_dir=tower_dir, projector="linear", v1_markup=True)
    report = import_checkpoint(source.save(tmp_path / "v10"), "llava-med-v1.0", tmp_path / "v10-imported")
    assert any("image_aspect_ratio 'pad' ignored" in note for note in report.notes)
    square = helpers.official_model("llama", tower_dir=tower_dir)
    square.config["image_aspect_ratio"] = "square"
    import_checkpoint(square.save(tmp_path / "square"), "llava-v1.5", tmp_path / "square-imported")
    assert MultimodalModel.from_pretrained(str(tmp_path / "square-imported")).vision.transform.aspect == "crop"
    square.config["image_aspect_ratio"] = "anyres"
    with pytest.raises(InteropError, match=r"^config.json image_aspect_ratio 'anyres': expected 'pad' or 'square'"):
        import_checkpoint(square.save(tmp_path / "anyres"), "llava-v1.5", tmp_path / "anyres-imported")


def test_a_cached_import_with_older_image_settings_is_imported_again(tmp_path, tower_dir):
    source = helpers.official_model("mistral", tower_dir=tower_dir).save(tmp_path / "src")
    target = import_cached(str(source), "llava-med-v1.5", cache_root=tmp_path / "cache")
    manifest_path = target / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    assert manifest["imported"]["preprocessing_revision"] == PREPROCESSING_REVISION
    # as an import made before the revision existed: no revision, no pad_greyscale
    del manifest["imported"]["preprocessing_revision"]
    del manifest["model"]["vision"]["options"]["pad_greyscale"]
    manifest_path.write_text(json.dumps(manifest))
    assert MultimodalModel.from_pretrained(str(target)).vision.transform.pad_greyscale == "rgb"
    assert import_cached(str(source), "llava-med-v1.5", cache_root=tmp_path / "cache") == target
    assert MultimodalModel.from_pretrained(str(target)).vision.transform.pad_greyscale == "grey"
    stamp = manifest_path.stat().st_mtime_ns
    import_cached(str(source), "llava-med-v1.5", cache_root=tmp_path / "cache")
    assert manifest_path.stat().st_mtime_ns == stamp, "a current import is reused"
