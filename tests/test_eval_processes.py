"""Evaluation across processes: ``accelerate launch --num_processes 2 -m medzoo.app.cli eval ...`` (2 CPU
processes over gloo) shards the pending questions by position, each process appends to its own part file, the main
process merges them into the one ``predictions.jsonl`` and scores once; the answers and metrics are those of one
process, and a rerun after a crash reuses every answered question of every part."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support.hang_guard import SUBPROCESS_HANG_S

from medzoo.app.cli.main import main
from medzoo.core.evaluation.answer_parts import merge_parts, part_files, part_path
from medzoo.core.evaluation.processes import EvalProcesses
from medzoo.plugins.contenders.tiny_families import save_tiny_family

LAUNCHER = shutil.which("accelerate", path=os.path.dirname(sys.executable))
needs_launcher = pytest.mark.skipif(LAUNCHER is None, reason="accelerate launcher not installed")
OPTIONS = ["--option", "max_new_tokens=6", "--batch-size", "4"]


@pytest.fixture(scope="module")
def data_root(synthetic_data) -> Path:
    return synthetic_data(train=4, val=2, test=4)


@pytest.fixture(scope="module")
def medzoo_model(tmp_path_factory) -> Path:
    """A tiny random medzoo model, saved."""
    from medzoo.core.model.build import build_model
    from medzoo.testing import TINY_MODEL

    folder = tmp_path_factory.mktemp("medzoo-model") / "tiny"
    torch.manual_seed(0)
    build_model(TINY_MODEL).save_pretrained(str(folder))
    return folder


def eval_args(model: Path, data_root: Path, out: Path, *extra: object) -> list[str]:
    return [str(a) for a in ["eval", model, "--benchmark", "synth-vqa-rad", "--option", f"root={data_root}",
                             *OPTIONS, "--output-dir", out, *extra]]


def one_process(capsys, single_thread, *args: str) -> str:
    capsys.readouterr()
    with single_thread():
        main(list(args))
    return capsys.readouterr().out


def free_port() -> int:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_processes(*args: str) -> subprocess.CompletedProcess:
    command = [LAUNCHER, "launch", "--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_processes", "2", "--num_machines", "1", "--main_process_port", str(free_port()),
               "-m", "medzoo.app.cli", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=SUBPROCESS_HANG_S,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    return result


def answers(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def texts(path: Path) -> dict[str, str]:
    return {a["question_id"]: a["text"] for a in answers(path)}


def metrics_of(folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics.pop("seconds")
    return metrics


# ---------------------------------------------------------------- in one process


def test_the_shards_are_every_nth_pending_question_by_position():
    items = list(range(11))
    shards = [EvalProcesses(rank, 3).shard(items) for rank in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert EvalProcesses().shard(items) == items and not EvalProcesses().distributed


def test_merging_puts_part_answers_after_the_file_s_in_question_order_and_removes_the_parts(tmp_path):
    answers_file = tmp_path / "predictions.jsonl"
    line = lambda q: json.dumps({"question_id": q, "text": f"t{q}"}) + "\n"  # noqa: E731
    answers_file.write_text(line("c"))
    part_path(answers_file, 0).write_text(line("d") + line("a") + '{"question_id": "x", "te')  # a torn tail
    part_path(answers_file, 3).write_text(line("b") + line("c"))
    part_path(answers_file, 3).with_name("predictions.part-3.meta.json").write_text("{}")
    (tmp_path / "predictions.noise.part-0.jsonl").write_text(line("z"))  # another answer file's part
    assert [p.name for p in part_files(answers_file)] == ["predictions.part-0.jsonl", "predictions.part-3.jsonl"]
    notes: list[str] = []
    assert merge_parts(answers_file, {"a": 0, "b": 1, "c": 2, "d": 3}, notes.append) == 3
    assert [a["question_id"] for a in answers(answers_file)] == ["c", "a", "b", "d"]
    assert part_files(answers_file) == [] and not (tmp_path / "predictions.part-3.meta.json").exists()
    assert (tmp_path / "predictions.noise.part-0.jsonl").is_file()
    assert len(notes) == 1 and "torn last line" in notes[0]


# ---------------------------------------------------------------- two processes


@pytest.fixture(scope="module")
def single_run(medzoo_model, data_root, tmp_path_factory, single_thread) -> Path:
    out = tmp_path_factory.mktemp("single") / "eval"
    with single_thread():
        main(eval_args(medzoo_model, data_root, out, "--image-ablation", "noise"))
    return out


@needs_launcher
def test_two_processes_answer_as_one_merge_once_and_score_once(medzoo_model, data_root, single_run, tmp_path):
    out = tmp_path / "eval"
    result = two_processes(*eval_args(medzoo_model, data_root, out, "--image-ablation", "noise"))
    assert result.stdout.count('"benchmark": "synth-vqa-rad"') == 1, "the metrics are printed once"
    assert result.stdout.count("20 questions, none skipped") == 1
    for name in ("predictions.jsonl", "predictions.noise.jsonl"):
        assert texts(out / name) == texts(single_run / name)
        assert [a["question_id"] for a in answers(out / name)] == [a["question_id"] for a in answers(single_run / name)]
    assert metrics_of(out) == metrics_of(single_run)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in single_run.iterdir())


@needs_launcher
def test_a_rerun_after_a_crash_reuses_every_part_with_any_number_of_processes(data_root, tmp_path, capsys,
                                                                              single_thread):
    """A contender's evaluation that died with answers spread over the answer file and the parts of a 4-process
    run (one of them torn mid-line): 2 processes answer only the rest, the merge keeps every earlier answer."""
    folder = save_tiny_family("qwen2-vl", tmp_path / "tiny-qwen2-vl")
    reference = tmp_path / "reference"
    one_process(capsys, single_thread, *eval_args(folder, data_root, reference, "--contender", "hf-vlm"))
    done = answers(reference / "predictions.jsonl")
    out = tmp_path / "eval"
    out.mkdir()
    meta = (reference / "predictions.meta.json").read_text()
    spread = {out / "predictions.jsonl": done[:3], part_path(out / "predictions.jsonl", 0): done[3:7],
              part_path(out / "predictions.jsonl", 3): done[7:9]}
    for path, records in spread.items():
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        path.with_name(path.name.replace(".jsonl", ".meta.json")).write_text(meta)
    with part_path(out / "predictions.jsonl", 0).open("a") as handle:
        handle.write('{"question_id": "' + done[7]["question_id"] + '", "te')  # killed mid-append
    result = two_processes(*eval_args(folder, data_root, out, "--contender", "hf-vlm"))
    assert f"9 answers found in {out / 'predictions.jsonl'} and 2 part files, {len(done) - 9} to go" in result.stdout
    merged = answers(out / "predictions.jsonl")
    assert [a["answer_id"] for a in merged[:9]] == [a["answer_id"] for a in done[:9]]
    assert texts(out / "predictions.jsonl") == texts(reference / "predictions.jsonl")
    assert metrics_of(out) == metrics_of(reference)
    assert part_files(out / "predictions.jsonl") == []


def test_one_process_picks_up_the_parts_a_multi_process_run_left(medzoo_model, data_root, single_run, tmp_path,
                                                                  capsys, single_thread):
    out = tmp_path / "eval"
    out.mkdir()
    done = answers(single_run / "predictions.jsonl")
    meta = (single_run / "predictions.meta.json").read_text()
    for rank in (0, 1):
        part = part_path(out / "predictions.jsonl", rank)
        part.write_text("".join(json.dumps(r) + "\n" for r in done[rank:10:2]))
        part.with_name(f"predictions.part-{rank}.meta.json").write_text(meta)
    stdout = one_process(capsys, single_thread, *eval_args(medzoo_model, data_root, out))
    assert f"10 answers found in {out / 'predictions.jsonl'} and 2 part files, {len(done) - 10} to go" in stdout
    assert texts(out / "predictions.jsonl") == texts(single_run / "predictions.jsonl")
    assert {a["answer_id"] for a in done[:10]} <= {a["answer_id"] for a in answers(out / "predictions.jsonl")}
    assert part_files(out / "predictions.jsonl") == []


def test_fresh_removes_part_files_and_a_mismatched_part_is_refused(medzoo_model, data_root, single_run, tmp_path,
                                                                   capsys):
    from support.faults import cli_error

    out = tmp_path / "eval"
    out.mkdir()
    part = part_path(out / "predictions.jsonl", 1)
    part.write_text(json.dumps({"question_id": "21", "text": "x"}) + "\n")
    part.with_name("predictions.part-1.meta.json").write_text(json.dumps({"medzoo_answers": 1, "model_id": "other"}))
    message = cli_error(capsys, *eval_args(medzoo_model, data_root, out))
    assert message.startswith(f"error: {part}: its answers belong to another evaluation")
    capsys.readouterr()
    main(eval_args(medzoo_model, data_root, out, "--fresh"))
    assert "removed predictions.part-1.jsonl, predictions.part-1.meta.json" in capsys.readouterr().out
    assert part_files(out / "predictions.jsonl") == []
