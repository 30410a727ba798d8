"""Fault injection (issue 29 item 1): every writer on a disk that fills, through the CLI as a user runs it.

The disk fills at a known write (``support.full_disk``) and fails as a real one does: safetensors raises its own
``SafetensorError ... (os error 28)``, Python's files ``OSError(ENOSPC)``, TensorBoard's writer thread an OSError
the main thread sees later. Each case checks the one ``error:`` line (exit 74, no traceback, naming the folder and
the bytes the write needed), that every file on the disk when it filled is byte-identical afterwards, that no
partial file is left behind, and, for training, that the last checkpoint loads and ``--resume`` finishes the run
once space is freed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import fake_openai
from support.full_disk import FullDisk, snapshot

from medzoo.app.cli.main import main
from medzoo.core.file_io.storage import STORAGE_EXIT_CODE, size_text

STEPS = ["stages.alignment.max_steps=2", "stages.instruct.max_steps=3", "stages.instruct.save_every_steps=1"]
BATCH = [f"stages.{stage}.{key}=4" for stage in ("alignment", "instruct")
         for key in ("global_batch_size", "micro_batch_size")]  # fmt: skip


def storage_line(capsys, *args: object) -> str:
    """Run the CLI in-process: exit 74 with exactly one ``error:`` line and no traceback (a thread's included)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main([str(arg) for arg in args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert exited.value.code == STORAGE_EXIT_CODE, err
    assert len(lines) == 1 and "Traceback" not in err and "Exception in thread" not in err, err
    return lines[0]


def leftovers(root: Path) -> list[Path]:
    """Partial files or staging folders a failed write left behind."""
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith((".step-", ".final."))]


def unchanged_since_full(disk: FullDisk, root: Path) -> None:
    """Every file on the disk when it filled is still there, byte for byte (but the staging folder the failed write
    was building, which goes: :func:`leftovers` checks that)."""
    after = snapshot(root)
    assert disk.before, "the disk never filled"
    staged = [name for name in disk.before if any(part.startswith((".step-", ".final.")) for part in Path(name).parts)]
    changed = {name for name, digest in disk.before.items() if after.get(name) != digest and name not in staged}
    assert not changed, changed


@pytest.fixture
def full_disk():
    """``FullDisk(root, ...)`` whose disk is freed at the end of the test whatever happens."""
    disks: list[FullDisk] = []

    def make(*args, **kwargs) -> FullDisk:
        disks.append(FullDisk(*args, **kwargs))
        return disks[-1]

    yield make
    for disk in disks:
        disk.free()


@pytest.fixture(scope="module")
def training_data(synthetic_data):
    return synthetic_data(train=16, val=2, test=4)


def train_args(run: Path, data_root: Path) -> list[str]:
    return ["train", "tiny", "-d", str(run), *(f"-o{o}" for o in [f"data.root={data_root}", *STEPS, *BATCH])]


@pytest.mark.parametrize("written", ["trainable.safetensors", "state.pt"])  # safetensors' error form, then torch's
def test_a_full_disk_at_a_checkpoint_keeps_the_last_one_which_loads_and_resumes(training_data, tmp_path, capsys,
                                                                                 full_disk, single_thread, written):
    from safetensors.torch import load_file

    from medzoo.core.file_io.storage import tensor_bytes
    from medzoo.core.training.checkpoint import latest_checkpoint, load_training_state

    run = tmp_path / "run"
    checkpoints = run / "02-instruct" / "checkpoints"
    disk = full_disk(tmp_path, fills=lambda p: p.name == written
                    and p.parent.name == ".step-00000002" and p.parent.parent == checkpoints.resolve())
    with single_thread():
        line = storage_line(capsys, *train_args(run, training_data))
    previous = checkpoints / "step-00000001"
    # the same tensors, one step on: the bytes the failed write needed
    needed = tensor_bytes(load_file(previous / "trainable.safetensors") if written.endswith(".safetensors")
                          else load_training_state(previous / "state.pt"))
    assert line == (f"error: {checkpoints / 'step-00000002'}: no space left on the device (ENOSPC) while writing "
                    f"{written} ({size_text(needed)} needed); free some space (or point the output "
                    "elsewhere) and run the command again: finished files were written atomically and runs resume")
    unchanged_since_full(disk, tmp_path)
    assert leftovers(run) == [] and not (run / "final").exists()
    assert latest_checkpoint(checkpoints) == previous
    assert load_training_state(previous / "state.pt")["optimizer"]["state"]  # the previous checkpoint loads
    disk.free()
    with single_thread():
        main([*train_args(run, training_data), "--resume"])
    assert "step-00000001 (step 1/3)" in capsys.readouterr().out
    assert (run / "final" / "medzoo_model.json").is_file() and leftovers(run) == []


def in_staging_of(folder: Path):
    """The first write into the staging folder of ``folder`` (``.<name>.XXXX`` beside it) fills the disk."""
    return lambda p: p.is_relative_to(folder.parent.resolve()) and any(
        part.startswith(f".{folder.name}.") for part in p.relative_to(folder.parent.resolve()).parts)


@pytest.mark.parametrize("where", ["first file", "language weights"])  # medzoo's own writer, transformers'
def test_a_full_disk_at_the_final_model_keeps_the_stages_and_resumes(training_data, tmp_path, capsys, full_disk,
                                                                     single_thread, where):
    from safetensors.torch import load_file

    from medzoo.core.file_io.storage import tensor_bytes

    run = tmp_path / "run"
    staged = in_staging_of(run / "final")
    fills = staged if where == "first file" else (lambda p: staged(p) and p.parent.name == "language"
                                                  and p.name == "model.safetensors")
    disk = full_disk(tmp_path, fills=fills)
    with single_thread():
        line = storage_line(capsys, *train_args(run, training_data))
    assert line.startswith(f"error: {run / 'final'}") and "no space left on the device (ENOSPC) while writing" in line
    assert " needed); free some space" in line
    unchanged_since_full(disk, tmp_path)
    assert leftovers(run) == [] and not (run / "final").exists()
    assert (run / "02-instruct" / "DONE.json").is_file()
    disk.free()
    with single_thread():
        main([*train_args(run, training_data), "--resume"])
    assert (run / "final" / "medzoo_model.json").is_file()
    if where == "language weights":  # transformers' save_pretrained, named under the final folder with its bytes
        needed = tensor_bytes(load_file(run / "final" / "language" / "model.safetensors"))
        assert line.startswith(f"error: {run / 'final' / 'language'}: no space left on the device (ENOSPC) while "
                               f"writing model.safetensors ({size_text(needed)} needed)"), line


def nth_write(count: int, wanted) -> object:
    """True from the ``count``-th write of a file ``wanted`` accepts."""
    seen = {"n": 0}

    def fills(path: Path) -> bool:
        if wanted(path):
            seen["n"] += 1
        return seen["n"] >= count

    return fills


@pytest.mark.parametrize(("log", "wanted", "named"), [
    ("metrics.jsonl", lambda p: p.name == "metrics.jsonl" and p.parent.name == "01-alignment", "01-alignment"),
    ("tensorboard", lambda p: "tensorboard" in p.parts and p.name.startswith("events."), "logs/tensorboard"),
], ids=["metrics.jsonl", "tensorboard"])
def test_a_full_disk_while_logging_a_step_is_one_line(training_data, tmp_path, capsys, full_disk, single_thread,
                                                      log, wanted, named):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    stepped = run / "01-alignment" / "metrics.jsonl"  # the first step is logged: the log's disk fills after it
    disk = full_disk(tmp_path, fills=lambda p: wanted(p) and stepped.is_file(), only=wanted)
    with single_thread():
        line = storage_line(capsys, *train_args(run, training_data))
    assert f"{run}/" in line and named in line, line
    assert "no space left on the device (ENOSPC) while writing" in line
    if log == "metrics.jsonl":  # the record's bytes; TensorBoard's writer thread does not say what it was writing
        assert line.startswith(f"error: {run / '01-alignment'}: ") and "metrics.jsonl (" in line and " needed)" in line
    unchanged_since_full(disk, tmp_path)
    assert leftovers(run) == []
    disk.free()
    with single_thread():
        main([*train_args(run, training_data), "--resume"])
    assert (run / "final" / "medzoo_model.json").is_file()


@pytest.fixture(scope="module")
def eval_material(synthetic_data, trained_tiny_model):
    return trained_tiny_model, synthetic_data(train=4, val=2, test=8)


def test_a_full_disk_while_answering_keeps_the_answers_written_and_resumes(eval_material, tmp_path, capsys, full_disk,
                                                                          single_thread):
    model_dir, data_root = eval_material
    out = tmp_path / "eval"
    args = ["eval", model_dir, "--benchmark", "synth-vqa-rad", "--option", f"root={data_root}", "--option",
            "max_new_tokens=3", "--output-dir", out, "--batch-size", "2"]
    disk = full_disk(tmp_path, fills=nth_write(2, lambda p: p.name == "predictions.jsonl"))
    with single_thread():
        line = storage_line(capsys, *args)
    assert line.startswith(f"error: {out}: no space left on the device (ENOSPC) while writing predictions.jsonl (")
    unchanged_since_full(disk, tmp_path)
    disk.free()
    with single_thread():
        main([str(arg) for arg in args])
    assert "answers found" in capsys.readouterr().out and (out / "metrics.json").is_file()


def test_a_full_disk_while_exporting_leaves_no_partial_export(trained_tiny_model, tmp_path, capsys, full_disk):
    out = tmp_path / "hf"
    disk = full_disk(tmp_path, fills=lambda p: p.name == "model.safetensors")
    tmp_path.joinpath("earlier.txt").write_text("written before the export\n")
    line = storage_line(capsys, "export", trained_tiny_model, "--output", out)
    assert line.startswith(f"error: {out}: no space left on the device (ENOSPC) while writing model.safetensors (")
    assert " needed); free some space" in line
    unchanged_since_full(disk, tmp_path)
    assert not out.exists() and [p for p in tmp_path.iterdir() if p.name.startswith(".hf.")] == []


def test_a_full_disk_while_synthesising_data_names_the_file_and_bytes(tmp_path, capsys, full_disk):
    out = tmp_path / "data"
    main(["data", "synth", "--output", str(out), "--size", "train=4", "--size", "val=2", "--size", "test=2"])
    disk = full_disk(tmp_path, fills=lambda p: p.name.startswith(".test.json."))
    line = storage_line(capsys, "data", "synth", "--output", out, "--size", "train=4", "--size", "val=2",
                        "--size", "test=2", "--overwrite")
    assert "no space left on the device (ENOSPC) while writing test.json (" in line and " needed);" in line
    unchanged_since_full(disk, tmp_path)
    assert [p for p in out.rglob("*.tmp")] == []


def test_a_full_disk_while_generating_instructions_leaves_the_output(tmp_path, capsys, full_disk):
    captions = tmp_path / "captions.jsonl"
    captions.write_text("".join(json.dumps({
        "pair_id": f"PMC{i}_F1", "image": f"cxr/train_{i:06d}.png", "fig_label": "Figure 1",
        "fig_caption": f"Chest radiograph {i} with an opacity.", "in_text_mention": [], "domain": "cxr"}) + "\n"
        for i in range(2)))
    output = tmp_path / "out" / "instruct.json"

    def reply(_: dict) -> str:
        return "User: What does the image show?\nAssistant: An opacity.\nUser: Where?\nAssistant: The left lung."

    disk = full_disk(tmp_path, fills=lambda p: p.name.startswith(".instruct.json."))
    with fake_openai.FakeOpenAI(reply, max_requests=2) as server:
        line = storage_line(capsys, "instruct", "generate", "--captions", captions, "--output", output, "--backend",
                            "openai", "--model", "fake", "--base-url", server.base_url, "--api-key", "k",
                            "--max-attempts", "1", "--backoff", "0", "--cache-dir", tmp_path / "cache")
    assert line.startswith(f"error: {output.parent}: no space left on the device (ENOSPC) while writing "
                           "instruct.json (")
    unchanged_since_full(disk, tmp_path)
    assert not output.exists()


def test_tensorboards_writer_thread_prints_no_traceback_for_a_full_disk(tmp_path, monkeypatch, full_disk):
    """The event thread's failure reaches the main thread at the next flush; the thread itself stays silent."""
    import threading

    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    printed: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda arguments: printed.append(arguments.exc_value))
    main(["--version"])  # the CLI installs its thread hook before any command runs
    writer = SummaryWriter(str(tmp_path / "tb"))
    writer.add_scalar("loss", 1.0, 0)
    writer.flush()
    disk = full_disk(tmp_path, fills=lambda p: "tb" in p.parts)
    writer.add_scalar("loss", 0.5, 1)
    with pytest.raises(OSError) as raised:
        writer.flush()
    assert raised.value.errno == 28 and disk.failed and printed == []
    disk.free()
    worker = threading.Thread(target=lambda: 1 / 0)  # any other thread's failure is still printed
    worker.start()
    worker.join()
    assert [type(error) for error in printed] == [ZeroDivisionError]


def test_a_full_disk_while_preparing_a_data_set_names_the_file_and_resumes(tmp_path, capsys, full_disk):
    import threading

    from test_data_prepare import FAST, FileServer, vqa_server  # the published files, served locally

    files = FileServer()
    threading.Thread(target=files.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        out = tmp_path / "data"
        args = ["data", "prepare", "vqa-rad", *vqa_server(files), "--output", out, *FAST]
        disk = full_disk(tmp_path, fills=lambda p: p.name == "test.json" or p.name.startswith(".test.json."))
        line = storage_line(capsys, *args)
        assert line.startswith(f"error: {out / 'vqa_rad'}: no space left on the device (ENOSPC) while writing "
                               "test.json (")
        assert " needed); free some space" in line
        unchanged_since_full(disk, tmp_path)
        assert [p for p in out.rglob("*.tmp")] == [] and not (out / "vqa_rad" / "test.json").exists()
        disk.free()
        main([str(arg) for arg in args])
        assert "files fetched 0, reused 2" in capsys.readouterr().out  # the downloads finished before were kept
        assert (out / "vqa_rad" / "test.json").is_file()
    finally:
        files.shutdown()


@pytest.fixture
def tiny_file_system(tmp_path):
    """A real 1 MB tmpfs (root only; skipped where it cannot be mounted), unmounted afterwards."""
    import os
    import subprocess

    folder = tmp_path / "tiny-fs"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a 1 MB tmpfs")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_real_full_file_system_gives_the_same_line_for_every_writer(tiny_file_system):
    """No injection: the real libraries on a real full disk (safetensors' Rust 'os error 28', torch.save's
    swallowed OSError behind 'unexpected pos', Python's own write) become the same StorageError."""
    import torch

    from medzoo.core.atomic_writes import save_tensors, save_torch_object, write_atomically
    from medzoo.core.file_io.storage import StorageError

    tensors = {"weight": torch.zeros(600_000)}  # 2.4 MB on a 1 MB file system
    writers = {"w.safetensors": lambda path: save_tensors(tensors, path),
               "state.pt": lambda path: save_torch_object({"optimizer": tensors}, path),
               "big.json": lambda path: write_atomically(path, "x" * 2_400_000)}  # fmt: skip
    for name, write in writers.items():
        with pytest.raises(StorageError) as raised:
            write(tiny_file_system / name)
        assert str(raised.value) == (
            f"{tiny_file_system}: no space left on the device (ENOSPC) while writing {name} "
            f"({size_text(2_400_000)} needed); free some space (or point the output elsewhere) and run the command "
            "again: finished files were written atomically and runs resume"), name
        for leftover in tiny_file_system.iterdir():
            leftover.unlink()  # save_tensors and save_torch_object write in place (their callers stage a folder)
