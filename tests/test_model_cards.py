"""Model cards: every model folder medzoo writes (run stages and ``final/``, copies and merges, hf-llava exports,
imports) holds a Hugging Face ``README.md`` that ``huggingface_hub.ModelCard`` parses; ``medzoo run`` adds its
evaluations (only those of exactly the folder's weights) with the image ablation; a README.md medzoo did not
write is never replaced."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from medzoo.app.interop.hf_llava_export import export_hf_llava
from medzoo.app.interop.llava_import import import_checkpoint
from medzoo.app.model_cards.card import CARD_MARKER, render_card
from medzoo.app.model_cards.sources import CardContext, build_card, component_rows, hub_licence, licence_of
from medzoo.app.model_cards.writing import (
    README,
    card_context,
    refresh_model_card,
    write_model_card,
    written_by_medzoo,
)
from medzoo.app.pipeline import run_recipe
from medzoo.core.model.adapters import merge_adapters
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.persistence import read_manifest
from medzoo.core.recipes.loading import load_recipe
from medzoo.testing import TINY_MODEL

BENCHMARK = "synth-vqa-rad"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def stage(name: str, role: str, dataset: dict, tuning: dict) -> dict:
    return {"name": name, "role": role, "datasets": [dataset], "tuning": tuning, "max_steps": 2,
            "global_batch_size": 2, "micro_batch_size": 2, "max_length": 128, "optimizer": {"lr": 1e-3}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synthetic_data, single_thread) -> Path:
    """``medzoo run``'s job on the tiny model: two stages (LoRA in the second), one benchmark with the noise
    ablation."""
    root = synthetic_data(train=4, val=2, test=4)
    images = str(root / "images")
    recipe = {
        "name": "card-tiny", "description": "the tiny model for model-card tests", "model": TINY_MODEL,
        "stages": [
            stage("alignment", "alignment", {"name": "pmc-captions", "path": str(root / "pmc/captions.jsonl"),
                                             "image_root": images},
                  {"vision": "frozen", "connector": "full", "language": "frozen"}),
            stage("instruct", "instruct", {"name": "llava-json", "path": str(root / "llava_med/instruct.json"),
                                           "image_root": images},
                  {"vision": "frozen", "connector": "full", "language": "lora",
                   "options": {"language": {"r": 4, "alpha": 8}}}),
        ],
        "benchmarks": [{"name": BENCHMARK, "options": {"root": str(root), "max_new_tokens": 4}}],
    }
    base = tmp_path_factory.mktemp("card-run")
    (base / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    config = load_recipe(str(base / "recipe.yaml")).config
    with single_thread():
        run_recipe(config, base / "run", image_ablation="noise", echo=lambda *_: None)
    return base / "run"


def card_of(folder: Path) -> tuple[ModelCard, str]:
    text = (folder / README).read_text(encoding="utf-8")
    return ModelCard(text), text


def test_the_final_card_has_components_recipe_evaluations_and_image_reliance(run_dir):
    card, text = card_of(run_dir / "final")
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0" and data["library_name"] == "medzoo"
    assert data["pipeline_tag"] == "image-text-to-text" and {"medical", "llava", "medzoo"} <= set(data["tags"])
    assert "base_model" not in data  # every weight is random init
    assert text.splitlines()[0] == "---" and CARD_MARKER in text and written_by_medzoo(run_dir / "final" / README)
    assert "| vision encoder | `clip` | random init | MIT |" in text
    assert "| language model | `mistral` | random init + adapters | Apache-2.0 |" in text
    assert "Recipe `card-tiny`: the tiny model for model-card tests. Curriculum `llava-med`." in text
    assert "| alignment | alignment | vision frozen, connector full, language frozen | 2 steps | 2 | 4 |" in text
    assert "language lora (alpha 8, r 4)" in text and "llava-json: " in text
    metrics = json.loads((run_dir / "eval" / BENCHMARK / "metrics.json").read_text())
    row = f"| {BENCHMARK} | test | {metrics['n']} | open_recall {metrics['open_recall']:.2f}, closed_accuracy"
    assert row in text and "prompt_template mistral_instruct, decoding greedy, seed 0" in text
    drop = metrics["image_ablation"]["drop"]["closed_accuracy"]
    assert f"| {BENCHMARK} | test | noise | closed_accuracy | {metrics['closed_accuracy']:.2f} |" in text
    assert f"| {drop:.2f} |" in text
    assert "**Not for clinical use**" in text and "## Limitations" in text and "## Provenance" in text


def test_stage_models_have_cards_and_only_their_own_evaluations(run_dir):
    card, text = card_of(run_dir / "01-alignment" / "model")
    assert card.data.library_name == "medzoo" and "Saved after stage `alignment` of recipe `card-tiny`." in text
    assert "No evaluation of these weights is recorded" in text and "| instruct | instruct |" in text


def test_evaluations_of_other_weights_are_left_out(run_dir, trained_tiny_model):
    final = run_dir / "final"
    other = card_context(read_manifest(final), final, MultimodalModel.from_pretrained(str(trained_tiny_model)))
    assert build_card(other).evaluations == []
    same = card_context(read_manifest(final), final, MultimodalModel.from_pretrained(str(final)))
    assert [row.benchmark for row in build_card(same).evaluations] == [BENCHMARK]


def test_copies_and_merges_say_where_they_come_from(run_dir, tmp_path):
    model = MultimodalModel.from_pretrained(str(run_dir / "final"))
    model.save_pretrained(str(tmp_path / "copy"), folder_files=write_model_card)
    _, copy = card_of(tmp_path / "copy")
    assert f"Saved from the medzoo model loaded from `{run_dir / 'final'}`." in copy
    assert f"| {BENCHMARK} | test |" in copy  # the same weights: their evaluations hold
    assert merge_adapters(model) == ["language"]
    model.save_pretrained(str(tmp_path / "merged"), folder_files=write_model_card)
    card, merged = card_of(tmp_path / "merged")
    assert card.data.license == "apache-2.0" and "Recipe `card-tiny`" in merged
    assert "No evaluation of these weights is recorded" in merged  # merging changed the weights


def test_the_core_saves_no_card_of_its_own(run_dir, tmp_path):
    """Cards are the application's: the core's save writes one only through the ``folder_files`` it is given."""
    MultimodalModel.from_pretrained(str(run_dir / "final")).save_pretrained(str(tmp_path / "bare"))
    assert (tmp_path / "bare" / "medzoo_model.json").is_file() and not (tmp_path / "bare" / README).exists()


def test_a_readme_medzoo_did_not_write_is_kept(run_dir, tmp_path):
    folder = tmp_path / "mine"
    shutil.copytree(run_dir / "final", folder)
    (folder / README).write_text("# my notes\n")
    MultimodalModel.from_pretrained(str(folder)).save_pretrained(str(folder), folder_files=write_model_card)
    assert (folder / README).read_text() == "# my notes\n" and (folder / "medzoo_model.json").is_file()
    assert refresh_model_card(folder) is None and (folder / README).read_text() == "# my notes\n"
    (folder / README).write_text(f"{CARD_MARKER}\nstale\n")
    assert refresh_model_card(folder) == folder / README
    assert ModelCard.load(folder / README).data.library_name == "medzoo"


def test_hf_llava_exports_and_imports_have_cards(run_dir, tmp_path):
    model = MultimodalModel.from_pretrained(str(run_dir / "final"))
    export_hf_llava(model, tmp_path / "export")
    card, text = card_of(tmp_path / "export")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-text-to-text"
    assert "LlavaForConditionalGeneration.from_pretrained" in text and "Exported by `medzoo export" in text
    import_checkpoint(tmp_path / "export", "hf-llava", tmp_path / "imported")
    card, text = card_of(tmp_path / "imported")
    assert card.data.license == "other" and card.data.license_name == "source-checkpoint"
    assert f"Imported with `medzoo import` from `{tmp_path / 'export'}` (format `hf-llava`)." in text
    assert "| vision encoder | `clip` | imported from" in text


def test_licences_and_base_models_come_from_the_registrations(tmp_path):
    assert hub_licence("Apache-2.0 (Qwen2.5 3B and 72B: Qwen licence)") == "apache-2.0"
    assert hub_licence("Llama 2 Community Licence") == "llama2" and hub_licence("each tower's own") is None
    spec = {"vision": {"name": "clip", "pretrained": "openai/clip-vit-large-patch14-336"},
            "connector": {"name": "mlp2x_gelu"},
            "language": {"name": "mistral", "pretrained": "mistralai/Mistral-7B-Instruct-v0.2"}}
    both = CardContext(spec, {}, tmp_path / "m")
    assert licence_of(both, component_rows(both))[:2] == ("other", "mixed")  # MIT and Apache-2.0
    data = build_card(both).metadata()
    assert data["base_model"] == ["openai/clip-vit-large-patch14-336", "mistralai/Mistral-7B-Instruct-v0.2"]
    (tmp_path / "local-lm").mkdir()
    one = CardContext({**spec, "vision": {"name": "clip"},
                       "language": {"name": "mistral", "pretrained": "mistralai/Mistral-7B-Instruct-v0.2"},
                       "connector": {"name": "mlp2x_gelu", "pretrained": str(tmp_path / "local-lm")}}, {}, tmp_path)
    assert build_card(one).metadata()["license"] == "apache-2.0"
    assert build_card(one).metadata()["base_model"] == ["mistralai/Mistral-7B-Instruct-v0.2"]
    imported = CardContext(spec, {"imported": {"source": "microsoft/llava-med-v1.5-mistral-7b", "format": "x"}},
                           tmp_path / "i")
    text = render_card(build_card(imported))
    assert ModelCard(text).data.base_model[0] == "microsoft/llava-med-v1.5-mistral-7b"
    assert "https://huggingface.co/microsoft/llava-med-v1.5-mistral-7b" in text
    delta = CardContext(spec, {"imported": {"source": "huggyllama/llama-7b + microsoft/llava-med-7b-delta"}}, tmp_path)
    assert build_card(delta).base_models[:2] == ["huggyllama/llama-7b", "microsoft/llava-med-7b-delta"]
