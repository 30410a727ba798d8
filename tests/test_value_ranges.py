"""Values that make no sense are refused up front: one line naming the recipe file, the key, the value and the
allowed range (recipe stages), or click's usage error (integer CLI options)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from medzoo.app.cli.main import cli, main
from medzoo.core.errors import RecipeError
from medzoo.core.recipes.loading import load_recipe
from medzoo.core.resources import recipes_dir

# (override of the tiny recipe's first stage, key in the message, value as shown, allowed range as shown)
BAD = [
    ("optimizer.lr=-1", "optimizer.lr", "-1.0", "a number > 0"),
    ("optimizer.lr=0", "optimizer.lr", "0.0", "a number > 0"),
    ("optimizer.lr=inf", "optimizer.lr", "inf", "a number > 0"),
    ("optimizer.lr=nan", "optimizer.lr", "nan", "a number > 0"),
    ("optimizer.weight_decay=-0.1", "optimizer.weight_decay", "-0.1", "a number >= 0"),
    ("optimizer.betas=[0.9]", "optimizer.betas", "[0.9]", "two numbers, each in [0, 1)"),
    ("optimizer.betas=[0.9,0.99,0.999]", "optimizer.betas", "[0.9, 0.99, 0.999]", "two numbers, each in [0, 1)"),
    ("optimizer.betas=[]", "optimizer.betas", "[]", "two numbers, each in [0, 1)"),
    ("optimizer.betas=[0.9,1.0]", "optimizer.betas", "[0.9, 1.0]", "two numbers, each in [0, 1)"),
    ("optimizer.betas=[-0.1,0.999]", "optimizer.betas", "[-0.1, 0.999]", "two numbers, each in [0, 1)"),
    ("schedule.warmup_ratio=-0.01", "schedule.warmup_ratio", "-0.01", "a number in [0, 1]"),
    ("schedule.warmup_ratio=1.5", "schedule.warmup_ratio", "1.5", "a number in [0, 1]"),
    ("epochs=0", "epochs", "0.0", "a number > 0"),
    ("epochs=-1", "epochs", "-1.0", "a number > 0"),
    ("max_steps=-3", "max_steps", "-3", "an integer >= 1, or null / 0 (no step limit: epochs decide)"),
    ("micro_batch_size=0", "micro_batch_size", "0", "an integer >= 1"),
    ("micro_batch_size=-2", "micro_batch_size", "-2", "an integer >= 1"),
    ("global_batch_size=0", "global_batch_size", "0", "an integer >= 1"),
    ("max_length=0", "max_length", "0", "an integer >= 1"),
    ("seed=-1", "seed", "-1", "an integer >= 0"),
    ("save_every_steps=-5", "save_every_steps", "-5", "an integer >= 1, or null / 0"),
    ("max_grad_norm=-1", "max_grad_norm", "-1.0", "a number >= 0 (0: no clipping)"),
    ("max_grad_norm=inf", "max_grad_norm", "inf", "a number >= 0"),
    ("datasets.0.limit=-1", "datasets[0].limit", "-1", "an integer >= 1, or null / 0 (all records)"),
    ("datasets.0.weight=-0.5", "datasets[0].weight", "-0.5", "a number >= 0"),
]


@pytest.mark.parametrize(("override", "key", "shown", "expected"), BAD, ids=[case[0] for case in BAD])
def test_out_of_range_value_is_a_one_line_error(override, key, shown, expected):
    with pytest.raises(RecipeError) as raised:
        load_recipe("tiny", [f"stages.0.{override}"])
    message = str(raised.value)
    assert "\n" not in message
    tiny = re.escape(str(recipes_dir() / "tiny.yaml"))
    assert re.fullmatch(
        rf"{tiny}: stages\.alignment\.{re.escape(key)}: {re.escape(shown)} is out of range; expected .*", message
    ), message
    assert expected in message, message


@pytest.mark.parametrize("override", [
    "max_steps=null", "max_steps=0", "max_steps=1", "save_every_steps=0", "save_every_steps=null",
    "max_grad_norm=0", "schedule.warmup_ratio=0", "schedule.warmup_ratio=1", "epochs=0.5", "seed=0",
    "datasets.0.limit=0", "datasets.0.limit=null", "datasets.0.weight=0", "optimizer.betas=[0,0.5]",
    "optimizer.betas=null", "optimizer.weight_decay=0", "optimizer.lr=1e30",
])
def test_edge_values_that_mean_something_still_load(override):
    load_recipe("tiny", [f"stages.0.{override}"])


@pytest.mark.parametrize("name", sorted(p.stem for p in recipes_dir().glob("*.yaml")))
def test_shipped_recipes_still_load(name):
    load_recipe(name, [])


def test_range_error_on_the_command_line_names_the_file(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("defaults: [tiny]\nname: bad\nstages:\n  - name: instruct\n    optimizer: {lr: -1.0}\n")
    with pytest.raises(SystemExit) as exited:
        main(["recipe", "validate", str(path)])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {path}: stages.instruct.optimizer.lr: -1.0 is out of range; expected a number > 0"
    ]


@pytest.mark.parametrize("command", [
    ["eval", "some-model", "-b", "vqa-rad", "-d", "out"],
    ["run", "tiny"],
])
@pytest.mark.parametrize("value", ["0", "-4"])
def test_batch_size_must_be_positive(tmp_path, monkeypatch, command, value):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [*command, "--batch-size", value])
    assert result.exit_code == 2, result.output
    assert "--batch-size" in result.output and "x>=1" in result.output, result.output
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "MODEL", "--port", "-1"],
        ["serve", "MODEL", "--max-batch-size", "0"],
        ["serve", "MODEL", "--max-pending", "0"],
        ["serve", "MODEL", "--max-tokens-cap", "0"],
        ["serve", "MODEL", "--max-image-pixels", "0"],
        ["serve", "MODEL", "--max-prompt-chars", "0"],
        ["serve", "MODEL", "--threads", "0"],
        ["chat", "MODEL", "--max-new-tokens", "0"],
        ["speed", "--full-layers", "0"],
    ],
    ids=lambda args: f"{args[0]} {args[-2]}",
)
def test_cli_refuses_integer_options_out_of_range(args, tmp_path):
    from click.testing import CliRunner

    from medzoo.app.cli.main import cli

    (tmp_path / "model").mkdir()
    args = [str(tmp_path / "model") if a == "MODEL" else a for a in args]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "is not in the range" in result.output or "Invalid value" in result.output


# ---------------------------------------------------------------- ColonINST boxes as training targets

BOXES = {
    "usable": ("{<2><3><30><40>}", None),
    "inverted x": ("{<30><3><2><40>}", "inverted box (x1 > x2 or y1 > y2)"),
    "inverted y": ("{<2><40><30><3>}", "inverted box (x1 > x2 or y1 > y2)"),
    "negative": ("{<-2><3><30><40>}", "without a four-number box"),  # a minus sign is not a box number
    "beyond width": ("{<2><3><64><40>}", "box outside the image (64, 40 beyond 64x48)"),
    "beyond height": ("{<2><3><30><48>}", "box outside the image (30, 48 beyond 64x48)"),
}


@pytest.mark.parametrize(("task", "where"), [("rec", "answer"), ("reg", "question")])
@pytest.mark.parametrize(("box", "reason"), BOXES.values(), ids=BOXES.keys())
def test_coloninst_training_boxes_are_checked_against_the_image(tmp_path, task, where, box, reason):
    import json

    from PIL import Image

    from medzoo.core.errors import DataError
    from medzoo.plugins.datasets.colon_inst import ColonInstReader

    Image.new("RGB", (64, 48), "red").save(tmp_path / "frame.png")
    question, answer = ("Where is the polyp?", box) if where == "answer" else (f"What is in {box}?", "a polyp")
    record = {"id": "frame.png", "image": "frame.png", "conversations": [
        {"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]}
    path = tmp_path / f"{task}_train.json"
    path.write_text(json.dumps([record]))
    records, report = ColonInstReader().read(str(path), image_root=str(tmp_path))
    if reason is None:
        assert len(records) == 1 and report.total_skipped == 0
        return
    if reason == "without a four-number box":
        reason = "REC answer without a four-number box" if task == "rec" else "REG question without a four-number box"
    assert records == [] and report.skipped == {reason: 1}
    with pytest.raises(DataError, match=re.escape(reason)):
        ColonInstReader().read(str(path), image_root=str(tmp_path), on_bad_record="error")
