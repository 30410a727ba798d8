"""What a new user runs first fails early and clearly, or works: ``medzoo eval`` finds a synthetic benchmark's data
from the run's recipe (else names the missing option before loading any model), ``medzoo leaderboard runs/*``
skips folders without evaluations and writes its file once, complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.faults import cli_error

from medzoo.app.cli.eval_data import benchmark_options
from medzoo.app.cli.main import main
from medzoo.core.errors import DataError


@pytest.fixture(scope="module")
def synth_root(synthetic_data) -> Path:
    return synthetic_data(train=4, val=2, test=4)


def run_folder(base: Path, recipe: dict) -> Path:
    """A run folder with ``recipe.yaml`` and an (empty) ``final`` model folder: nothing here can be loaded."""
    (base / "final").mkdir(parents=True)
    (base / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return base / "final"


def test_synth_root_defaults_to_the_data_root_of_the_runs_recipe(synth_root, tmp_path):
    model = run_folder(tmp_path / "run", {"name": "tiny", "data": {"root": str(synth_root)}})
    said = []
    options = benchmark_options("synth-vqa-rad", str(model), None, {}, said.append)
    assert options == {"root": str(synth_root)}
    assert said == [f"synth-vqa-rad: --option root={synth_root} (from {tmp_path / 'run' / 'recipe.yaml'})"]


def test_the_recipes_own_benchmark_entry_wins_and_stage_models_find_their_run(synth_root, tmp_path):
    recipe = {"data": {"root": str(tmp_path / "elsewhere")},
              "benchmarks": [{"name": "synth-slake", "options": {"root": str(synth_root)}}]}
    run_folder(tmp_path / "run", recipe)
    stage_model = tmp_path / "run" / "02-instruct" / "model"
    stage_model.mkdir(parents=True)
    assert benchmark_options("synth-slake", str(stage_model), None, {}, print) == {"root": str(synth_root)}


def test_given_options_and_data_are_left_as_they_are(synth_root, tmp_path):
    model = run_folder(tmp_path / "run", {"data": {"root": str(tmp_path / "elsewhere")}})
    given = {"root": str(synth_root), "max_new_tokens": "8"}
    assert benchmark_options("synth-vqa-rad", str(model), None, given, print) == given
    assert benchmark_options("vqa-rad", str(model), "test.json", {}, print) == {}


def test_a_missing_option_is_one_line_naming_it(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    with pytest.raises(DataError, match=r"synth-vqa-rad: set the option root=DIR .*--option KEY=VALUE"):
        benchmark_options("synth-vqa-rad", str(model), None, {}, print)
    with pytest.raises(DataError, match=r"vqa-rad: give the test file"):
        benchmark_options("vqa-rad", str(model), None, {}, print)
    bad = run_folder(tmp_path / "run", {"data": {"root": str(tmp_path)}})  # a folder without the synthetic set
    with pytest.raises(DataError, match=r"vqa_rad/test.json not found .*came from .*recipe.yaml"):
        benchmark_options("synth-vqa-rad", str(bad), None, {}, print)


def test_eval_without_root_fails_before_loading_the_model(capsys, tmp_path):
    model = tmp_path / "final"
    model.mkdir()  # not a model folder: loading it would fail differently
    line = cli_error(capsys, "eval", model, "--benchmark", "synth-vqa-rad", "--output-dir", tmp_path / "out")
    assert line.startswith("error: benchmark synth-vqa-rad: set the option root=DIR")
    assert not (tmp_path / "out").exists()


def evaluated_run(folder: Path, closed: float) -> Path:
    metrics = folder / "eval" / "synth-vqa-rad" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"benchmark": "synth-vqa-rad", "split": "test", "n": 4,
                                   "closed_accuracy": closed, "open_recall": 10.0}), encoding="utf-8")
    return folder


def test_leaderboard_skips_folders_without_evaluations_and_writes_once(capsys, tmp_path):
    runs = tmp_path / "runs"
    evaluated_run(runs / "a", 50.0)
    (runs / "b" / "final").mkdir(parents=True)  # trained, not evaluated
    (runs / "notes.txt").write_text("a file beside the runs\n")
    evaluated_run(runs / "c", 75.0)
    output = tmp_path / "board.html"
    capsys.readouterr()
    main(["leaderboard", *(str(path) for path in sorted(runs.iterdir())), "--format", "html", "-O", str(output)])
    err = capsys.readouterr().err.splitlines()
    assert err == [f"skipping {runs / 'b'}: no eval/<benchmark>/metrics.json (not evaluated yet)",
                   f"skipping {runs / 'notes.txt'}: not a run folder", f"wrote {output}"]
    html = output.read_text()
    assert "<table" in html and ">a<" in html and ">c<" in html and ">b<" not in html
    assert sorted(path.name for path in tmp_path.iterdir()) == ["board.html", "runs"]  # no temporary file left


def test_leaderboard_of_runs_without_any_evaluation_is_an_error_and_writes_nothing(capsys, tmp_path):
    (tmp_path / "runs" / "b").mkdir(parents=True)
    output = tmp_path / "board.md"
    line = cli_error(capsys, "leaderboard", tmp_path / "runs" / "b", "-O", output)
    assert "none of the 1 RUN_DIRs holds evaluations" in line and not output.exists()
    assert "no such run folder" in cli_error(capsys, "leaderboard", tmp_path / "runs" / "typo")
