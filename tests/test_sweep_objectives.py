"""The SFT / +DPO / +GRPO sweep: ``recipes/sweeps/objectives.yaml`` loads and expands to one run per recipe,
variants that begin with the same stages train them once (a later run starts from copies of the earlier run's
finished stage folders), a sweep file's bad keys are one line naming the file and the key, and ``medzoo sweep``
runs a sweep file end to end with the leaderboard's notes telling the variants apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

from medzoo.app.cli.main import cli
from medzoo.app.sweep_plan import (
    combinations,
    load_sweep,
    seed_from_earlier,
    shared_stages,
    sweep_file,
    training_prefix,
)
from medzoo.core.errors import RecipeError
from medzoo.core.recipes.loading import load_recipe
from medzoo.core.resources import recipes_dir

SHIPPED_SWEEPS = sorted((recipes_dir() / "sweeps").glob("*.yaml"))

def test_the_objectives_sweep_expands_to_sft_dpo_and_grpo():
    path = sweep_file("objectives")
    assert path == recipes_dir() / "sweeps" / "objectives.yaml"
    sweep = load_sweep(path)
    assert sweep.recipes == ("tiny", "tiny-dpo", "tiny-grpo") and sweep.description
    runs = combinations(sweep)
    assert [(run.label, run.recipe, run.overrides, run.grid_label) for run in runs] == [
        ("tiny", "tiny", (), ""), ("tiny-dpo", "tiny-dpo", (), ""), ("tiny-grpo", "tiny-grpo", (), "")]


@pytest.mark.parametrize("name", sorted({r for path in SHIPPED_SWEEPS for r in load_sweep(path).recipes}))
def test_every_recipe_a_shipped_sweep_names_loads(name):
    assert load_recipe(name).config.name == name


def test_the_variants_share_the_tiny_stages_and_differ_after_them():
    prefixes = {name: training_prefix(load_recipe(name).config) for name in ("tiny", "tiny-dpo", "tiny-grpo")}
    sft, dpo, grpo = prefixes.values()
    assert [p["stage"]["name"] for p in dpo] == ["alignment", "instruct", "dpo"]
    assert [p["stage"]["name"] for p in grpo] == ["alignment", "instruct", "rec-warmup", "grpo"]
    assert shared_stages(sft, dpo) == shared_stages(sft, grpo) == shared_stages(dpo, grpo) == 2
    changed = training_prefix(load_recipe("tiny-dpo", ["stages.instruct.epochs=1"]).config)
    assert shared_stages(sft, changed) == 1  # a different instruct stage is trained again
    shrunk = training_prefix(load_recipe("tiny-dpo", ["data.root=elsewhere"]).config)
    assert shared_stages(sft, shrunk) == 0  # other data: nothing shared


def finished_run(root: Path, stages: list[str], done: int | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "medzoo_run.json").write_text("{}")
    for index, name in enumerate(stages, start=1):
        folder = root / f"{index:02d}-{name}"
        (folder / "model").mkdir(parents=True)
        (folder / "model" / "weights.txt").write_text(name)
        if done is None or index <= done:
            (folder / "DONE.json").write_text(json.dumps({"stage": name}))
    return root


def test_a_later_run_starts_from_copies_of_the_stages_it_shares(tmp_path):
    prefix = [{"stage": "alignment"}, {"stage": "instruct"}, {"stage": "dpo"}]
    earlier = finished_run(tmp_path / "tiny", ["alignment", "instruct"])
    copied = seed_from_earlier(tmp_path / "tiny-dpo", prefix, [(earlier, prefix[:2])])
    assert copied == ["01-alignment", "02-instruct"]
    assert (tmp_path / "tiny-dpo" / "02-instruct" / "model" / "weights.txt").read_text() == "instruct"
    assert (tmp_path / "tiny-dpo" / "medzoo_run.json").is_file()
    assert not list((tmp_path / "tiny-dpo").glob(".*partial"))
    # a run that already holds a stage is left as it is; an earlier run that stopped early gives nothing
    assert seed_from_earlier(tmp_path / "tiny-dpo", prefix, [(earlier, prefix[:2])]) == []
    unfinished = finished_run(tmp_path / "cut", ["alignment", "instruct"], done=1)
    assert seed_from_earlier(tmp_path / "fresh", prefix, [(unfinished, prefix[:2])]) == []
    assert seed_from_earlier(tmp_path / "other", [{"stage": "x"}], [(earlier, prefix[:2])]) == []


@pytest.mark.parametrize(("text", "message"), [
    ("recipes: []\n", r"recipes: \[\]; expected a non-empty list of recipe names or paths"),
    ("recipes: [tiny, tiny]\n", r"recipes: .* names a recipe twice; expected each once"),
    ("recipes: [tiny]\nmodels: [x]\n", r"models: not a sweep key; expected one of name, description, recipes"),
    ("recipes: [tiny]\ngrid: {lr: 3}\n", r"grid: .*expected a mapping of keys to non-empty lists of values"),
    ("recipes: [tiny]\noverrides: [lr]\n", r"overrides: .*expected a list of key=value strings"),
])
def test_a_bad_sweep_file_is_one_line_naming_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError, match=rf"^{tmp_path}/bad\.yaml: {message}") as raised:
        load_sweep(path)
    assert "\n" not in str(raised.value)


def test_a_grid_in_a_sweep_file_crosses_the_recipes(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("recipes: [tiny, tiny-dpo]\ngrid: {stages.instruct.optimizer.lr: [1.0e-3, 5.0e-4]}\n"
                    "overrides: [seed=1]\n")
    runs = combinations(load_sweep(path))
    assert [run.label for run in runs] == ["tiny__lr=0.001", "tiny__lr=0.0005", "tiny-dpo__lr=0.001",
                                           "tiny-dpo__lr=0.0005"]
    assert runs[0].overrides == ("seed=1", "stages.instruct.optimizer.lr=0.001")
    assert sweep_file(str(path)) == path and sweep_file("tiny") is None  # a recipe is not a sweep file


SHORT = {"data": {"synth_options": {"sizes": {"train": 24, "val": 2, "test": 6}}},
         "stages": [{"name": name, "max_steps": 1, "global_batch_size": 4, "micro_batch_size": 4}
                    for name in ("alignment", "instruct")],
         "benchmarks": [{"name": "synth-vqa-rad", "options": {"root": "${data.root}", "max_new_tokens": 4}}]}


def test_medzoo_sweep_runs_a_sweep_file_and_trains_shared_stages_once(tmp_path):
    data = tmp_path / "data"
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump({"defaults": ["tiny"], "name": "sft", **SHORT}))
    dpo = {"defaults": ["tiny-dpo"], "name": "sft-dpo", **SHORT}
    dpo["stages"] = [*SHORT["stages"], {"name": "dpo", "max_steps": 1, "global_batch_size": 4, "micro_batch_size": 4}]
    (tmp_path / "dpo.yaml").write_text(yaml.safe_dump(dpo))
    sweep = tmp_path / "ablation.yaml"
    sweep.write_text(yaml.safe_dump({"name": "ablation", "recipes": [str(tmp_path / "sft.yaml"),
                                                                     str(tmp_path / "dpo.yaml")],
                                     "overrides": [f"data.root={data}"]}))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["sweep", str(sweep), "-d", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output[-3000:]
    assert "shared with an earlier combination, copied: 01-alignment, 02-instruct" in result.output
    assert "stage instruct: already complete, skipped" in result.output
    for stage in ("01-alignment", "02-instruct"):  # the same weights: trained once, copied
        a, b = (load_file(str(out / run / stage / "model" / "connector.safetensors")) for run in ("sft", "dpo"))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert [o["name"] for o in json.loads((out / "dpo" / "run.json").read_text())["objectives"]] == [
        "sft", "sft", "dpo"]
    rows = {line.split("|")[1].strip(): line for line in (out / "leaderboard.md").read_text().splitlines()
            if line.startswith("| sft")}
    assert set(rows) == {"sft", "sft-dpo"} and "+DPO" in rows["sft-dpo"] and "+DPO" not in rows["sft"]


def test_a_plain_recipe_still_needs_a_grid():
    result = CliRunner().invoke(cli, ["sweep", "tiny", "-d", "nowhere"])
    assert result.exit_code != 0 and "no --grid given" in (result.output + str(result.exception))
