"""``medzoo eval FOLDER`` on a transformers image-text-to-text folder (a ``config.json``, no
``medzoo_model.json``) answers through the ``hf-vlm`` contender by itself and records that choice in
metrics.json; a transformers folder of another kind is one line naming ``--contender hf-vlm`` (issue 28 item 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from support.faults import cli_error

from medzoo.app.cli.main import main
from medzoo.app.interop.hf_llava_export import export_hf_llava
from medzoo.core.model.build import build_model

MAX_NEW_TOKENS = 3


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def data_root(synthetic_data) -> Path:
    return synthetic_data(train=2, val=2, test=3)


@pytest.fixture(scope="module")
def exported_llava(tmp_path_factory) -> Path:
    """A tiny medzoo model (CLIP + mlp2x_gelu + Mistral) exported in the llava-hf layout: what a user calls
    ``./exported-llava``."""
    torch.manual_seed(0)
    spec = {"vision": {"name": "clip", "options": {"feature_layer": -2, "feature_select": "patch",
                                                   "image_aspect": "pad"}},
            "connector": {"name": "mlp2x_gelu"}, "language": {"name": "mistral", "template": "mistral_instruct"}}
    directory = tmp_path_factory.mktemp("export") / "exported-llava"
    export_hf_llava(build_model(spec).eval(), directory)
    return directory


def eval_args(model: Path, data_root: Path, out: Path, *extra: object) -> list[str]:
    return [str(arg) for arg in ("eval", model, "-b", "synth-vqa-rad", "--option", f"root={data_root}", "--option",
                                 f"max_new_tokens={MAX_NEW_TOKENS}", "-d", out, *extra)]


def test_an_exported_llava_folder_answers_through_hf_vlm_by_itself(exported_llava, data_root, tmp_path, capsys,
                                                                   single_thread):
    assert (exported_llava / "config.json").is_file() and not (exported_llava / "medzoo_model.json").exists()
    auto, explicit = tmp_path / "auto", tmp_path / "explicit"
    with single_thread():
        capsys.readouterr()
        main(eval_args(exported_llava, data_root, auto))
        said = capsys.readouterr().out
        main(eval_args(exported_llava, data_root, explicit, "--contender", "hf-vlm"))
    assert f"{exported_llava}: a transformers model folder (config.json model_type 'llava'" in said
    assert "answering with --contender hf-vlm" in said
    metrics = json.loads((auto / "metrics.json").read_text())
    assert metrics["contender"] == {
        "name": "hf-vlm", "chosen": "automatically",
        "reason": "config.json model_type 'llava' is an image-text-to-text model; no medzoo_model.json",
    }
    assert metrics["model_id"] == "exported-llava" and metrics["protocol"]["prompt_template"].startswith("chat_tem")
    assert json.loads((explicit / "metrics.json").read_text())["contender"] == {"name": "hf-vlm",
                                                                                "chosen": "--contender"}

    def texts(folder: Path) -> dict[str, str]:
        rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
        return {row["question_id"]: row["text"] for row in rows}

    assert texts(auto) == texts(explicit) and len(texts(auto)) == metrics["n"] > 0


@pytest.mark.parametrize("case", ["text-only", "no-model-type", "unreadable"])
def test_a_transformers_folder_of_another_kind_is_one_line_naming_the_contender(case, data_root, tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    config = folder / "config.json"
    config.write_text({"text-only": '{"model_type": "llama"}', "no-model-type": '{"hidden_size": 8}',
                       "unreadable": "{"}[case])
    line = cli_error(capsys, *eval_args(folder, data_root, tmp_path / "out"))
    expected = {"text-only": f"error: {config}: model_type 'llama' is not an image-text-to-text model",
                "no-model-type": f"error: {config}: no model_type",
                "unreadable": f"error: {config}: not a readable transformers config (JSONDecodeError)"}[case]
    assert line.startswith(expected), line
    assert line.endswith("not a medzoo model directory (no medzoo_model.json); to answer with a transformers "
                         "model anyway, pass --contender hf-vlm"), line
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_a_medzoo_model_directory_is_still_a_medzoo_model(trained_tiny_model, data_root, tmp_path, capsys,
                                                          single_thread):
    """A medzoo folder holds a config.json of its own modules' too: the manifest decides."""
    with single_thread():
        capsys.readouterr()
        main(eval_args(trained_tiny_model, data_root, tmp_path / "out"))
    assert "contender" not in json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert "a transformers model folder" not in capsys.readouterr().out
