"""Bad recipes: every mistake is one line naming the file, the key path and what was expected, with exit code 2
and no traceback from the command line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.hang_guard import SUBPROCESS_HANG_S

from medzoo.app.cli.main import main
from medzoo.core.errors import RecipeError
from medzoo.core.recipes.loading import load_recipe

BASE = "defaults: [tiny]\nname: bad\n"

# (id, recipe text, overrides, message after "<file>: ")
CASES = [
    ("unknown-plugin", BASE + "model:\n  vision:\n    name: clp\n", [],
     r"model\.vision\.name: unknown vision_encoder 'clp' \(did you mean \"clip\"\?\); known: biomedclip, clip"),
    ("unknown-connector-family-member", BASE + "model:\n  connector:\n    name: mlp2x_relu\n", [],
     r"model\.connector\.name: unknown connector 'mlp2x_relu' \(did you mean \"mlpnx_gelu\"\?\); known: "),
    ("unknown-key-in-a-stage", BASE + "stages:\n  - name: instruct\n    optimzer: {lr: 1.0e-5}\n", [],
     r"stages\.instruct\.optimzer: unknown key \(did you mean \"optimizer\"\?\); expected one of .*\boptimizer\b"),
    ("unknown-top-level-key", BASE + "benchmark: []\n", [],
     r"benchmark: unknown key \(did you mean \"benchmarks\"\?\); expected one of benchmarks, citation, "),
    ("wrong-type", BASE + "stages:\n  - name: instruct\n    epochs: three\n", [],
     r"stages\.instruct\.epochs: expected a number, got 'three' \(str\)"),
    ("wrong-container-type", BASE + "stages: {name: instruct}\n", [],
     r"stages: expected a list of mappings of \{.*\bdatasets\b.*\}, got a dict"),
    ("missing-required-field",
     "name: bad\nmodel:\n  vision: {name: clip}\n  connector: {name: linear}\n  language: {name: mistral}\n", [],
     r"model\.language\.template: missing; expected a string: a template plugin name, e\.g\. mistral_instruct"),
    ("missing-stage-name", BASE + "stages:\n  - {role: custom}\n", [],
     r"stages\[2\]\.name: missing; expected a string: the stage's name"),
    ("bad-stage-in-override", BASE, ["stages.instruc.optimizer.lr=1e-5"],
     r"override stages\.instruc\.optimizer\.lr: no stage named 'instruc' \(did you mean \"instruct\"\?\); "
     r"stages: \['alignment', 'instruct'\]"),
    ("unknown-key-in-override", BASE, ["stages.instruct.optimizer.lrr=1e-5"],
     r"stages\.instruct\.optimizer\.lrr: unknown key \(did you mean \"lr\"\?\); expected one of betas, fused, lr, "),
    ("wrong-type-in-override", BASE, ["shrink=maybe"], r"shrink: expected true or false, got 'maybe' \(str\)"),
    ("override-into-a-number", BASE, ["stages.instruct.epochs.x=1"],
     r"override stages\.instruct\.epochs\.x: stages\.instruct\.epochs is \d+, not a mapping"),
    ("override-without-value", BASE, ["stages.instruct.optimizer.lr"],
     r"override 'stages\.instruct\.optimizer\.lr': expected key=value"),
    ("bad-init-from", BASE + "stages:\n  - name: instruct\n    init_from: alignmnt\n", [],
     r"stages\.instruct\.init_from: 'alignmnt' is not an earlier stage \(did you mean \"alignment\"\?\); "
     r"expected one of \['alignment'\]"),
    ("bad-precision", BASE + "stages:\n  - name: instruct\n    precision: bf32\n", [],
     r"stages\.instruct\.precision: 'bf32' is not allowed \(did you mean \"fp32\"\?\); expected one of fp32, bf16, fp16"),
    ("bad-dtype", BASE + "model:\n  dtype: bf16\n", [],
     r"model\.dtype: 'bf16' is not allowed \(did you mean \"bfloat16\"\?\); expected one of float32, bfloat16, float16"),
    ("bad-dataset-name",
     BASE + "stages:\n  - name: alignment\n    datasets:\n      - {name: pmc-caption, path: x.jsonl}\n", [],
     r"stages\.alignment\.datasets\[0\]\.name: unknown dataset 'pmc-caption' \(did you mean \"pmc-captions\"\?\); "
     r"known: colon-inst, llava-json, llava-preference, med-vqa, pmc-captions, rlaif-v"),
    ("bad-template", BASE + "stages:\n  - name: alignment\n    template: plane\n", [],
     r"stages\.alignment\.template: unknown template 'plane' \(did you mean \"plain\"\?\)"),
    ("out-of-range", BASE + "stages:\n  - name: instruct\n    optimizer: {lr: -1.0}\n", [],
     r"stages\.instruct\.optimizer\.lr: -1\.0 is out of range; expected a number > 0$"),
    ("out-of-range-in-override", BASE, ["stages.instruct.optimizer.betas=[0.9]"],
     r"stages\.instruct\.optimizer\.betas: \[0\.9\] is out of range; expected null \(the optimizer's default\) "
     r"or two numbers, each in \[0, 1\)$"),
    ("bad-benchmark", BASE + "benchmarks:\n  - {name: vqarad}\n", [],
     r"benchmarks\[0\]\.name: unknown benchmark 'vqarad' \(did you mean \"vqa-rad\"\?\)"),
    ("bad-interpolation", BASE + "data:\n  root: ${data.rot}\n", [],
     r"data\.root: \$\{data\.rot\} refers to no key \(did you mean \"data\.root\"\?\)"),
    ("unknown-base", "defaults: [tinny]\nname: bad\n", [],
     r"defaults: tinny: no such recipe file or built-in recipe \(did you mean \"tiny\"\?\); known: .*\btiny\b"),
    ("yaml-syntax-error", "name: bad\nmodel: [unclosed\n", [],
     r"\(line 3, column 1\): YAML syntax error: expected ',' or '\]'"),
    ("not-a-mapping", "- name: bad\n", [], r"expected a mapping of recipe keys at the top level, got list"),
]


def run_cli(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    return exited.value.code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, path: Path, pattern: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert re.match(rf"error: {re.escape(str(path))}(: | \()", err), err
    assert re.search(pattern, err), err


@pytest.mark.parametrize(("text", "overrides", "pattern"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_bad_recipe_is_a_one_line_error_naming_file_key_and_expectation(capsys, tmp_path, text, overrides, pattern):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    arguments = [argument for override in overrides for argument in ("-o", override)]
    code, err = run_cli(capsys, "recipe", "validate", str(path), *arguments)
    assert_one_line_error(code, err, path, pattern)


def test_inheritance_cycle(capsys, tmp_path):
    (tmp_path / "a.yaml").write_text("defaults: [b.yaml]\nname: a\n")
    (tmp_path / "b.yaml").write_text("defaults: [a.yaml]\nname: b\n")
    code, err = run_cli(capsys, "recipe", "show", str(tmp_path / "a.yaml"))
    assert_one_line_error(code, err, tmp_path / "a.yaml",
                          rf"defaults: inheritance cycle {re.escape(str(tmp_path))}/a\.yaml -> .*/b\.yaml -> .*/a\.yaml")


def test_error_in_a_base_recipe_names_the_base_file(capsys, tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nmodel: {vision: [1\n")
    (tmp_path / "child.yaml").write_text("defaults: [base.yaml]\nname: child\n")
    code, err = run_cli(capsys, "recipe", "validate", str(tmp_path / "child.yaml"))
    assert_one_line_error(code, err, tmp_path / "base.yaml", r"YAML syntax error")


def test_unreadable_file(capsys, tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00name")
    code, err = run_cli(capsys, "recipe", "validate", str(path))
    assert_one_line_error(code, err, path, r"line 1: byte 0xff \(byte offset 0\) is not UTF-8; expected a YAML recipe in UTF-8")


def test_missing_file(capsys, tmp_path):
    path = tmp_path / "nowhere.yaml"
    code, err = run_cli(capsys, "recipe", "validate", str(path))
    assert_one_line_error(code, err, path, r"no such recipe file or built-in recipe; known: .*llava-med-v1\.5")


def test_missing_data_file_with_check_data(capsys, tmp_path):
    code, err = run_cli(capsys, "recipe", "validate", "llava-med-v1.5", "--check-data", "-o", f"data.root={tmp_path}")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert re.match(r"error: .*llava-med-v1\.5\.yaml: stages\[0\]\.datasets\[0\]\.path: "
                    rf"{re.escape(str(tmp_path))}/alignment/llava_med_alignment_500k\.json: no such file", err), err


def test_train_stops_at_a_bad_recipe_before_training(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE + "stages:\n  - name: instruct\n    precision: bf32\n")
    code, err = run_cli(capsys, "train", str(path), "--output-dir", str(tmp_path / "run"))
    assert_one_line_error(code, err, path, r"stages\.instruct\.precision: 'bf32' is not allowed")
    assert not (tmp_path / "run").exists()


def test_console_entry_point_prints_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE + "stages:\n  - name: instruct\n    optimzer: {lr: 1.0e-5}\n")
    result = subprocess.run([sys.executable, "-m", "medzoo.app.cli", "recipe", "validate", str(path)],
                            capture_output=True, text=True, timeout=SUBPROCESS_HANG_S)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: stages.instruct.optimzer: unknown key (did you mean \"optimizer\"?); expected one of "
        + ", ".join(sorted(_stage_keys()))
    ]


def _stage_keys() -> list[str]:
    import dataclasses

    from medzoo.core.recipes.schema import StageConfig

    return [field.name for field in dataclasses.fields(StageConfig)]


def test_valid_overrides_address_stages_by_name():
    config = load_recipe("llava-med-v1.5", ["stages.instruct.optimizer.lr=1e-5", "stages.alignment.epochs=2",
                                            "data.root=/data/llava-med"]).config
    assert config.stages[1].optimizer.lr == pytest.approx(1e-5) and config.stages[0].epochs == 2
    assert config.stages[0].datasets[0].path == "/data/llava-med/alignment/llava_med_alignment_500k.json"


def test_load_recipe_raises_recipe_error():
    with pytest.raises(RecipeError, match=r"stages\.instruct\.seed: expected an integer, got 'x' \(str\)$"):
        load_recipe("tiny", ["stages.instruct.seed=x"])
