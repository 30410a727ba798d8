"""The generation prompt: rules for the text-only model, hand-written few-shot examples, the caption block.

The model never sees the image. It reads a figure caption (and, with inline mentions, the sentences of the
paper that cite the figure) and writes a conversation in which an assistant answers as if it were looking at
the image. Replies are expected as alternating ``User:`` / ``Assistant:`` lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from medzoo.app.instruct.captions import CaptionRecord

USER_MARKER = "User:"
ASSISTANT_MARKER = "Assistant:"

GENERATION_RULES = """\
You write training conversations for a biomedical vision-language assistant.

You receive the caption of a figure from a biomedical paper, and sometimes sentences from the paper that \
refer to the figure. You cannot see the image. Write a conversation between a person who shows the image \
to an AI assistant and asks about it, and the assistant, who answers as if it were looking at the image.

Rules:
1. Write 2 to 4 question-answer turns. Each question starts on a new line with "User:" and each answer on a \
new line with "Assistant:". Write nothing before the first "User:" and nothing after the last answer.
2. Ask about what the image shows: the imaging modality or stain, the anatomy, the visible findings, where \
they are, how large or how many, and what they suggest. Vary the questions; include at least one that needs \
a longer, reasoned answer.
3. Answer in the voice of someone viewing the image ("the image shows", "there is"). Never mention the \
caption, the figure legend, the text, the context, the paper or the authors, and never say that you were \
told anything.
4. Only state what the caption or the sentences support and what could be seen in such an image. Leave out \
details that cannot be seen (patient history, study design, numbers from elsewhere in the paper) unless the \
question asks for background knowledge, and then present it as general knowledge.
5. Do not give medical advice or a diagnosis for a specific person; describe findings and what they are \
commonly associated with.
6. If the caption describes several panels, refer to them by their position or letter as a viewer would.
"""


@dataclass(frozen=True)
class FewShotExample:
    """One hand-written demonstration: the input block the model sees and the conversation it should write."""

    domain: str
    fig_caption: str
    mentions: tuple[str, ...]
    conversation: tuple[tuple[str, str], ...]


FEW_SHOT_EXAMPLES: tuple[FewShotExample, ...] = (
    FewShotExample(
        domain="cxr",
        fig_caption=(
            "Frontal chest radiograph on admission. A homogeneous opacity occupies the right lower zone, "
            "obscuring the right hemidiaphragm, with blunting of the right costophrenic angle. "
            "The left lung is clear."
        ),
        mentions=(
            "The admission radiograph (Figure 1) showed a right lower lobe consolidation with a small "
            "parapneumonic effusion.",
        ),
        conversation=(
            ("What kind of image is this?", "This is a frontal (posteroanterior) chest X-ray."),
            (
                "Is there anything abnormal in the lungs?",
                "Yes. There is a dense, uniform opacity in the lower part of the right lung that hides the "
                "outline of the right hemidiaphragm. The left lung looks clear.",
            ),
            (
                "What about the angle at the bottom of the right lung?",
                "The right costophrenic angle is blunted rather than sharp, which usually points to a small "
                "amount of fluid in the pleural space, a pleural effusion.",
            ),
            (
                "What could cause this combination of findings?",
                "A lower-zone opacity that obscures the diaphragm together with a small effusion is a common "
                "appearance of consolidation, for example from pneumonia, with fluid collecting next to the "
                "infected lung. Collapse of the lower lobe or a mass can look similar, so the appearance is "
                "usually read together with the clinical picture and follow-up imaging.",
            ),
        ),
    ),
    FewShotExample(
        domain="ct",
        fig_caption=(
            "Contrast-enhanced axial CT of the abdomen showing a 4.2 cm hypodense, non-enhancing lesion in "
            "segment VII of the liver (arrow). The spleen and kidneys are unremarkable."
        ),
        mentions=(),
        conversation=(
            (
                "Which imaging technique was used here, and what part of the body is shown?",
                "This is an axial CT slice of the upper abdomen acquired after intravenous contrast. The liver, "
                "spleen and kidneys are in view.",
            ),
            (
                "What is the arrow pointing at?",
                "The arrow marks a rounded area in the back part of the right lobe of the liver, in segment VII, "
                "that is darker (hypodense) than the surrounding liver and about 4 cm across.",
            ),
            (
                "Does the lesion take up contrast?",
                "No. It stays dark after contrast, with no enhancing rim or internal enhancement, while the normal "
                "liver around it brightens. Non-enhancing, well-defined low-density lesions are often fluid "
                "filled, such as simple cysts, although other lesions need to be considered.",
            ),
        ),
    ),
    FewShotExample(
        domain="mri",
        fig_caption=(
            "Axial T2-weighted FLAIR MRI demonstrating multiple ovoid periventricular white-matter "
            "hyperintensities oriented perpendicular to the lateral ventricles."
        ),
        mentions=(
            "MRI (Fig. 3) revealed periventricular lesions with the typical Dawson's finger configuration.",
        ),
        conversation=(
            ("What type of scan is this?", "This is an axial MRI of the brain using a FLAIR (T2-weighted, fluid-"
             "attenuated) sequence, in which cerebrospinal fluid appears dark."),
            (
                "What stands out in the brain tissue?",
                "There are several small oval bright spots in the white matter next to the lateral ventricles. "
                "Their long axes point away from the ventricles, at right angles to the ventricular walls.",
            ),
            (
                "Why does the orientation of these spots matter?",
                "Oval lesions lying perpendicular to the ventricles, sometimes called Dawson's fingers, follow the "
                "small veins that run outward from the ventricles. This pattern is characteristic of "
                "demyelinating disease such as multiple sclerosis, and it helps distinguish those lesions from "
                "the small-vessel changes that become common with age.",
            ),
        ),
    ),
    FewShotExample(
        domain="histology",
        fig_caption=(
            "H&E staining of the tumour (x200). Sheets of pleomorphic cells with enlarged hyperchromatic "
            "nuclei and frequent mitoses; an area of necrosis is seen at the upper left."
        ),
        mentions=(),
        conversation=(
            (
                "What am I looking at?",
                "This is a microscope image of tissue stained with haematoxylin and eosin, at medium "
                "magnification. Nuclei appear purple-blue and cytoplasm pink.",
            ),
            (
                "How do the cells look?",
                "The cells grow in solid sheets and vary a lot in size and shape. Their nuclei are large and dark, "
                "and several cells are caught in the middle of dividing.",
            ),
            (
                "Is there anything in the upper left corner?",
                "The upper left shows an area of necrosis: pale, structureless pink material with scattered "
                "nuclear debris where the cells have died.",
            ),
            (
                "What do these features suggest about the tumour?",
                "Marked variation in cell and nuclear size, dark nuclei, frequent mitoses and necrosis are "
                "features of a high-grade, fast-growing tumour. The exact tumour type cannot be settled from "
                "this appearance alone; it is usually defined with further stains and the clinical setting.",
            ),
        ),
    ),
    FewShotExample(
        domain="gross",
        fig_caption=(
            "Gross specimen of the resected kidney, bisected. A well-circumscribed 6 cm golden-yellow mass with "
            "areas of haemorrhage arises from the upper pole."
        ),
        mentions=(
            "Nephrectomy specimens (Figure 2) showed the classic variegated cut surface of clear cell renal "
            "cell carcinoma.",
        ),
        conversation=(
            (
                "What is shown in this photograph?",
                "It is a surgical specimen of a kidney that has been cut in half to show its inner surface.",
            ),
            (
                "Describe the abnormal area.",
                "At the upper pole there is a round, sharply outlined mass of about 6 cm. Its cut surface is "
                "mostly golden yellow, mixed with dark red patches of bleeding, giving it a variegated look.",
            ),
            (
                "What does a golden-yellow, variegated appearance usually indicate?",
                "A yellow, multicoloured cut surface is typical of clear cell renal cell carcinoma: the yellow "
                "comes from lipid-rich tumour cells and the red-brown areas from haemorrhage. Confirmation "
                "comes from examining the tissue under the microscope.",
            ),
        ),
    ),
)


def format_mentions(mentions: list[str] | tuple[str, ...]) -> str:
    return "\n".join(f"- {sentence}" for sentence in mentions)


def format_caption_block(fig_caption: str, mentions: list[str] | tuple[str, ...], inline_mentions: bool) -> str:
    """The user message describing one figure."""
    block = f"Figure caption:\n{fig_caption.strip()}"
    if inline_mentions and mentions:
        block += f"\n\nSentences from the paper that mention the figure:\n{format_mentions(mentions)}"
    return block


def format_conversation(turns: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> str:
    """Turns as the ``User:`` / ``Assistant:`` text the model is asked to write."""
    return "\n".join(f"{USER_MARKER} {question}\n{ASSISTANT_MARKER} {answer}" for question, answer in turns)


def build_generation_messages(record: CaptionRecord, inline_mentions: bool = False) -> list[dict[str, str]]:
    """System rules, the few-shot demonstrations as earlier exchanges, then the record's caption block."""
    messages = [{"role": "system", "content": GENERATION_RULES}]
    for example in FEW_SHOT_EXAMPLES:
        messages.append(
            {"role": "user", "content": format_caption_block(example.fig_caption, example.mentions, inline_mentions)}
        )
        messages.append({"role": "assistant", "content": format_conversation(example.conversation)})
    messages.append(
        {"role": "user", "content": format_caption_block(record.fig_caption, record.mentions, inline_mentions)}
    )
    return messages
