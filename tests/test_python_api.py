"""The Python API (``medzoo.load``, ``Model.ask`` / ``chat``, ``medzoo.recipe`` / ``train`` / ``evaluate`` /
``score``): docs/python-api.md's examples run as written, ``import medzoo`` stays torch-free, bad input is one line."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.hang_guard import SUBPROCESS_HANG_S

import medzoo
from medzoo.core.errors import DataError, MedzooError

DOC = Path(__file__).resolve().parent.parent / "docs" / "python-api.md"
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.S)


def blocks(kind: str) -> list[str]:
    return [code for language, code in BLOCK.findall(DOC.read_text(encoding="utf-8")) if language == kind]


@pytest.fixture(scope="module")
def model(trained_tiny_model):
    return medzoo.load(trained_tiny_model, device="cpu")


@pytest.fixture
def doc_folder(tmp_path, trained_tiny_model, squares) -> Path:
    """A folder as the docs assume: ``runs/tiny/final`` (the trained tiny model) and ``scan.png``."""
    shutil.copytree(trained_tiny_model, tmp_path / "runs" / "tiny" / "final")
    squares.image("red").save(tmp_path / "scan.png")
    return tmp_path


def python_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def test_import_medzoo_imports_no_torch_and_names_the_api():
    probe = (
        "import sys, medzoo\n"
        "names = [medzoo.load, medzoo.train, medzoo.evaluate, medzoo.score, medzoo.recipe, medzoo.Model]\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n"
        "print(' '.join(sorted(n for n in medzoo.USER_API)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=python_env(),
                          timeout=SUBPROCESS_HANG_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == sorted(["Chat", "Model", "evaluate", "load", "recipe", "score", "train"])
    assert set(medzoo.USER_API) <= set(medzoo.__all__) and set(medzoo.PUBLIC_API) <= set(medzoo.__all__)


def test_the_documented_examples_run(doc_folder, monkeypatch, capsys):
    monkeypatch.chdir(doc_folder)
    namespace: dict = {}
    for index, code in enumerate(blocks("python")):
        try:
            exec(compile(code, f"{DOC.name} block {index}", "exec"), namespace)  # noqa: S102
        except Exception as error:  # pragma: no cover - the failure message names the block
            pytest.fail(f"{DOC.name} python block {index} failed: {type(error).__name__}: {error}\n{code}")
    printed = capsys.readouterr().out
    assert "The square is red." in printed  # the trained tiny model names the colour of scan.png
    assert namespace["final"] == Path("runs/api-demo/final") and (doc_folder / namespace["final"] / "README.md").is_file()
    assert len(namespace["answers"]) == 3 and namespace["metrics"]["benchmark"] == "synth-vqa-rad"
    card = (doc_folder / "runs/api-demo/final/README.md").read_text()
    assert "| synth-vqa-rad |" in card and "noise" in card  # the evaluation into RUN/eval joined the card
    assert "no such model directory" in printed


def test_the_documented_one_liner_runs(doc_folder):
    [line] = [line for code in blocks("bash") for line in code.splitlines() if line.startswith("python -c")]
    command = shlex.quote(sys.executable) + line.removeprefix("python")
    done = subprocess.run(command, shell=True, cwd=doc_folder, capture_output=True, text=True, env=python_env(),  # noqa: S602
                          timeout=SUBPROCESS_HANG_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "The square is red."


def test_ask_one_many_and_from_paths(model, squares, tmp_path):
    colours = list(squares.colours)
    images = [squares.image(colour) for colour in colours]
    one = [model.ask(image, squares.question) for image in images]
    assert one == [f"The square is {colour}." for colour in colours]
    assert model.ask(images, [squares.question] * len(images), batch_size=2) == one
    squares.image("blue").save(tmp_path / "blue.png")
    assert model.ask(tmp_path / "blue.png", squares.question) == "The square is blue."
    assert model.ask(str(tmp_path / "blue.png"), f"<image>\n{squares.question}") == "The square is blue."
    assert isinstance(model.ask(None, "Hello", max_new_tokens=3), str)


def test_chat_keeps_the_turns(model, squares):
    chat = model.chat(squares.image("green"), max_new_tokens=16)
    pieces: list[str] = []
    assert chat.ask(squares.question, on_text=pieces.append) == "The square is green." == "".join(pieces)
    chat.ask("And now?")
    assert [turn.role for turn in chat.turns] == ["user", "assistant", "user", "assistant"]
    assert chat.turns[0].content.startswith("<image>") and not chat.turns[2].content.startswith("<image>")
    chat.reset()
    assert chat.turns == []


@pytest.mark.parametrize(("call", "message"), [
    (lambda m, img: m.ask(img, "q", temprature=1.0), "sampling option 'temprature': unknown; expected one of"),
    (lambda m, img: m.ask(img, "q", top_p=2.0), "sampling option top_p: top_p is 2.0"),
    (lambda m, img: m.ask([img, img], ["q"]), "ask: 2 images for 1 questions"),
    (lambda m, img: m.ask(img, ["q", "r"]), "ask: with a list of questions, pass a list of images"),
    (lambda m, img: m.ask(42, "q"), "image: a int; expected a PIL image, a path to one, or None"),
    (lambda m, img: m.ask(img, 7), "question: a int; expected a string"),
    (lambda m, img: m.ask("/no/such.png", "q"), "cannot open image '/no/such.png'"),
])
def test_bad_input_is_one_line(model, squares, call, message):
    with pytest.raises(DataError) as caught:
        call(model, squares.image("red"))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_load_finds_run_folders_and_names_what_is_wrong(trained_tiny_model, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_tiny_model, run / "final")
    assert medzoo.load(run, device="cpu").directory == run / "final"
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "medzoo_run.json").write_text(json.dumps({"format": "medzoo-run"}))
    with pytest.raises(MedzooError, match="a run folder without a final model"):
        medzoo.load(tmp_path / "unfinished")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedzooError, match="not a medzoo model folder"):
        medzoo.load(tmp_path / "empty")
    with pytest.raises(MedzooError, match=r"llava-med-v1\.6: no such model directory.*did you mean"):
        medzoo.load("llava-med-v1.6")  # a registry lookup only: nothing is downloaded


def test_recipe_and_train_refuse_what_they_cannot_use():
    loaded = medzoo.recipe("tiny", "stages.alignment.max_steps=1")
    assert loaded.config.stages[0].max_steps == 1 and loaded.source.name == "tiny.yaml"
    with pytest.raises(MedzooError, match="overrides apply to a recipe name or path"):
        medzoo.train(loaded, "unused", overrides=["name=x"])
    with pytest.raises(MedzooError, match="recipe: a int; expected a recipe name"):
        medzoo.train(3, "unused")


def test_evaluate_and_score_agree(model, synthetic_data, tmp_path):
    root = synthetic_data(train=4, val=2, test=4)
    options = {"root": str(root), "max_new_tokens": 4}
    scratch = medzoo.evaluate(model, "synth-vqa-rad", options=options, echo=lambda *_: None)
    kept = medzoo.evaluate(model, "synth-vqa-rad", tmp_path / "eval", options=options, echo=lambda *_: None)
    assert scratch["closed_accuracy"] == kept["closed_accuracy"] and scratch["n"] == kept["n"] > 0
    result = medzoo.score("synth-vqa-rad", tmp_path / "eval" / "predictions.jsonl",
                          references=root / "vqa_rad" / "test.json")
    assert result["metrics"]["closed_accuracy"] == kept["closed_accuracy"] and result["missing_predictions"] == 0
