"""Fault injection (issue 15): medzoo never destroys or overwrites what it did not write, and refuses concurrent or
mismatched runs. Every case asserts a one-line error naming the file or folder and the expected way out, and that
the files that existed before (a fake "real" data set, a finished tiny run, a source checkpoint) are
byte-identical afterwards."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import fake_openai

from medzoo.app.cli.main import main
from medzoo.core.atomic_writes import NotOursError
from medzoo.core.errors import TrainingError

SMALL = {"train": 40, "val": 5, "test": 10}
TINY_RUN = [
    "data.synth_options={sizes: {train: 40, val: 5, test: 10}}",
    "stages.alignment.max_steps=2", "stages.instruct.max_steps=2",
    "stages.alignment.global_batch_size=4", "stages.alignment.micro_batch_size=4",
    "stages.instruct.global_batch_size=4", "stages.instruct.micro_batch_size=4",
]


def snapshot(root: Path) -> dict[str, str]:
    """Every file's sha256 and every folder under ``root`` (``root`` itself included)."""
    tree = {".": "dir" if root.is_dir() else hashlib.sha256(root.read_bytes()).hexdigest()}
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            key = str(path.relative_to(root))
            tree[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


def one_line(error: BaseException | str) -> str:
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message, message
    return message


def cli_error(capsys, *args: str, notes: int = 0) -> str:
    """Run the CLI in-process; it must exit 2 with one ``error:`` line on stderr (after ``notes`` progress lines,
    such as the caption reader's counts). Returns that line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main([str(arg) for arg in args])
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == notes + 1 and lines[-1].startswith("error: ") and "Traceback" not in err, err
    assert not any(line.startswith("error: ") for line in lines[:-1]), err
    return lines[-1]


def tiny_recipe(data_root: Path, *overrides: str):
    from medzoo.core.recipes.loading import load_recipe

    return load_recipe("tiny", [f"data.root={data_root}", *TINY_RUN, *overrides]).config


def quiet(*_: object, **__: object) -> None:
    return None


# ---------------------------------------------------------------- shared material


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A finished run of the tiny recipe cut to 2 + 2 steps on a small synthetic set: (run dir, data root)."""
    from medzoo.app.data_setup import ensure_data
    from medzoo.app.training import train_run
    from medzoo.testing import single_thread

    base = tmp_path_factory.mktemp("faults-run")
    with single_thread():
        train_run(tiny_recipe(base / "data"), base / "run", echo=quiet, prepare_data=ensure_data)
    return base / "run", base / "data"


@pytest.fixture
def run_copy(finished, tmp_path) -> Path:
    """A private copy of the finished run (cases may not leave the shared one altered)."""
    return Path(shutil.copytree(finished[0], tmp_path / "run"))


def real_dataset(root: Path) -> Path:
    """A folder laid out like the real VQA-RAD / SLAKE / PathVQA / ColonINST releases (not written by medzoo)."""
    files = {
        "vqa_rad/test.json": '[{"qid": 1, "question": "real"}]',
        "vqa_rad/vqa_rad.json": '[{"qid": 1}]',
        "slake/train.json": '[{"qid": 7, "img_name": "xmlab1/source.jpg"}]',
        "pmc/captions.jsonl": '{"pair_id": "PMC1_F1"}\n',
        "pathvqa/qas/train/train_qa.pkl": "\x80\x04real",
        "coloninst/train/cls_train.json": "[]",
        "images/cxr/train_000000.png": "not really a png, but precious",
        "llava_med/instruct.json": "[]",
        "README.txt": "downloaded by hand, do not lose",
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def only(root: Path, entry: str) -> Path:
    """A folder holding one real-named entry of :func:`real_dataset` and a note."""
    full = real_dataset(root.parent / f"{root.name}-full")
    (root / entry).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(full / entry, root / entry)
    (root / "notes.txt").write_text("mine")
    return root


# ---------------------------------------------------------------- 1. synthesis over real-named files

REAL_ENTRIES = ["vqa_rad/test.json", "slake/train.json", "pmc/captions.jsonl", "pathvqa/qas/train/train_qa.pkl",
                "coloninst/train/cls_train.json", "images/cxr/train_000000.png", "llava_med/instruct.json"]


@pytest.mark.parametrize("entry", REAL_ENTRIES)
def test_synthesis_refuses_a_folder_holding_a_real_named_entry(tmp_path, entry):
    from medzoo.app.data_synth.generate import synthesize

    root = only(tmp_path / "data", entry)
    before = snapshot(root)
    with pytest.raises(NotOursError) as raised:
        synthesize(root, sizes=SMALL)
    message = one_line(raised.value)
    assert message.startswith(str(root / entry.split("/")[0])) and "manifest.json" in message
    assert snapshot(root) == before


@pytest.mark.parametrize("manifest", [
    '{"name": "VQA-RAD", "version": "2018"}',  # a real release's manifest
    '{"generator": "someone.else", "complete": true}',
    "not json at all",
])
def test_synthesis_refuses_a_manifest_medzoo_did_not_write(tmp_path, manifest):
    from medzoo.app.data_synth.generate import synthesize

    root = real_dataset(tmp_path / "data")
    (root / "manifest.json").write_text(manifest)
    before = snapshot(root)
    with pytest.raises(NotOursError) as raised:
        synthesize(root, sizes=SMALL)
    assert one_line(raised.value).startswith(str(root / "manifest.json"))
    assert snapshot(root) == before


def test_training_refuses_to_synthesise_over_a_real_data_root(tmp_path, capsys):
    root = real_dataset(tmp_path / "data")
    before = snapshot(root)
    line = cli_error(capsys, "train", "tiny", "-d", tmp_path / "run", "-o", f"data.root={root}",
                     *(item for override in TINY_RUN for item in ("-o", override)))
    assert str(root) in line and "data.synthesize=false" in line
    assert snapshot(root) == before
    assert not list((tmp_path / "run").glob("0*")) and not (tmp_path / "run" / "final").exists()


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_data_synth_refuses_a_real_data_set(tmp_path, capsys, overwrite):
    root = real_dataset(tmp_path / "data")
    before = snapshot(root)
    line = cli_error(capsys, "data", "synth", "--output", root, "--size", "train=10", "--size", "test=5",
                     "--size", "val=0", *(["--overwrite"] if overwrite else []))
    assert str(root) in line and "manifest.json" in line and "pass --overwrite" not in line
    assert snapshot(root) == before


def test_data_synth_overwrite_refuses_a_foreign_manifest(tmp_path, capsys):
    root = tmp_path / "data"
    root.mkdir()
    (root / "manifest.json").write_text('{"generator": "a-real-release"}')
    (root / "images").mkdir()
    (root / "images" / "scan.png").write_text("precious")
    before = snapshot(root)
    line = cli_error(capsys, "data", "synth", "--output", root, "--size", "train=5", "--overwrite")
    assert f"error: {root / 'manifest.json'}:" in line
    assert snapshot(root) == before


def test_interrupted_synthesis_is_recognised_as_medzoo_s_and_redone(tmp_path):
    from medzoo.app.data_setup import ensure_data
    from medzoo.app.data_synth.generate import synthesis_state, synthesize

    root = tmp_path / "data"
    synthesize(root, sizes={"train": 10, "val": 0, "test": 5})
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["complete"] is True and synthesis_state(root) == "complete"
    (root / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))  # killed mid-way
    (root / "vqa_rad" / "test.json").write_text("[")  # a half-written file of that run
    said: list[str] = []
    ensure_data(tiny_recipe(root, "data.synth_options={sizes: {train: 10, val: 0, test: 5}}"), echo=said.append)
    assert said and "interrupted" in said[0]
    assert synthesis_state(root) == "complete" and json.loads((root / "vqa_rad" / "test.json").read_text())


# ---------------------------------------------------------------- 3. run --fresh


@pytest.mark.parametrize("setup", ["someones-recipe", "plain-folder", "fake-marker", "someones-eval"])
def test_fresh_refuses_a_folder_that_is_not_a_medzoo_run(tmp_path, capsys, setup):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("a month of work")
    if setup == "someones-recipe":
        (folder / "recipe.yaml").write_text("name: mine\n")
    elif setup == "fake-marker":
        (folder / "medzoo_run.json").write_text('{"format": "something-else"}')
        (folder / "final").mkdir()
        (folder / "final" / "weights.bin").write_text("mine")
    elif setup == "someones-eval":
        (folder / "eval").mkdir()
        (folder / "eval" / "metrics.json").write_text("{}")
    before = snapshot(folder)
    line = cli_error(capsys, "run", "tiny", "-d", folder, "--fresh", "-o", f"data.root={tmp_path / 'data'}")
    assert f"error: {folder}:" in line and "medzoo_run.json" in line and "--fresh" in line
    assert snapshot(folder) == before
    assert not (tmp_path / "data").exists()


def test_fresh_refuses_a_run_another_training_is_writing(run_copy):
    from medzoo.core.training.run_folder import clear_run

    with hold_lock(run_copy, pid=31337):
        before = snapshot(run_copy)
        with pytest.raises(TrainingError) as raised:
            clear_run(run_copy)
        message = one_line(raised.value)
        assert message.startswith(str(run_copy)) and "pid 31337 on elsewhere" in message
        assert snapshot(run_copy) == before


def test_fresh_removes_only_what_medzoo_wrote(run_copy):
    from medzoo.core.training.run_folder import clear_run

    (run_copy / "notes.txt").write_text("mine")
    (run_copy / "eval").mkdir()
    (run_copy / "eval" / "metrics.json").write_text("{}")
    removed = clear_run(run_copy)
    assert set(removed) == {"01-alignment", "02-instruct", "final", "run.json", "recipe.yaml", "eval", "plots", "logs"}
    assert sorted(p.name for p in run_copy.iterdir()) == ["medzoo_run.json", "notes.txt", "run.lock"]


# ---------------------------------------------------------------- 4. training into an existing run


def train(run_dir: Path, data: Path, resume: bool = False, *overrides: str, **options) -> Path:
    from medzoo.app.training import train_run

    return train_run(tiny_recipe(data, *overrides), run_dir, resume=resume, echo=quiet, **options)


@pytest.mark.parametrize("kept", [
    ["01-alignment", "02-instruct", "final", "run.json"],  # finished
    ["01-alignment"],  # started: the first stage only
    ["01-alignment", "02-instruct"],  # both stages, no final model yet
])
def test_training_without_resume_refuses_a_started_or_finished_run(finished, run_copy, kept):
    for path in run_copy.iterdir():
        if path.name not in [*kept, "medzoo_run.json", "run.lock", "recipe.yaml"]:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    before = snapshot(run_copy)
    with pytest.raises(TrainingError) as raised:
        train(run_copy, finished[1])
    message = one_line(raised.value)
    assert message.startswith(f"{run_copy} already holds a run of recipe 'tiny' (")
    assert f"{kept[0]}/" in message and "pass --resume" in message and "--output-dir" in message
    assert snapshot(run_copy) == before


def test_train_cli_without_resume_refuses_a_finished_run(finished, run_copy, capsys):
    before = snapshot(run_copy)
    line = cli_error(capsys, "train", "tiny", "-d", run_copy, "-o", f"data.root={finished[1]}",
                     *(item for override in TINY_RUN for item in ("-o", override)))
    assert "already holds a run of recipe 'tiny'" in line and "final/" in line and "--resume" in line
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("entry", ["recipe.yaml", "final", "01-alignment", "run.json", "run.lock"])
@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_training_refuses_a_folder_with_run_named_entries_medzoo_did_not_write(finished, tmp_path, entry, resume):
    folder = tmp_path / "theirs"
    folder.mkdir()
    if entry in ("final", "01-alignment"):
        (folder / entry).mkdir()
        (folder / entry / "weights.bin").write_text("theirs")
    else:
        (folder / entry).write_text("theirs\n")
    before = snapshot(folder)
    with pytest.raises(NotOursError) as raised:
        train(folder, finished[1], resume)
    message = one_line(raised.value)
    assert message.startswith(f"{folder}: holds {entry} but no medzoo_run.json") and "--output-dir" in message
    assert snapshot(folder) == before


def test_training_into_a_file_is_refused(finished, tmp_path):
    target = tmp_path / "run"
    target.write_text("a file")
    with pytest.raises(NotOursError) as raised:
        train(target, finished[1])
    assert one_line(raised.value).startswith(f"{target}: is a file") and target.read_text() == "a file"


# ---------------------------------------------------------------- 5. concurrent writers


class hold_lock:
    """Take the run's lock through a separate open file description, as a second process would."""

    def __init__(self, run_dir: Path, pid: int) -> None:
        self.path, self.pid = run_dir / "run.lock", pid

    def __enter__(self):
        import fcntl

        self.handle = open(self.path, "a+")  # noqa: SIM115 - held for the block
        fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(json.dumps({"pid": self.pid, "host": "elsewhere", "started": "2025-01-01 00:00:00"}))
        self.handle.flush()
        return self

    def __exit__(self, *_: object) -> None:
        self.handle.close()


@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_a_second_writer_of_a_run_is_refused_naming_the_holder(finished, run_copy, resume):
    with hold_lock(run_copy, pid=4242):
        before = snapshot(run_copy)
        with pytest.raises(TrainingError) as raised:
            train(run_copy, finished[1], resume)
        message = one_line(raised.value)
        assert message.startswith(f"{run_copy}: another training is writing this run (pid 4242 on elsewhere")
        assert snapshot(run_copy) == before


def test_a_killed_holder_never_blocks_the_next_run(tmp_path):
    from medzoo.core.training.run_lock import run_lock

    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom medzoo.core.training.run_lock import run_lock\n"
         "with run_lock(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(120)\n", str(run_dir)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TrainingError) as raised, run_lock(run_dir):
            pass
        assert f"pid {holder.pid} on " in one_line(raised.value)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert (run_dir / "run.lock").is_file()  # left behind by the killed process
    with run_lock(run_dir):
        assert json.loads((run_dir / "run.lock").read_text())["pid"] == os.getpid()


# ---------------------------------------------------------------- 6. resume with a changed recipe

CHANGES = [
    (["stages.alignment.optimizer.lr=0.001"], "stages.0.optimizer.lr 0.002 -> 0.001"),
    (["stages.instruct.max_steps=3"], "stages.1.max_steps 2 -> 3"),
    (["model.language.config.hidden_size=64"], "model.language.config.hidden_size 128 -> 64"),
    (["curriculum.name=instruct-only"], "curriculum.name llava-med -> instruct-only"),
    (["stages.instruct.seed=1", "stages.alignment.optimizer.lr=0.001"], "stages.0.optimizer.lr 0.002 -> 0.001 (and 1 more)"),
]


@pytest.mark.parametrize(("overrides", "shown"), CHANGES, ids=["lr", "max_steps", "hidden_size", "curriculum", "two"])
def test_resume_with_a_changed_recipe_is_refused_naming_the_first_change(finished, run_copy, overrides, shown):
    from medzoo.core.training.run_folder import RecipeChangedError

    before = snapshot(run_copy)
    with pytest.raises(RecipeChangedError) as raised:
        train(run_copy, finished[1], True, *overrides)
    message = one_line(raised.value)
    assert message == (f"{run_copy / 'recipe.yaml'}: recipe changed since the run started: {shown}; "
                       "pass --allow-recipe-change to continue with the new recipe")
    assert snapshot(run_copy) == before


def test_medzoo_run_twice_with_other_overrides_names_fresh_and_allow(finished, run_copy, capsys):
    before = snapshot(run_copy)
    line = cli_error(capsys, "run", "tiny", "-d", run_copy, "-o", f"data.root={finished[1]}",
                     *(item for override in TINY_RUN for item in ("-o", override)),
                     "-o", "stages.instruct.optimizer.lr=0.01")
    assert "stages.1.optimizer.lr 0.001 -> 0.01" in line
    assert "--allow-recipe-change" in line and "--fresh" in line
    assert snapshot(run_copy) == before


def test_resume_ignores_what_does_not_change_training_and_allow_continues(finished, run_copy):
    # names, notes, benchmarks and checkpoint frequency may differ
    final = train(run_copy, finished[1], True, "name=renamed", "description=notes", "benchmarks=[]",
                  "stages.instruct.save_every_steps=1")
    assert final == run_copy / "final"
    said: list[str] = []
    from medzoo.app.training import train_run

    train_run(tiny_recipe(finished[1], "stages.alignment.optimizer.lr=0.0005"), run_copy, resume=True,
                 echo=said.append, allow_recipe_change=True)
    assert any("stages.0.optimizer.lr 0.002 -> 0.0005; continuing" in line for line in said)
    assert "lr: 0.0005" in (run_copy / "recipe.yaml").read_text()


# ---------------------------------------------------------------- 7. interop outputs overlapping their sources


def checkpoint(folder: Path) -> Path:
    """Something shaped like a checkpoint folder (refusals come before anything is read)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llava"}')
    (folder / "model.safetensors").write_bytes(b"\x00weights of a week of training")
    return folder


INTEROP = [
    ("import-same", ["import", "{src}", "--format", "llava-med-v1.5", "--output", "{src}"], "{src}"),
    ("import-inside", ["import", "{src}", "--format", "llava-med-v1.5", "--output", "{src}/medzoo"], "{src}"),
    ("import-parent", ["import", "{src}", "--format", "llava-med-v1.5", "--output", "{base}"], "{src}"),
    ("apply-delta-base", ["apply-delta", "--base", "{src}", "--delta", "{other}", "--output", "{src}"], "{src}"),
    ("apply-delta-in-delta", ["apply-delta", "--base", "{other}", "--delta", "{src}", "--output", "{src}/merged"],
     "{src}"),
    ("apply-delta-llava", ["apply-delta", "--base", "{src}", "--delta", "{other}", "--output", "{src}",
                           "--output-format", "llava"], "{src}"),
    ("make-delta-target", ["make-delta", "--base", "{other}", "--target", "{src}", "--output", "{src}"], "{src}"),
    ("make-delta-base", ["make-delta", "--base", "{src}", "--target", "{other}", "--output", "{src}/delta"], "{src}"),
    ("export-same", ["export", "{model}", "--output", "{model}"], "{model}"),
    ("export-inside", ["export", "{model}", "--output", "{model}/hf"], "{model}"),
    ("merge-lora-same", ["merge-lora", "{model}", "--output", "{model}"], "{model}"),
]


@pytest.mark.parametrize(("name", "template", "source"), INTEROP, ids=[case[0] for case in INTEROP])
def test_interop_output_overlapping_a_source_is_refused_before_reading(finished, tmp_path, capsys, name, template,
                                                                       source):
    base = tmp_path / "checkpoints"
    paths = {"base": base, "src": checkpoint(base / "src"), "other": checkpoint(tmp_path / "other"),
             "model": Path(shutil.copytree(finished[0] / "final", tmp_path / "model"))}
    before = {key: snapshot(path) for key, path in paths.items()}
    args = [arg.format(**paths) for arg in template]
    line = cli_error(capsys, *args)
    assert line.startswith(f"error: --output {args[args.index('--output') + 1]}: overlaps the source")
    assert source.format(**paths) in line
    assert {key: snapshot(path) for key, path in paths.items()} == before


FOREIGN_OUTPUT = [
    ("import", ["import", "{other}", "--format", "llava-med-v1.5", "--output", "{out}"], "medzoo_model.json"),
    ("apply-delta-medzoo", ["apply-delta", "--base", "{other}", "--delta", "{other}", "--output", "{out}"],
     "medzoo_model.json"),
    ("apply-delta-llava", ["apply-delta", "--base", "{other}", "--delta", "{other}", "--output", "{out}",
                           "--output-format", "llava"], "medzoo_checkpoint.json"),
    ("make-delta", ["make-delta", "--base", "{other}", "--target", "{other}", "--output", "{out}"],
     "medzoo_checkpoint.json"),
    ("export", ["export", "{model}", "--output", "{out}"], "medzoo_export.json"),
    ("merge-lora", ["merge-lora", "{model}", "--output", "{out}"], "medzoo_model.json"),
]


@pytest.mark.parametrize(("name", "template", "marker"), FOREIGN_OUTPUT, ids=[case[0] for case in FOREIGN_OUTPUT])
def test_interop_output_folder_medzoo_did_not_write_is_refused(finished, tmp_path, capsys, name, template, marker):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("irreplaceable")
    paths = {"other": checkpoint(tmp_path / "other"), "out": out,
             "model": Path(shutil.copytree(finished[0] / "final", tmp_path / "model"))}
    before = {key: snapshot(path) for key, path in paths.items()}
    line = cli_error(capsys, *(arg.format(**paths) for arg in template))
    assert line.startswith(f"error: {out}: a folder medzoo did not write (no {marker})")
    assert {key: snapshot(path) for key, path in paths.items()} == before


# ---------------------------------------------------------------- 8. instruct generate


def captions(path: Path, count: int) -> Path:
    lines = [json.dumps({"pair_id": f"PMC{i}_F1", "image": f"cxr/train_{i:06d}.png", "fig_label": "Figure 1",
                         "fig_caption": f"Chest radiograph {i} with an opacity.", "in_text_mention": [],
                         "domain": "cxr"}) for i in range(count)]
    path.write_text("".join(line + "\n" for line in lines))
    return path


def generate_args(captions_file: Path, output: Path, base_url: str, *extra: str) -> list[str]:
    return ["instruct", "generate", "--captions", str(captions_file), "--output", str(output), "--backend",
            "openai", "--model", "fake", "--base-url", base_url, "--api-key", "k", "--max-attempts", "1",
            "--backoff", "0", *extra]


def good_reply(_: dict) -> str:
    return "User: What does the image show?\nAssistant: An opacity.\nUser: Where?\nAssistant: The left lung."


def garbled_reply(_: dict) -> str:
    return "I am sorry, I cannot help with that."


def medzoo_output(tmp_path: Path, kept: int) -> Path:
    """An instruction file written by an earlier ``instruct generate`` run holding ``kept`` conversations."""
    with fake_openai.FakeOpenAI(good_reply, max_requests=kept) as server:
        output = tmp_path / "out" / "instruct.json"
        main(generate_args(captions(tmp_path / "earlier.jsonl", kept), output, server.base_url))
    assert len(json.loads(output.read_text())) == kept
    return output


@pytest.mark.parametrize("case", ["no-summary", "summary-of-another-file", "unreadable-summary"])
def test_generate_refuses_an_output_it_did_not_write(tmp_path, capsys, case):
    folder = tmp_path / "out"
    folder.mkdir()
    output = folder / "instruct.json"
    output.write_text('[{"id": "hand-made"}]')
    if case == "summary-of-another-file":
        (folder / "instruct.summary.json").write_text('{"output": "other.json"}')
    elif case == "unreadable-summary":
        (folder / "instruct.summary.json").write_text("{")
    before = snapshot(folder)
    with fake_openai.FakeOpenAI(good_reply, max_requests=5) as server:
        line = cli_error(capsys, *generate_args(captions(tmp_path / "c.jsonl", 2), output, server.base_url))
        assert server.request_count == 0  # refused before a token is spent
    assert line.startswith(f"error: --output {output}: exists and was not written by instruct generate")
    assert "--overwrite" in line and snapshot(folder) == before


def test_generate_output_equal_to_the_captions_is_refused_even_with_overwrite(tmp_path, capsys):
    source = captions(tmp_path / "captions.jsonl", 3)
    before = snapshot(tmp_path)
    line = cli_error(capsys, *generate_args(source, source, "http://127.0.0.1:9", "--overwrite"))
    assert line == f"error: --output {source}: overlaps the source {source}; write the result somewhere else"
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("failure", ["garbled", "http-401", "no-captions"])
def test_generate_keeping_nothing_fails_and_leaves_the_output(tmp_path, capsys, failure):
    output = medzoo_output(tmp_path, kept=2)
    before = snapshot(output.parent)
    source = tmp_path / "new.jsonl"
    if failure == "no-captions":
        source.write_text("{not json\n" + json.dumps({"pair_id": "X", "fig_caption": ""}) + "\n")
    else:
        captions(source, 3)
    responder = garbled_reply if failure == "garbled" else good_reply
    with fake_openai.FakeOpenAI(responder, max_requests=5) as server:
        if failure == "http-401":
            server.push(*[fake_openai.Status(401, body='{"error": "bad\\nkey"}')] * 3)
        line = cli_error(capsys, *generate_args(source, output, server.base_url, "--cache-dir", str(tmp_path / "c")),
                         notes=1)
    assert f"{output} left unchanged" in line
    if failure == "garbled":
        assert "0 of 3 conversations kept (no user/assistant turns found: 3)" in line
        assert "first failure: PMC0_F1: no user/assistant turns found" in line
    elif failure == "http-401":
        assert "0 of 3 conversations kept (request failed: 3)" in line and "first failure: PMC0_F1: request failed (" in line
    else:
        assert "0 records kept, 2 skipped" in line and "no caption records" in line
    assert snapshot(output.parent) == before


def test_generate_says_when_a_rerun_keeps_fewer_conversations(tmp_path, capsys):
    output = medzoo_output(tmp_path, kept=3)
    capsys.readouterr()
    with fake_openai.FakeOpenAI(good_reply, max_requests=5) as server:
        main(generate_args(captions(tmp_path / "fewer.jsonl", 1), output, server.base_url))
    assert "1 conversations kept; fewer than the 3 the file held before" in capsys.readouterr().out
    summary = json.loads((output.parent / "instruct.summary.json").read_text())
    assert summary["output"] == "instruct.json" and summary["conversations"]["previously_kept"] == 3
    assert len(json.loads(output.read_text())) == 1
