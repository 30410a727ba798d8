"""docs/components.md lists every built-in vision encoder, language-model family, connector and template with the
description, hub ids and licence it registers (the tables are generated, app/components_doc.py), and each
row's swap-in example, applied to the recipe the page names, builds the model shrunk and runs a training forward."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch
from PIL import Image

from medzoo.app.components_doc import SECTIONS, render
from medzoo.core.inference import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.build import build_model
from medzoo.core.model.processor import collate
from medzoo.core.plugin_system.manager import components
from medzoo.core.recipes.loading import load_recipe

DOC = (Path(__file__).resolve().parents[1] / "docs" / "components.md").read_text()
#: the recipe every example is applied to (the page says so)
BASE_RECIPE = "llava-med-v1.5"


def section(kind: str) -> str:
    start = DOC.index(SECTIONS[kind])
    following = [DOC.index(h) for h in SECTIONS.values() if DOC.index(h) > start]
    return DOC[start : min(following, default=len(DOC))]


def rows(kind: str) -> dict[str, list[str]]:
    """name -> cells of each table row of the kind's section whose first cell is a `name`."""
    found = {}
    for line in section(kind).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([^`]+)`", cells[0]) if line.startswith("|") else None
        if match:
            found[match.group(1)] = cells
    return found


def builtin(kind: str) -> list[str]:
    return [entry.name for entry in components() if entry.kind == kind and entry.provider.startswith("medzoo.")]


def overrides_of(cell: str) -> list[str]:
    """The ``-o key=value`` pairs of an example cell (one code span)."""
    spans = re.findall(r"`([^`]+)`", cell)
    assert len(spans) == 1, f"expected one code span with the -o overrides, got {cell!r}"
    words = shlex.split(spans[0])
    assert words[::2] == ["-o"] * (len(words) // 2) and len(words) % 2 == 0, spans[0]
    return words[1::2]


@pytest.mark.parametrize("kind", SECTIONS)
def test_every_built_in_component_has_a_row_and_every_row_is_registered(kind):
    documented = set(rows(kind))
    assert set(builtin(kind)) - documented == set(), f"{SECTIONS[kind]} lacks rows"
    for name in documented:
        components().get(kind, name)  # a family member (mlp2x_gelu, ppc_14_7_1) resolves through its pattern


def test_the_tables_are_the_registration_info():
    """Description, hub ids and licence are written where each plugin registers; the page's tables are generated
    from them (only the swap-in column is the page's own)."""
    assert render(DOC) == DOC, "docs/components.md differs from the registry: python -m medzoo.app.components_doc"


def test_a_changed_description_makes_the_page_stale(monkeypatch):
    clip = components().get("vision_encoder", "clip")
    monkeypatch.setitem(clip.info, "description", "a reworded description")
    assert "| `clip` | a reworded description |" in render(DOC) != DOC


def template_of(overrides: list[str], model) -> str:
    """The template an example trains with: a stage's ``template=`` override, else the language model's."""
    stage = [o.split("=", 1)[1] for o in overrides if o.startswith("stages.") and ".template=" in o]
    return stage[-1] if stage else model.language.template_name


EXAMPLES = [(kind, name) for kind in SECTIONS for name in rows(kind)]


@pytest.mark.parametrize(("kind", "name"), EXAMPLES, ids=[f"{k}:{n}" for k, n in EXAMPLES])
def test_the_swap_in_example_builds_and_trains_a_forward_pass(kind, name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    overrides = overrides_of(rows(kind)[name][-1])
    section_key = {"vision_encoder": "vision", "language_model": "language", "connector": "connector"}.get(kind)
    if section_key:
        chosen = [o.split("=", 1)[1] for o in overrides if o.startswith(f"model.{section_key}.name=")]
        pattern = components().get(kind, name).info.get("pattern")
        assert len(chosen) == 1 and (re.fullmatch(pattern, chosen[0]) if pattern else chosen[0] == name), overrides
    else:
        assert any(o.endswith(f"template={name}") for o in overrides), overrides
    config = load_recipe(BASE_RECIPE, [*overrides, "shrink=true"]).config
    torch.manual_seed(0)
    model = build_model(config.model, shrink=True)
    messages = [Message("user", "<image>\nWhat does the image show?"), Message("assistant", "A chest radiograph.")]
    processor = processor_for(model, template_of(overrides, model))
    batch = collate([processor.encode(messages, [Image.new("RGB", (40, 30), (120, 80, 60))])],
                    model.tokenizer.pad_token_id)
    assert (batch["labels"] != -100).any(), "no supervised token: the example would train on nothing"
    with torch.no_grad():
        output = model(**batch)
    assert torch.isfinite(output.loss)
