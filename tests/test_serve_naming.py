"""The name ``medzoo serve`` gives a model without ``--model-name``: a run's recipe name, not ``final``."""

from __future__ import annotations

from medzoo.app.serving.naming import served_model_name


def test_a_runs_final_model_is_named_after_its_recipe(tmp_path):
    run = tmp_path / "runs" / "my-run"
    (run / "final").mkdir(parents=True)
    (run / "02-instruct" / "model").mkdir(parents=True)
    (run / "recipe.yaml").write_text("name: llava-med-v1.5\nstages: []\n")
    assert served_model_name(run / "final") == "llava-med-v1.5"
    assert served_model_name(run / "02-instruct" / "model") == "llava-med-v1.5/02-instruct"


def test_other_folders_keep_their_name_and_an_unreadable_recipe_falls_back_to_the_run_folder(tmp_path):
    (tmp_path / "llava-med-7b").mkdir()
    assert served_model_name(tmp_path / "llava-med-7b") == "llava-med-7b"
    run = tmp_path / "run-a"
    (run / "final").mkdir(parents=True)
    (run / "recipe.yaml").write_bytes(b"\xff: [")
    assert served_model_name(run / "final") == "run-a"
