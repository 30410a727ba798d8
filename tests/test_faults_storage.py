"""Fault injection (issue 15): a full disk, a quota, a read-only file system or a permission error is one line
naming the file and what to do (exit code 74, no traceback), nothing written before is damaged, no temporary file
is left behind, and the command picks up where it stopped once the storage is fixed."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from medzoo.app.cli.main import STORAGE_EXIT_CODE, main, storage_message

STORAGE_FAULTS = {
    "disk full": (errno.ENOSPC, "no space left on the device (ENOSPC); free some space"),
    "quota": (errno.EDQUOT, "disk quota exceeded (EDQUOT); free some space"),
    "read-only": (errno.EROFS, "the file system is read-only (EROFS); choose a location you may write to"),
    "permission": (errno.EACCES, "permission denied (EACCES); choose a location you may write to"),
    "not permitted": (errno.EPERM, "operation not permitted (EPERM); choose a location you may write to"),
}


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


SIZES = ("--size", "train=8", "--size", "val=2", "--size", "test=4")


def temporary_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or ".staging" in p.name]


class FailingFsync:
    """``os.fsync`` that fails with ``code`` from its ``after``-th call on (0: at once)."""

    def __init__(self, code: int, after: int = 0) -> None:
        self.code, self.after, self.calls, self.real = code, after, 0, os.fsync

    def __call__(self, descriptor: int) -> None:
        self.calls += 1
        if self.calls > self.after:
            raise OSError(self.code, os.strerror(self.code))
        self.real(descriptor)


def storage_error(capsys, *args: object) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main([str(arg) for arg in args])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert exited.value.code == STORAGE_EXIT_CODE, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(("code", "expected"), STORAGE_FAULTS.values(), ids=STORAGE_FAULTS.keys())
def test_storage_failures_read_as_one_line_with_the_way_out(code, expected):
    message = storage_message(OSError(code, os.strerror(code), "/data/run/final/model.safetensors"))
    assert message == f"/data/run/final/model.safetensors: {expected}" + message.split(expected)[1]
    assert "\n" not in message


def test_a_storage_failure_without_a_file_name_still_says_what_failed():
    message = storage_message(OSError(errno.ENOSPC, "No space left on device"))
    assert message.startswith("a file medzoo was writing: no space left on the device")


def test_other_os_errors_are_not_disguised():
    assert storage_message(OSError(errno.EIO, "Input/output error")) is None
    assert storage_message(FileNotFoundError(errno.ENOENT, "missing", "x")) is None


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["disk full", "read-only"])
def test_data_synth_on_a_failing_disk_leaves_no_partial_file(tmp_path, capsys, monkeypatch, code):
    from medzoo.core import atomic_writes

    out = tmp_path / "data"
    monkeypatch.setattr(atomic_writes.os, "fsync", FailingFsync(code, after=1))  # the incomplete manifest lands first
    line = storage_error(capsys, "data", "synth", "--output", out, "--size", "train=8", "--size", "val=2", "--size", "test=4")
    assert line.startswith(f"error: {out}") and os.strerror(code).lower().split()[0] in line.lower()
    assert temporary_files(out) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False  # an interrupted synthesis: redone by the next run
    monkeypatch.undo()
    main(["data", "synth", "--output", str(out), *SIZES, "--overwrite"])
    assert json.loads((out / "manifest.json").read_text())["complete"] is True


@pytest.fixture(scope="module")
def eval_material(synthetic_data, trained_tiny_model):
    return trained_tiny_model, synthetic_data(train=4, val=2, test=8)


def eval_args(model_dir: Path, data_root: Path, out: Path) -> list[str]:
    return ["eval", str(model_dir), "--benchmark", "synth-vqa-rad", "--option", f"root={data_root}",
            "--option", "max_new_tokens=3", "--output-dir", str(out), "--batch-size", "1"]  # fmt: skip


def test_eval_on_a_full_disk_keeps_the_answers_written_and_resumes(eval_material, tmp_path, capsys, monkeypatch,
                                                                   single_thread):
    from medzoo.core.evaluation import answer_file

    model_dir, data_root = eval_material
    out = tmp_path / "eval"
    failing = FailingFsync(errno.ENOSPC, after=1)  # the first chunk of answers is on disk, the second is not
    monkeypatch.setattr(answer_file.os, "fsync", failing)
    with single_thread():
        line = storage_error(capsys, *eval_args(model_dir, data_root, out))
    assert "no space left on the device" in line and not (out / "metrics.json").exists()
    kept = [json.loads(text) for text in (out / "predictions.jsonl").read_text().splitlines() if text.strip()]
    assert kept, "the answers of the first chunk were lost"
    monkeypatch.undo()
    with single_thread():
        main(eval_args(model_dir, data_root, out))
    assert f"{len(kept)} answers found" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    answered = [json.loads(text) for text in (out / "predictions.jsonl").read_text().splitlines()]
    assert metrics["n"] == len({record["question_id"] for record in answered}) == len(answered)
    assert temporary_files(out) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES], ids=["disk full", "permission"])
def test_metrics_that_cannot_be_written_leave_the_earlier_ones(eval_material, tmp_path, capsys, monkeypatch,
                                                                single_thread, code):
    from medzoo.core import atomic_writes

    model_dir, data_root = eval_material
    out = tmp_path / "eval"
    with single_thread():
        main(eval_args(model_dir, data_root, out))
    before = snapshot(out)
    monkeypatch.setattr(atomic_writes.os, "fsync", FailingFsync(code))
    with single_thread():
        line = storage_error(capsys, *eval_args(model_dir, data_root, out))
    assert line.startswith(f"error: {out}")
    assert snapshot(out) == before and temporary_files(out) == []


def test_training_on_a_full_disk_keeps_its_last_checkpoint_and_resumes(synthetic_data, tmp_path, capsys, monkeypatch,
                                                                        single_thread):
    from medzoo.core import atomic_writes

    data_root = synthetic_data(train=16, val=2, test=4)
    run = tmp_path / "run"
    overrides = [f"data.root={data_root}", "stages.alignment.max_steps=2", "stages.instruct.max_steps=3",
                 "stages.instruct.save_every_steps=1"]
    for stage in ("alignment", "instruct"):
        overrides += [f"stages.{stage}.global_batch_size=4", f"stages.{stage}.micro_batch_size=4"]
    args = ["train", "tiny", "-d", str(run), *(f"-o{o}" for o in overrides)]
    real = os.fsync
    calls = {"n": 0}

    def fail_in_the_instruct_stage(descriptor: int) -> None:
        calls["n"] += 1
        if (run / "02-instruct" / "checkpoints").is_dir() and any((run / "02-instruct" / "checkpoints").iterdir()):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(descriptor)

    monkeypatch.setattr(atomic_writes.os, "fsync", fail_in_the_instruct_stage)
    with single_thread():
        line = storage_error(capsys, *args)
    assert "no space left on the device" in line and not (run / "final").exists()
    assert (run / "01-alignment" / "DONE.json").is_file()
    monkeypatch.undo()
    with single_thread():
        main([*args, "--resume"])
    assert (run / "final" / "medzoo_model.json").is_file() and temporary_files(run) == []
