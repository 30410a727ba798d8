"""Question banks: for each image, the questions its pixels answer (short answer plus a full sentence).

Every question text is asked of several images, and the sampling in ``sampling.select_balanced`` keeps
only question texts with at least two different answers, so no question is answerable without the image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from medzoo.app.data_synth.images import SynthImage

MODALITY_NAMES = {"cxr": "x-ray", "ct": "ct", "mri": "mri", "histology": "microscopy", "colonoscopy": "colonoscopy"}
_MODALITY_ZH = {"cxr": "X光", "ct": "CT", "mri": "MRI"}
_ORGAN_ZH = {"chest": "胸部", "brain": "脑", "liver": "肝脏", "kidney": "肾脏", "lung": "肺"}
_YES_NO_ZH = {"yes": "是", "no": "否"}

COLONINST_TEMPLATES: dict[str, tuple[str, ...]] = {
    "cls": (
        "What category does the object in this frame belong to?",
        "Name the category of the finding in this colonoscopy image.",
        "Which class best describes this image?",
        "Identify the type of finding shown here.",
        "Categorise what this endoscopic frame shows.",
    ),
    "reg": (
        "What is the category of the region {box}?",
        "Name the category of the object inside {box}.",
        "What is found in the area {box}?",
        "Which class does the region {box} belong to?",
        "Identify the finding located at {box}.",
    ),
    "rec": (
        "Where is the {category} located?",
        "Locate the {category} in this frame.",
        "Give the bounding box of the {category}.",
        "Find the region that contains the {category}.",
        "Which area of the image shows the {category}?",
    ),
    "cap": (
        "Interpret what the image shows.",
        "Describe this colonoscopy frame.",
        "What can be seen in this endoscopic image?",
        "Give a short description of the image.",
        "Summarise the findings in this frame.",
    ),
}
#: ColonINST CAP answers: a paragraph per finding, ``{where}`` the part of the frame the finding's box is in
COLONINST_CAPTIONS: dict[str, str] = {
    "polyp": "A raised polyp protrudes from the colon wall in the {where} of the frame; no bleeding is visible.",
    "bleeding": "Fresh blood covers the mucosa in the {where} of the frame, a sign of active bleeding.",
    "ulcer": "An ulcer with a pale base breaks the mucosa in the {where} of the frame.",
    "normal": "The colonic mucosa looks normal, with a clear vascular pattern and no polyp, ulcer or bleeding.",
}


@dataclass(frozen=True)
class QA:
    """One question about one image, in the fields the benchmark formats need."""

    key: str
    question: str
    paraphrase: str
    answer: str
    statement: str
    closed: bool
    question_type: str  # VQA-RAD code: PRES, POS, MODALITY, ORGAN, ABN, SIZE, COUNT, COLOR
    content_type: str  # SLAKE category: Abnormality, Position, Modality, Organ, Size, Quantity, Color
    zh_question: str | None = None
    zh_answer: str | None = None

    @property
    def conversational_answer(self) -> str:
        """The answer as an assistant would phrase it in a conversation."""
        if self.closed:
            return f"{self.answer.capitalize()}. {self.statement}"
        return self.statement


def format_box(box: tuple[int, int, int, int]) -> str:
    """ColonINST box notation: ``{<x1><y1><x2><y2>}`` in pixels."""
    return "{" + "".join(f"<{value}>" for value in box) + "}"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _closed(key, question, paraphrase, flag, statement, question_type, content_type, zh=None) -> QA:
    answer = _yes_no(flag)
    return QA(key, question, paraphrase, answer, statement, True, question_type, content_type,
              zh, _YES_NO_ZH[answer] if zh else None)


def _radiology_common(image: SynthImage, organ: str, description: str) -> list[QA]:
    domain = image.domain
    questions = [
        QA("modality", "What imaging modality is this?", "How was this image acquired?",
           MODALITY_NAMES[domain], f"This is {description}.", False, "MODALITY", "Modality",
           "这是什么成像方式？", _MODALITY_ZH[domain]),
        QA("organ", "Which organ is shown in this image?", "What part of the body is imaged?",
           organ, f"The image shows the {organ}.", False, "ORGAN", "Organ",
           "图中显示的是哪个器官？", _ORGAN_ZH[organ]),
    ]
    for other, question, paraphrase, zh in (
        ("ct", "Is this a CT scan?", "Was this image acquired with CT?", "这是CT图像吗？"),
        ("mri", "Is this an MRI?", "Was this image acquired with MRI?", "这是核磁共振图像吗？"),
        ("cxr", "Is this an X-ray?", "Is this a plain radiograph?", "这是X光图像吗？"),
    ):
        questions.append(_closed(f"is_{other}", question, paraphrase, domain == other,
                                 f"This is {description}.", "MODALITY", "Modality", zh))
    return questions


def chest_radiograph_questions(image: SynthImage) -> list[QA]:
    findings = image.findings
    opacity, effusion = findings["opacity"], findings["effusion"] == "yes"
    opacity_text = f"There is a focal opacity in the {opacity} lung." if opacity != "none" else \
        "The lung fields are clear, without focal opacity."
    effusion_text = (f"A pleural effusion fills the base of the {findings['effusion_side']} lung." if effusion
                     else "There is no pleural effusion.")
    questions = _radiology_common(image, "chest", "a frontal chest radiograph")
    questions += [
        _closed("opacity", "Is there an opacity in the lungs?", "Do the lungs show a focal opacity?",
                opacity != "none", opacity_text, "PRES", "Abnormality", "肺部有阴影吗？"),
        _closed("effusion", "Is there a pleural effusion?", "Is fluid seen at a lung base?",
                effusion, effusion_text, "PRES", "Abnormality", "有胸腔积液吗？"),
        _closed("normal", "Is this chest radiograph normal?", "Does this chest film look normal?",
                opacity == "none" and not effusion, f"{opacity_text} {effusion_text}", "ABN", "Abnormality"),
    ]
    if opacity != "none":
        questions += [
            QA("opacity_side", "Which lung contains the opacity?", "On which side is the lung opacity?",
               opacity, opacity_text, False, "POS", "Position", "阴影在哪一侧肺？",
               "左肺" if opacity == "left" else "右肺"),
            _closed("opacity_left", "Is the opacity in the left lung?", "Is the opacity on the left side?",
                    opacity == "left", opacity_text, "POS", "Position"),
        ]
    return questions


def cross_section_questions(image: SynthImage) -> list[QA]:
    organ = image.findings["organ"]
    name = "a CT" if image.domain == "ct" else "an MRI"
    questions = _radiology_common(image, organ, f"{name} slice through the {organ}")
    for candidate in ("brain", "liver", "kidney", "lung"):
        questions.append(_closed(
            f"shows_{candidate}", f"Does this slice show the {candidate}?", f"Is the {candidate} visible here?",
            organ == candidate, f"This {image.domain.upper()} slice shows the {organ}.", "ORGAN", "Organ"))
    return questions


def histology_questions(image: SynthImage) -> list[QA]:
    findings = image.findings
    stain, count, size = findings["stain"], findings["nuclei_count"], findings["nuclei_size"]
    stain_name = "H&E" if stain == "h&e" else "IHC"
    stain_text = f"The section is stained with {stain_name}" + (
        ", with pink stroma and purple nuclei." if stain == "h&e" else ", with brown DAB-positive nuclei.")
    count_text = f"There are {count} nuclei in this field."
    size_text = f"The nuclei are {size}."
    return [
        QA("modality", "What imaging modality is this?", "How was this image acquired?", "microscopy",
           f"This is a light microscopy image of a tissue section. {stain_text}", False, "MODALITY", "Modality"),
        QA("stain", "What stain was used on this tissue?", "Which staining method is shown?", stain,
           stain_text, False, "COLOR", "Color"),
        _closed("stain_he", "Is this tissue stained with H&E?", "Is this an H&E stained section?",
                stain == "h&e", stain_text, "COLOR", "Color"),
        QA("count", "Are there few or many nuclei?", "How numerous are the nuclei?", count, count_text,
           False, "COUNT", "Quantity"),
        _closed("many", "Are there many nuclei in this field?", "Is the field crowded with nuclei?",
                count == "many", count_text, "COUNT", "Quantity"),
        QA("size", "What size are the nuclei?", "How large are the nuclei?", size, size_text,
           False, "SIZE", "Size"),
        _closed("large", "Are the nuclei large?", "Are the nuclei enlarged?", size == "large", size_text,
                "SIZE", "Size"),
    ]


def _region_words(box: tuple[int, int, int, int]) -> str:
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return f"{'upper' if centre_y < 32 else 'lower'} {'left' if centre_x < 32 else 'right'}"


def colonoscopy_questions(image: SynthImage) -> list[QA]:
    finding, box = image.findings["finding"], image.findings["box"]
    if box is None:
        finding_text = "The mucosa looks normal, without polyp, bleeding or ulcer."
    else:
        finding_text = f"There is {'an' if finding == 'ulcer' else 'a'} {finding} in the {_region_words(box)} " \
                       f"of the frame, at {format_box(box)}."
    questions = [
        QA("modality", "What imaging modality is this?", "How was this image acquired?", "colonoscopy",
           f"This is a colonoscopy frame. {finding_text}", False, "MODALITY", "Modality"),
        QA("finding", "What finding is seen in this colonoscopy frame?", "What does this endoscopic image show?",
           finding, finding_text, False, "ABN", "Abnormality"),
        _closed("polyp", "Is there a polyp?", "Does this frame show a polyp?", finding == "polyp",
                finding_text, "PRES", "Abnormality"),
    ]
    if box is not None:
        questions.append(QA("location", f"Where is the {finding}?", f"Where is the {finding} located?",
                            format_box(box), finding_text, False, "POS", "Position"))
    return questions


QUESTION_BANKS: dict[str, Callable[[SynthImage], list[QA]]] = {
    "cxr": chest_radiograph_questions,
    "ct": cross_section_questions,
    "mri": cross_section_questions,
    "histology": histology_questions,
    "colonoscopy": colonoscopy_questions,
}


def questions_for(image: SynthImage) -> list[QA]:
    """Every question the image answers."""
    return QUESTION_BANKS[image.domain](image)
