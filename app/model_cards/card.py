"""A model card as data, rendered as a Hugging Face Hub ``README.md`` (YAML front matter, then markdown sections).

The card is filled from what medzoo knows (see :mod:`medzoo.app.model_cards.sources`) and written by
:mod:`medzoo.app.model_cards.writing`; :data:`CARD_MARKER` marks a README.md medzoo wrote (and may rewrite).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

#: the HTML comment that marks a README.md as medzoo's (delete the line to keep medzoo from rewriting the file)
CARD_MARKER = "<!-- medzoo:model-card (written by medzoo; delete this line and medzoo will not rewrite the file) -->"
PIPELINE_TAG = "image-text-to-text"
BASE_TAGS = ("medical", "llava", "medzoo")

INTENDED_USE = (
    "Research on biomedical vision-language assistants: reproducing, comparing and ablating LLaVA-Med-style "
    "models. **Not for clinical use**: the model is not a medical device, was not validated for diagnosis, "
    "triage or treatment, and its answers must not inform patient care."
)
LIMITATIONS = (
    "Answers can be fluent and wrong (hallucinated findings, confident errors); always check them against an "
    "expert.",
    "Benchmark scores measure the benchmark's question style, not clinical competence; the image-ablation drop "
    "shows how much of a score needs the image at all.",
    "Biases of the training data (PubMed Central figures, public VQA sets: modalities, anatomy, languages and "
    "populations they cover) carry over to the answers.",
)


@dataclass(frozen=True)
class ComponentRow:
    """One component of the model: its role, plugin, where its weights came from and their licence."""

    role: str
    plugin: str
    weights: str
    licence: str | None = None
    hub_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageRow:
    """One trained stage of the curriculum (counts from the stage's ``DONE.json`` where the run has one)."""

    name: str
    role: str
    tuning: str
    planned: str
    datasets: tuple[str, ...] = ()
    steps: int | None = None
    samples: int | None = None
    loss: str | None = None


@dataclass(frozen=True)
class RecipeInfo:
    """The recipe and curriculum a model was trained with."""

    name: str
    description: str = ""
    citation: str = ""
    curriculum: str = ""
    stages: tuple[StageRow, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class EvaluationRow:
    """One benchmark's scores (``metrics.json``) with its protocol and, when run, the image ablation."""

    benchmark: str
    split: str | None
    metrics: dict[str, float]
    questions: int | None
    protocol: dict[str, Any] = field(default_factory=dict)
    ablation: str | None = None
    ablated: dict[str, float] = field(default_factory=dict)
    drop: dict[str, float] = field(default_factory=dict)
    source: str = ""


@dataclass
class ModelCard:
    """Everything a medzoo model card says; :func:`render_card` turns it into the README.md text."""

    title: str
    summary: str
    library_name: str = "medzoo"
    license: str = "other"
    license_name: str | None = None
    base_models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    components: list[ComponentRow] = field(default_factory=list)
    licence_note: str = ""
    provenance: list[str] = field(default_factory=list)
    recipe: RecipeInfo | None = None
    #: one line per trained stage: its objective, key options and (GRPO) rewards with their weights
    objectives: list[str] = field(default_factory=list)
    evaluations: list[EvaluationRow] = field(default_factory=list)
    usage: str = ""
    limitations: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        """The YAML front matter (the Hub's model-card metadata)."""
        data: dict[str, Any] = {"license": self.license}
        if self.license == "other" and self.license_name:
            data["license_name"] = self.license_name
        data["library_name"] = self.library_name
        data["pipeline_tag"] = PIPELINE_TAG
        if self.base_models:
            data["base_model"] = list(self.base_models)
        data["tags"] = list(dict.fromkeys([*BASE_TAGS, *self.tags]))
        if self.datasets:
            data["datasets"] = list(self.datasets)
        return data


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _number(value: float) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _components(card: ModelCard) -> list[str]:
    rows = [[c.role, f"`{c.plugin}`", c.weights, c.licence or "not declared", ", ".join(c.hub_ids)]
            for c in card.components]
    lines = ["## Components", "", *_table(["part", "plugin", "weights", "licence", "known checkpoints"], rows)]
    if card.licence_note:
        lines += ["", card.licence_note]
    return lines


def _recipe(recipe: RecipeInfo) -> list[str]:
    described = f": {recipe.description.rstrip('.')}." if recipe.description else "."
    lines = ["## Recipe and curriculum", "", f"Recipe `{recipe.name}`{described}"]
    if recipe.curriculum:
        lines[-1] += f" Curriculum `{recipe.curriculum}`."
    if recipe.source:
        lines += ["", f"The resolved recipe is `{recipe.source}`."]
    if recipe.citation:
        lines += ["", f"Cite: {recipe.citation}"]
    if recipe.stages:
        rows = [[s.name, s.role, s.tuning, s.planned, "" if s.steps is None else s.steps,
                 "" if s.samples is None else s.samples, s.loss or "", "; ".join(s.datasets)] for s in recipe.stages]
        header = ["stage", "role", "tuning", "planned", "steps", "samples trained on", "loss", "data"]
        lines += ["", *_table(header, rows)]
    return lines


def _evaluations(card: ModelCard) -> list[str]:
    lines = ["## Evaluation", ""]
    if not card.evaluations:
        return [*lines, "No evaluation of these weights is recorded (`medzoo run` adds its benchmarks here)."]
    rows = []
    for row in card.evaluations:
        scores = ", ".join(f"{key} {_number(value)}" for key, value in row.metrics.items())
        protocol = ", ".join(f"{key} {value}" for key, value in row.protocol.items() if value is not None)
        rows.append([row.benchmark, row.split or "", "" if row.questions is None else row.questions, scores, protocol])
    lines += _table(["benchmark", "split", "questions", "scores", "protocol"], rows)
    sources = sorted({row.source for row in card.evaluations if row.source})
    if sources:
        lines += ["", "From " + ", ".join(f"`{source}`" for source in sources) + "."]
    return lines


def _image_reliance(card: ModelCard) -> list[str]:
    lines = ["## Image reliance", ""]
    ablated = [row for row in card.evaluations if row.ablation]
    if not ablated:
        return [*lines, "No image ablation is recorded (`medzoo run --image-ablation noise|blank` measures how much "
                        "each score drops when every image is replaced)."]
    lines.append("Each score with the real images, with every image replaced (noise or blank), and the drop: "
                 "a small drop means the answers barely depend on the image.")
    rows = [[row.benchmark, row.split or "", row.ablation, key, _number(row.metrics.get(key, "")),
             _number(row.ablated.get(key, "")), _number(drop)]
            for row in ablated for key, drop in row.drop.items()]
    return [*lines, "", *_table(["benchmark", "split", "ablation", "metric", "real", "ablated", "drop"], rows)]


def render_card(card: ModelCard) -> str:
    """The README.md text: front matter, the marker, then the card's sections."""
    front = yaml.safe_dump(card.metadata(), sort_keys=False, allow_unicode=True).strip()
    lines = ["---", front, "---", "", CARD_MARKER, "", f"# {card.title}", "", card.summary, ""]
    lines += [*_components(card), ""]
    if card.provenance:
        lines += ["## Provenance", "", *(f"- {line}" for line in card.provenance), ""]
    if card.recipe is not None:
        lines += [*_recipe(card.recipe), ""]
    if card.objectives:
        lines += ["## Training objectives", "", *(f"- {line}" for line in card.objectives), ""]
    lines += [*_evaluations(card), "", *_image_reliance(card), ""]
    if card.usage:
        lines += ["## How to use", "", card.usage.strip(), ""]
    lines += ["## Intended use", "", INTENDED_USE, ""]
    lines += ["## Limitations", "", *(f"- {line}" for line in [*card.limitations, *LIMITATIONS]), ""]
    return "\n".join(lines)
