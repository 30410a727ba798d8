"""``medzoo eval`` (answer format, metrics, resume, image ablation), ``medzoo run`` (data -> curriculum ->
benchmarks -> leaderboard) and ``medzoo sweep`` (one trained and evaluated run per grid combination), on a
small synthetic set and the tiny recipe cut to a few steps. The commands run in this process (the error-line test
starts the console script); the barely trained model never says its end token, so open answers are cut at 8 new
tokens instead of LLaVA-Med's 1024, which would dominate the time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.hang_guard import SUBPROCESS_HANG_S
from support.in_process import medzoo_here

SMALL_DATA = ["-o", "data.synth_options={sizes: {train: 40, val: 5, test: 10}}"]
FEW_STEPS = [
    "-o", "stages.alignment.max_steps=2", "-o", "stages.instruct.max_steps=2",
    "-o", "stages.alignment.global_batch_size=4", "-o", "stages.alignment.micro_batch_size=4",
    "-o", "stages.instruct.global_batch_size=4", "-o", "stages.instruct.micro_batch_size=4",
    "-o", "benchmarks=[{name: synth-vqa-rad, options: {root: '${data.root}', max_new_tokens: 8}}, "
          "{name: synth-coloninst-cls, options: {root: '${data.root}'}}]",
]
ANSWER_KEYS = {"question_id", "prompt", "text", "answer_id", "model_id", "metadata"}


def medzoo(*args: str) -> subprocess.CompletedProcess:
    """The console script in a process of its own (the one-line error's test: what the user's terminal shows)."""
    return subprocess.run([sys.executable, "-m", "medzoo.app.cli", *args], capture_output=True, text=True,
                          timeout=SUBPROCESS_HANG_S)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (result.stdout[-1500:], result.stderr[-3000:])
    return result


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    """A `medzoo run` of the tiny recipe on a small synthetic set: (run dir, data root)."""
    base = tmp_path_factory.mktemp("pipeline")
    data, run_dir = base / "data", base / "run"
    result = ok(medzoo_here("run", "tiny", "--output-dir", str(run_dir), "-o", f"data.root={data}",
                            *SMALL_DATA, *FEW_STEPS))
    assert "synthesising the built-in data set" in result.stdout
    return run_dir, data


def read_answers(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_run_trains_every_stage_evaluates_every_benchmark_and_writes_the_leaderboard(finished_run):
    run_dir, data = finished_run
    assert (data / "manifest.json").is_file()
    assert [s["stage"] for s in json.loads((run_dir / "run.json").read_text())["stages"]] == ["alignment", "instruct"]
    for benchmark in ("synth-vqa-rad", "synth-coloninst-cls"):
        metrics = json.loads((run_dir / "eval" / benchmark / "metrics.json").read_text())
        assert metrics["benchmark"] == benchmark and metrics["n"] > 0
        assert metrics["image_ablation"]["kind"] == "noise"
        assert (run_dir / "eval" / benchmark / "predictions.noise.jsonl").is_file()
    leaderboard = (run_dir / "leaderboard.md").read_text()
    header, rule, row = leaderboard.splitlines()[:3]
    assert "synth-vqa-rad closed_accuracy" in header and "synth-coloninst-cls (unseen) accuracy" in header
    assert row.startswith("| tiny |") and set(rule) <= set("|-:")
    assert "image ablation (noise)" in leaderboard


def test_run_again_resumes_without_training_or_answering_twice(finished_run):
    run_dir, data = finished_run
    before = (run_dir / "eval" / "synth-vqa-rad" / "predictions.jsonl").read_text()
    result = ok(medzoo_here("run", "tiny", "--output-dir", str(run_dir), "-o", f"data.root={data}",
                            *SMALL_DATA, *FEW_STEPS))
    assert "already complete" in result.stdout
    assert "to go" in result.stdout and (run_dir / "eval" / "synth-vqa-rad" / "predictions.jsonl").read_text() == before


def test_eval_writes_llava_med_answers_and_resumes_from_a_partial_file(finished_run, tmp_path):
    run_dir, data = finished_run
    out = tmp_path / "eval"
    args = ["eval", str(run_dir / "final"), "--benchmark", "synth-vqa-rad", "--option", f"root={data}",
            "--option", "max_new_tokens=8", "--output-dir", str(out), "--batch-size", "4"]
    stdout = ok(medzoo_here(*args)).stdout
    first = json.loads(stdout[stdout.index("{"):])
    answers = read_answers(out / "predictions.jsonl")
    assert len(answers) == first["n"] == len({a["question_id"] for a in answers})
    assert all(set(a) == ANSWER_KEYS for a in answers)
    assert {a["metadata"]["answer_type"] for a in answers} <= {"open", "closed"}
    assert all("<image>" in a["prompt"] for a in answers)

    kept = answers[:5]
    (out / "predictions.jsonl").write_text("".join(json.dumps(a) + "\n" for a in kept))
    result = ok(medzoo_here(*args))
    assert f"5 answers found in {out / 'predictions.jsonl'}, {len(answers) - 5} to go" in result.stdout
    resumed = read_answers(out / "predictions.jsonl")
    assert [a["answer_id"] for a in resumed[:5]] == [a["answer_id"] for a in kept]
    assert sorted(a["question_id"] for a in resumed) == sorted(a["question_id"] for a in answers)
    # greedy decoding: the re-asked questions get the same answers, so the scores are the same
    again = json.loads((out / "metrics.json").read_text())
    assert again["closed_accuracy"] == pytest.approx(first["closed_accuracy"])


def test_eval_image_ablation_scores_blank_images_and_reports_the_drop(finished_run, tmp_path):
    run_dir, data = finished_run
    out = tmp_path / "blank"
    ok(medzoo_here("eval", str(run_dir / "final"), "--benchmark", "synth-coloninst-cls", "--option", f"root={data}",
                   "--output-dir", str(out), "--image-ablation", "blank"))
    metrics = json.loads((out / "metrics.json").read_text())
    ablation = metrics["image_ablation"]
    assert ablation["kind"] == "blank"
    assert ablation["drop"]["accuracy"] == pytest.approx(metrics["accuracy"] - ablation["metrics"]["accuracy"],
                                                         abs=0.01)
    blank = read_answers(out / "predictions.blank.jsonl")
    assert len(blank) == metrics["n"] and all(a["metadata"]["image_ablation"] == "blank" for a in blank)


def test_eval_unknown_benchmark_is_a_one_line_error(finished_run, tmp_path):
    run_dir, _ = finished_run
    result = medzoo("eval", str(run_dir / "final"), "--benchmark", "synth-vqa-rod", "--output-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "synth-vqa-rad" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: unknown benchmark 'synth-vqa-rod'")


def test_sweep_trains_and_evaluates_each_combination_then_ranks_them(finished_run, tmp_path):
    _, data = finished_run
    out = tmp_path / "sweep"
    result = ok(medzoo_here("sweep", "tiny", "-g", "curriculum.name=llava-med,instruct-only", "--output-dir",
                            str(out), "-o", f"data.root={data}", *SMALL_DATA, *FEW_STEPS))
    with_alignment = json.loads((out / "name=llava-med" / "run.json").read_text())
    without = json.loads((out / "name=instruct-only" / "run.json").read_text())
    assert [s["stage"] for s in with_alignment["stages"]] == ["alignment", "instruct"]
    assert [s["stage"] for s in without["stages"]] == ["instruct"]
    rows = [line for line in (out / "leaderboard.md").read_text().splitlines() if line.startswith("| tiny[")]
    assert sorted(row.split("|")[1].strip() for row in rows) == ["tiny[name=instruct-only]", "tiny[name=llava-med]"]
    assert "tiny[name=instruct-only]" in result.stdout
