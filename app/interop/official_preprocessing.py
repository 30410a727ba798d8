"""The image preprocessing of the official evaluation code each imported checkpoint comes from.

An imported model carries every setting of the ``clip`` plugin's transform explicitly, so it sees the pixels
its official evaluation script gave it (docs/fidelity.md, "Imported models"), whatever medzoo's defaults become:

- ``llava-med-v1.5``: microsoft/LLaVA-Med ``llava/eval/model_vqa.py`` @ d406e3f opens images without
  ``.convert('RGB')`` and calls ``llava/mm_utils.py`` ``process_images``: with ``image_aspect_ratio: pad`` a mode-L
  image is padded in L with one grey level (``pad_greyscale: grey``); other modes with the RGB mean colour.
- ``llava-v1.5``: haotian-liu/LLaVA ``llava/eval/model_vqa.py`` @ c121f04 converts every image to RGB on opening,
  then ``process_images`` pads with the RGB mean colour (``pad_greyscale: rgb``).
- ``llava-med-v1.0``: microsoft/LLaVA-Med ``llava/eval/model_vqa_med.py`` @ v1.0.0 runs the CLIP processor alone
  (resize the shortest edge, centre crop): ``image_aspect: crop``, whatever the config says (v1.0 kept
  ``image_aspect_ratio`` as a training argument; its evaluation never pads).

Everywhere: the processor is the tower's CLIP processor (shortest edge = crop = the tower's ``image_size``,
bicubic, the tower's mean and std), alpha is dropped (transformers 4.x ``convert_to_rgb``). Two settings differ
on purpose from the official code, where it garbles images: the paste offset is centred (``pad_offset: centre``;
v1.5 draws ``d // 2`` or ``d // 2 + 1`` from Python's unseeded global ``random``) and 16-bit greyscale is scaled
(``high_bit_depth: scale``; the official ``convert('RGB')`` saturates 99.6 % of a full-range image to white,
and v1.5 raises TypeError on non-square ones). ``pad_offset: random`` and ``high_bit_depth: clip`` restore them.
"""

from __future__ import annotations

from typing import Any

from medzoo.app.interop import InteropError

#: what the official code's ``image_aspect_ratio`` means for medzoo's ``image_aspect`` (absent: the processor alone)
ASPECT_RATIOS = {None: "crop", "square": "crop", "pad": "pad"}
#: settings common to every official lineage (see the module docstring for the two deliberate differences)
COMMON = {"pad_offset": "centre", "alpha": "drop", "high_bit_depth": "scale"}
#: greyscale padding of each official format's evaluation script
PAD_GREYSCALE = {"llava-med-v1.5": "grey", "llava-v1.5": "rgb", "llava-med-v1.0": "rgb"}
#: formats whose evaluation script never pads, whatever the config says
NEVER_PADS = frozenset({"llava-med-v1.0"})
#: bumped whenever the settings an import writes change: cached imports of an older revision are re-imported
PREPROCESSING_REVISION = 2


def official_image_options(format_name: str, config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the ``clip`` transform options of the official evaluation of ``format_name``, notes for the report)."""
    value = config.get("image_aspect_ratio")
    notes = []
    if format_name in NEVER_PADS:
        aspect = "crop"
        if value not in (None, "square"):
            notes.append(
                f"config.json image_aspect_ratio {value!r} ignored: {format_name}'s evaluation (model_vqa_med.py) "
                "resizes and centre-crops without padding"
            )
    elif value in ASPECT_RATIOS:
        aspect = ASPECT_RATIOS[value]
    else:
        raise InteropError(
            f"config.json image_aspect_ratio {value!r}: expected 'pad' or 'square' (LLaVA-1.5 / LLaVA-Med); "
            "'anyres' is LLaVA-NeXT's tiling, which this import does not support"
        )
    options = {"image_aspect": aspect, "pad_greyscale": PAD_GREYSCALE[format_name], **COMMON}
    return options, notes
