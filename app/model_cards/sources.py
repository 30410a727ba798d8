"""What a model card says, gathered from what medzoo knows: the model's spec and manifest extras, the registered
components (licences, hub ids), the run folder (``recipe.yaml``, each stage's ``DONE.json``) and the evaluations
``medzoo run`` wrote into it (``eval/<benchmark>/metrics.json``, kept only for the weights they measured)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from medzoo.app.model_cards.card import ComponentRow, EvaluationRow, ModelCard, RecipeInfo, StageRow
from medzoo.app.training_objectives import card_line, folder_objectives, up_to
from medzoo.core.interfaces.benchmark import benchmark_class

RUN_MARKER = "medzoo_run.json"  # core/training/run_folder.py writes it into every run folder
STAGE_FOLDER = re.compile(r"\d{2}-(.+)")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
PARTS = (("vision", "vision_encoder", "vision encoder"), ("connector", "connector", "connector"),
         ("language", "language_model", "language model"))
#: a registered licence's first words -> the Hub's licence identifier
HUB_LICENCES = {"apache-2.0": "apache-2.0", "mit": "mit", "llama 2 community licence": "llama2",
                "llama 3 / 3.1 / 3.2 community licence": "llama3", "gemma terms of use": "gemma"}


@dataclass(frozen=True)
class CardContext:
    """What the card is about: the model's spec and manifest extras, where it lives and how it is loaded (which
    modules trained, and how, is the recipe's stage table)."""

    spec: dict[str, Any]
    extra: dict[str, Any]
    directory: Path
    template: str | None = None
    adapters: tuple[str, ...] = ()
    #: the medzoo model folder the weights were loaded from (another folder than ``directory``), if any
    loaded_from: Path | None = None
    #: ``weights_fingerprint`` of the model: evaluations of other weights are left out (None: keep all)
    fingerprint: str | None = None
    export: str | None = None


def is_hub_id(value: Any) -> bool:
    """``org/name`` that is not a local path (a Hub ``base_model`` or ``datasets`` entry)."""
    return isinstance(value, str) and bool(HUB_ID.fullmatch(value)) and not Path(value).expanduser().exists()


def run_folder_of(model_dir: Path | None) -> Path | None:
    """The run folder holding ``model_dir`` as its ``final/`` or a stage's ``NN-<stage>/model``, else None."""
    if model_dir is None:
        return None
    model_dir = Path(model_dir)
    if model_dir.name == "final":
        candidate = model_dir.parent
    elif model_dir.name == "model" and STAGE_FOLDER.fullmatch(model_dir.parent.name):
        candidate = model_dir.parent.parent
    else:
        return None
    return candidate if (candidate / RUN_MARKER).is_file() else None


def _registration(kind: str, name: str) -> Any:
    from medzoo.core.errors import PluginError
    from medzoo.core.plugin_system.manager import components

    try:
        return components().get(kind, name)
    except PluginError:  # a plugin no longer installed: the card still renders
        return None


def _weights(context: CardContext, part: str) -> str:
    spec = context.spec.get(part) or {}
    imported = context.extra.get("imported")
    if imported:
        return f"imported from `{imported.get('source')}`"
    if context.spec.get("shrink"):
        origin = "random init (recipe shrunk for testing)"
    elif spec.get("pretrained"):
        origin = f"pretrained `{spec['pretrained']}`"
    else:
        origin = "random init"
    if part in context.adapters:
        origin += " + adapters"
    return origin


def component_rows(context: CardContext) -> list[ComponentRow]:
    rows = []
    for part, kind, role in PARTS:
        name = str((context.spec.get(part) or {}).get("name", "?"))
        registration = _registration(kind, name)
        licence = registration.licence if registration else None
        hub_ids = registration.hub_ids if registration else ()
        rows.append(ComponentRow(role, name, _weights(context, part), licence, tuple(hub_ids)))
    if context.template:
        rows.append(ComponentRow("conversation template", context.template, "text only"))
    return rows


def _pretrained_parts(context: CardContext) -> list[str]:
    if context.spec.get("shrink"):
        return []
    return [part for part, _, _ in PARTS if (context.spec.get(part) or {}).get("pretrained")]


def hub_licence(text: str | None) -> str | None:
    """The Hub's licence identifier for a registered licence text (None when it has none)."""
    if not text:
        return None
    return HUB_LICENCES.get(re.split(r"\s*[(;]", text, maxsplit=1)[0].strip().lower())


def licence_of(context: CardContext, rows: list[ComponentRow]) -> tuple[str, str | None, str]:
    """(Hub licence id, licence name for ``other``, a sentence for the card)."""
    imported = context.extra.get("imported")
    if imported:
        where = " and ".join(f"https://huggingface.co/{source}" if is_hub_id(source) else source
                             for source in str(imported.get("source")).split(" + "))
        return "other", "source-checkpoint", f"The imported checkpoint's own licence applies: see {where}."
    pretrained = [row for (part, _, _), row in zip(PARTS, rows, strict=False) if part in _pretrained_parts(context)]
    if not pretrained:
        return "apache-2.0", None, (
            "Every weight was initialised at random and trained with medzoo (Apache-2.0); the licences above are "
            "those of the components' pretrained weights, which this model does not contain.")
    ids = {hub_licence(row.licence) for row in pretrained if row.licence}  # None: medzoo code, no weights licence
    if not ids:
        return "other", "undeclared", "The pretrained weights' plugins declare no licence: see their sources."
    if len(ids) == 1 and None not in ids:
        return ids.pop(), None, "The weights derive from the pretrained components above, under their licences."
    return "other", "mixed", (
        "The weights derive from pretrained components under different licences (above); each one's terms apply.")


def base_models(context: CardContext) -> list[str]:
    imported = context.extra.get("imported") or {}
    sources = str(imported.get("source")).split(" + ") if imported else []  # delta weights: "BASE + DELTA"
    sources += [(context.spec.get(part) or {}).get("pretrained") for part in _pretrained_parts(context)]
    return list(dict.fromkeys(source for source in sources if is_hub_id(source)))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _tuning(tuning: Any) -> str:
    if not isinstance(tuning, dict):
        return str(tuning or "")
    options = tuning.get("options") or {}
    parts = []
    for module in ("vision", "connector", "language"):
        if module in tuning:
            extra = ", ".join(f"{k} {v}" for k, v in sorted((options.get(module) or {}).items()))
            parts.append(f"{module} {tuning[module]}" + (f" ({extra})" if extra else ""))
    return ", ".join(parts)


def _stage_row(stage: dict[str, Any], done: dict[str, Any] | None) -> StageRow:
    planned = f"{stage['max_steps']} steps" if stage.get("max_steps") else f"{stage.get('epochs', '?')} epochs"
    datasets = tuple(f"{d.get('name')}: {d.get('path')}" for d in stage.get("datasets") or [] if isinstance(d, dict))
    loss = None
    if done and isinstance(done.get("first_loss"), int | float) and isinstance(done.get("last_loss"), int | float):
        loss = f"{done['first_loss']:.4f} -> {done['last_loss']:.4f}"
    return StageRow(
        str(stage.get("name")), str(stage.get("role", "")), _tuning(stage.get("tuning")), planned, datasets,
        done.get("steps") if done else None, done.get("samples") if done else None, loss,
    )


def recipe_info(run_dir: Path) -> tuple[RecipeInfo | None, list[str]]:
    """The run's recipe with each trained stage's counts, and the Hub dataset ids its stages read."""
    try:
        recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None, []
    if not isinstance(recipe, dict):
        return None, []
    done = {}
    for folder in sorted(run_dir.iterdir()):
        match = STAGE_FOLDER.fullmatch(folder.name)
        summary = _read_json(folder / "DONE.json") if match and folder.is_dir() else None
        if isinstance(summary, dict):
            done[match.group(1)] = summary
    stages = [s for s in recipe.get("stages") or [] if isinstance(s, dict)]
    rows = tuple(_stage_row(stage, done.get(str(stage.get("name")))) for stage in stages)
    curriculum = (recipe.get("curriculum") or {}).get("name", "") if isinstance(recipe.get("curriculum"), dict) else ""
    info = RecipeInfo(str(recipe.get("name", run_dir.name)), str(recipe.get("description") or ""),
                      str(recipe.get("citation") or ""), str(curriculum), rows, str(run_dir / "recipe.yaml"))
    datasets = [d.get("path") for s in stages for d in s.get("datasets") or [] if isinstance(d, dict)]
    return info, list(dict.fromkeys(path for path in datasets if is_hub_id(path)))


def headline_metrics(benchmark: str, metrics: dict[str, Any]) -> list[str]:
    """The metrics a registered benchmark declares as its headline, else every numeric score."""
    registration = _registration("benchmark", benchmark)
    declared = None
    if registration is not None:
        declared_by = benchmark_class(registration.factory)
        declared = registration.info.get("headline_metrics") or (declared_by.headline_metrics if declared_by else None)
    if declared:
        return [key for key in declared if isinstance(metrics.get(key), int | float)]
    return [key for key, value in metrics.items() if isinstance(value, int | float) and not isinstance(value, bool)
            and key != "seconds" and key != "n" and not key.startswith("n_")]


def _evaluation(path: Path) -> EvaluationRow | None:
    metrics = _read_json(path)
    if not isinstance(metrics, dict):
        return None
    benchmark = str(metrics.get("benchmark", path.parent.name))
    keys = headline_metrics(benchmark, metrics)
    ablation = metrics.get("image_ablation") if isinstance(metrics.get("image_ablation"), dict) else {}
    ablated = ablation.get("metrics") if isinstance(ablation.get("metrics"), dict) else {}
    drop = ablation.get("drop") if isinstance(ablation.get("drop"), dict) else {}
    return EvaluationRow(
        benchmark, metrics.get("split"), {key: metrics[key] for key in keys},
        metrics.get("n") if isinstance(metrics.get("n"), int) else None,
        dict(metrics.get("protocol") or {}), ablation.get("kind"),
        {key: ablated[key] for key in keys if key in ablated}, {key: drop[key] for key in keys if key in drop},
        str(path),
    )


def evaluations(run_dir: Path, fingerprint: str | None) -> list[EvaluationRow]:
    """The run folder's evaluations of the weights with ``fingerprint`` (all of them when it is None)."""
    rows = []
    for path in sorted((run_dir / "eval").glob("*/metrics.json")):
        sidecar = _read_json(path.parent / "predictions.meta.json")
        weights = sidecar.get("weights") if isinstance(sidecar, dict) else None
        if fingerprint is not None and weights != fingerprint:
            continue
        row = _evaluation(path)
        if row is not None:
            rows.append(row)
    return rows


MEDZOO_USAGE = '''```python
import medzoo
from PIL import Image

model = medzoo.load("{path}")   # this folder; a Hub copy: `hf download ORG/NAME --local-dir DIR`, load DIR
print(model.ask(Image.open("image.png"), "What does the image show?"))
```'''

EXPORT_USAGE = '''```python
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration

model = LlavaForConditionalGeneration.from_pretrained("{path}")
processor = AutoProcessor.from_pretrained("{path}")
messages = [{{"role": "user", "content": [{{"type": "image"}}, {{"type": "text", "text": "What does the image show?"}}]}}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(text=prompt, images=Image.open("image.png"), return_tensors="pt", add_special_tokens=False)
output = model.generate(**inputs, max_new_tokens=64, do_sample=False)
print(processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
```'''


def _provenance(context: CardContext) -> list[str]:
    lines = []
    imported = context.extra.get("imported")
    if imported:
        lines.append(f"Imported with `medzoo import` from `{imported.get('source')}` (format `{imported.get('format')}`).")
    if context.extra.get("stage"):
        lines.append(f"Saved after stage `{context.extra['stage']}` of recipe `{context.extra.get('recipe')}`.")
    if context.loaded_from is not None and context.loaded_from.resolve() != context.directory.resolve():
        lines.append(f"Saved from the medzoo model loaded from `{context.loaded_from}`.")
    if context.export:
        lines.append(f"Exported by `medzoo export --format {context.export}`.")
    if context.spec.get("dtype"):
        lines.append(f"Weights in {context.spec['dtype']}; image markup `{context.spec.get('image_markup', 'placeholder')}`.")
    if context.adapters:
        lines.append(f"Adapters kept separate for: {', '.join(context.adapters)} (`adapters/`).")
    return lines


def build_card(context: CardContext) -> ModelCard:
    """The model card of the model ``context`` describes."""
    rows = component_rows(context)
    licence, licence_name, note = licence_of(context, rows)
    run_dir = run_folder_of(context.directory) or run_folder_of(context.loaded_from)
    recipe, datasets = recipe_info(run_dir) if run_dir is not None else (None, [])
    names = " -> ".join(f"`{row.plugin}`" for row in rows[:3])
    objectives = up_to(folder_objectives(run_dir), context.extra.get("stage")) if run_dir is not None else []
    card = ModelCard(
        title=context.directory.name if context.directory.name not in ("final", "model") or run_dir is None
        else f"{run_dir.name} ({context.directory.name})",
        summary=f"A LLaVA-style biomedical vision-language assistant built with medzoo: {names}.",
        library_name="transformers" if context.export else "medzoo",
        license=licence, license_name=licence_name, licence_note=note,
        base_models=base_models(context), datasets=datasets,
        tags=[str((context.spec.get(part) or {}).get("name")) for part, _, _ in PARTS]
        + [o.name for o in objectives if not o.supervised],
        components=rows, provenance=_provenance(context), recipe=recipe,
        objectives=[card_line(objective) for objective in objectives],
        evaluations=evaluations(run_dir, context.fingerprint) if run_dir is not None else [],
        usage=(EXPORT_USAGE if context.export else MEDZOO_USAGE).format(path=context.directory),
    )
    if context.spec.get("shrink") or not _pretrained_parts(context) and not context.extra.get("imported"):
        card.limitations.append("Trained from random weights (no pretrained component): a demonstration or test "
                                "model, not an assistant.")
    return card
