"""Figure captions and in-text mentions in the style of PMC articles, describing each image's findings."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medzoo.app.data_synth.images import SynthImage
from medzoo.app.data_synth.questions import format_box


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _chest_radiograph(image: SynthImage, rng: np.random.Generator) -> tuple[str, str]:
    findings = image.findings
    opening = _pick(rng, ("Frontal chest radiograph showing", "Posteroanterior chest X-ray demonstrating",
                          "Chest film of the patient with"))
    opacity = findings["opacity"]
    if opacity == "none":
        lungs = _pick(rng, ("clear lung fields", "no focal consolidation in either lung"))
    else:
        lungs = _pick(rng, (f"a focal opacity in the {opacity} lung", f"a rounded consolidation in the {opacity} lung",
                            f"an area of increased density in the {opacity} lung field"))
    if findings["effusion"] == "yes":
        side = findings["effusion_side"]
        fluid = _pick(rng, (f"There is a {side} pleural effusion with a fluid level at the lung base.",
                            f"Fluid blunts the {side} costophrenic angle, in keeping with a pleural effusion."))
    else:
        fluid = _pick(rng, ("No pleural effusion is seen.", "The costophrenic angles are sharp, without effusion."))
    return f"{opening} {lungs}. {fluid}", f"the chest radiograph revealed {lungs}"


def _cross_section(image: SynthImage, rng: np.random.Generator) -> tuple[str, str]:
    organ = image.findings["organ"]
    region = {"brain": "head", "liver": "upper abdomen", "kidney": "abdomen at the level of the kidneys",
              "lung": "chest"}[organ]
    if image.domain == "ct":
        scan = _pick(rng, ("Axial CT image", "Non-contrast CT slice", "Axial computed tomography section"))
        detail = _pick(rng, ("Bone appears bright.", "Cortical bone is hyperdense.", "Air is black and bone white."))
    else:
        scan = _pick(rng, ("Axial T1-weighted MRI", "Axial MR image", "T1-weighted magnetic resonance slice"))
        detail = _pick(rng, ("Subcutaneous fat is bright and bone is dark.", "Fat returns high signal.",
                             "Cortical bone shows low signal."))
    organ_phrase = "kidneys" if organ == "kidney" else ("lungs" if organ == "lung" else organ)
    caption = f"{scan} of the {region} showing the {organ_phrase}. {detail}"
    return caption, f"the {image.domain.upper()} showed the {organ_phrase}"


def _histology(image: SynthImage, rng: np.random.Generator) -> tuple[str, str]:
    findings = image.findings
    stain = ("H&E" if findings["stain"] == "h&e" else "immunohistochemical (IHC)")
    count = {"few": _pick(rng, ("a few scattered", "sparse")), "many": _pick(rng, ("many crowded", "numerous"))}
    nuclei = f"{count[findings['nuclei_count']]} {findings['nuclei_size']} nuclei"
    opening = _pick(rng, ("Photomicrograph of", "Histology of", "Microscopic view of"))
    caption = f"{opening} a tissue section ({stain} stain) showing {nuclei}."
    if findings["stain"] == "ihc":
        caption += " Positive nuclei are stained brown."
    return caption, f"histology showed {nuclei}"


def _colonoscopy(image: SynthImage, rng: np.random.Generator) -> tuple[str, str]:
    finding, box = image.findings["finding"], image.findings["box"]
    opening = _pick(rng, ("Colonoscopy image showing", "Endoscopic view of the colon with", "Colonoscopic frame with"))
    if box is None:
        what = _pick(rng, ("normal mucosa", "unremarkable mucosa without lesions"))
        return f"{opening} {what}.", f"colonoscopy showed {what}"
    what = {"polyp": "a sessile polyp", "bleeding": "active bleeding", "ulcer": "an ulcer with a whitish base"}[finding]
    return f"{opening} {what} (box {format_box(box)}).", f"colonoscopy revealed {what}"


_WRITERS: dict[str, Callable[[SynthImage, np.random.Generator], tuple[str, str]]] = {
    "cxr": _chest_radiograph, "ct": _cross_section, "mri": _cross_section,
    "histology": _histology, "colonoscopy": _colonoscopy,
}


def figure_label(rng: np.random.Generator) -> str:
    number = int(rng.integers(1, 7))
    panel = _pick(rng, ("", "", "A", "B"))
    return f"{_pick(rng, ('Figure', 'Fig.'))} {number}{panel}"


def caption_and_mentions(image: SynthImage, label: str, rng: np.random.Generator) -> tuple[str, list[str]]:
    """The caption of ``image`` and the sentences of its (imaginary) article that mention ``label``."""
    caption, finding_clause = _WRITERS[image.domain](image, rng)
    mentions = [f"As shown in {label}, {finding_clause}."]
    if rng.random() < 0.5:
        mentions.append(_pick(rng, (f"Follow-up imaging was compared with {label}.",
                                    f"The findings in {label} guided further management.")))
    return caption, mentions
