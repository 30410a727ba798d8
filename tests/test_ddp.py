"""Data parallelism on CPU: ``accelerate launch --multi_gpu --num_processes 2`` (gloo, no CUDA) trains a recipe to the losses of
one process with the same global batch, writes logs and checkpoints once, and resumes after ``kill -9``.

Each launch's runs are trained once per module (:class:`Runs`) and compared by several tests: the one-process run
(every launch's reference, and the FSDP one-process resume's), each launch's uninterrupted two-process run (matched
against one process, and against its own resume) and its killed run (copied before each resume). The one-process
runs train in the test's own process (no interpreter to start), the launches in processes of their own."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file
from support import hang_at_checkpoint
from support.hang_guard import SUBPROCESS_HANG_S, wait_for
from support.in_process import medzoo_here

from medzoo.testing import TINY_MODEL

pytestmark = pytest.mark.skipif(shutil.which("accelerate", path=os.path.dirname(sys.executable)) is None,
                                reason="accelerate launcher not installed")

# 24 samples are 3 global batches of 8: the alignment stage is one epoch, the instruct stage crosses into a second
# and third one; both checkpoint after step 2 (removed when the stage ends), the instruct stage after step 4 too
SAMPLES, ALIGNMENT_STEPS, INSTRUCT_STEPS = 24, 3, 5
# the killed run stops publishing the instruct stage's step-4 checkpoint: steps 3 and 4 are logged, ``latest``
# names step 2, a staging folder is left behind
KILL_AT, RESUME_FROM = 4, 2


def write_recipe(root: Path) -> Path:
    images = root / "images"
    images.mkdir(parents=True)
    records = []
    for i in range(SAMPLES):
        Image.new("RGB", (32, 32), (30 + 4 * i, 200 - 3 * i, 90)).save(images / f"{i}.png")
        records.append({"id": f"r{i}", "image": f"{i}.png", "answer_type": "OPEN", "question_type": "x",
                        "conversations": [{"from": "human", "value": "<image>\n" + "What is shown? " * (1 + i % 3)},
                                          {"from": "gpt", "value": "A square " + "of colour " * (i % 4)}]})
    (root / "train.json").write_text(json.dumps(records))

    def stage(name: str, role: str, language: str, lr: float, steps: int) -> dict:
        return {"name": name, "role": role,
                "datasets": [{"name": "med-vqa", "path": str(root / "train.json"), "image_root": str(images),
                              "options": {"split": "all"}}],
                "tuning": {"vision": "frozen", "connector": "full", "language": language}, "optimizer": {"lr": lr},
                "max_steps": steps, "global_batch_size": 8, "micro_batch_size": 2, "max_length": 128,
                "precision": "fp32", "seed": 5, "save_every_steps": 2, "schedule": {"warmup_ratio": 0.1}}

    recipe = {"name": "ddp-tiny", "model": TINY_MODEL,
              "stages": [stage("alignment", "alignment", "frozen", 2e-3, ALIGNMENT_STEPS),
                         stage("instruct", "instruct", "full", 1e-3, INSTRUCT_STEPS)]}
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


CONFIGS = Path(__file__).resolve().parents[1] / "recipes" / "accelerate"
# accelerate's --cpu flag selects its single-process launcher; --multi_gpu starts torchrun, and on a machine without
# CUDA the trainer joins the processes over gloo. The shipped FSDP config (full shard, transformer-block wrapping)
# runs torch's FSDP over gloo the same way.
# DeepSpeed's CPU accelerator joins the processes over gloo too (its shared-memory helper, built on first use,
# only serves inference).
LAUNCHES = {
    "ddp": ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"],
    "fsdp": ["--config_file", str(CONFIGS / "fsdp.yaml")],
    "zero2": ["--config_file", str(CONFIGS / "deepspeed_zero2.yaml")],
    "zero3": ["--config_file", str(CONFIGS / "deepspeed_zero3.yaml")],
}
CLI = ("-m", "medzoo.app.cli")


def free_port() -> int:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def command(recipe: Path, run: Path, processes: int, *extra: str, launch: str = "ddp",
            module: tuple[str, str] = CLI) -> list[str]:
    """The ``accelerate launch`` command line of a run on ``processes`` (two or more) processes."""
    tail = [*module, "train", str(recipe), "--output-dir", str(run), *extra]
    launcher = os.path.join(os.path.dirname(sys.executable), "accelerate")
    return [launcher, "launch", *LAUNCHES[launch], "--num_processes", str(processes), "--num_machines", "1",
            "--main_process_port", str(free_port()), *tail]


def extensions_folder() -> str:
    """Where DeepSpeed's launches build its CPU shared-memory op: one folder per virtualenv, since a build records
    its venv's torch paths and two venvs sharing torch's default folder rebuild it (a minute) at every launch."""
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return os.environ["TORCH_EXTENSIONS_DIR"]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return str(cache / "torch_extensions" / f"venv-{hashlib.sha1(sys.prefix.encode()).hexdigest()[:12]}")


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_EXTENSIONS_DIR": extensions_folder(), **extra}


def run(recipe: Path, out: Path, processes: int, *extra: str, launch: str = "ddp",
        expect: int = 0) -> subprocess.CompletedProcess:
    if processes == 1:  # the one-process reference runs in the test's own process, on one thread as the launches
        result = medzoo_here("train", str(recipe), "--output-dir", str(out), *extra)
        assert result.returncode == expect, result.stderr[-3000:]
        return result
    # the DeepSpeed configs name their JSON files relative to the repository root, as the docs launch them
    result = subprocess.run(command(recipe, out, processes, *extra, launch=launch), capture_output=True, text=True,
                            env=environment(), timeout=SUBPROCESS_HANG_S, cwd=CONFIGS.parents[1])
    assert result.returncode == expect, result.stderr[-3000:]
    return result


def kill_tree(pid: int) -> None:
    """SIGKILL a launcher and every process under it (torchrun starts workers in sessions of their own)."""
    import psutil

    parent = psutil.Process(pid)
    for process in [*parent.children(recursive=True), parent]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def kill_while_publishing(recipe: Path, out: Path, launch: str) -> None:
    """Start a two-process run and SIGKILL it once its main process is about to publish the instruct stage's
    step-``KILL_AT`` checkpoint (its processes wait there: the run cannot end before the kill, however slow)."""
    checkpoints = out / "02-instruct" / "checkpoints"
    ready, log = out.parent / f"{out.name}.hung", out.parent / f"{out.name}.stderr"
    path = [str(Path(__file__).parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = environment(PYTHONPATH=os.pathsep.join(path),
                      **{hang_at_checkpoint.TARGET: str(checkpoints / checkpoint_name(KILL_AT)),
                         hang_at_checkpoint.READY: str(ready)})
    with open(log, "w") as stderr:
        process = subprocess.Popen(command(recipe, out, 2, launch=launch, module=("-m", hang_at_checkpoint.__name__)),
                                   stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
                                   cwd=CONFIGS.parents[1], env=env)
        wait_for(lambda: ready.exists() or process.poll() is not None,
                 f"the {launch} run reaching its step-{KILL_AT} checkpoint (its log: {log})")
        assert process.poll() is None, f"training ended before it was killed: {log.read_text()[-3000:]}"
        kill_tree(process.pid)
        process.wait()
    assert ready.exists(), f"the run never reached its step-{KILL_AT} checkpoint"
    assert (checkpoints / "latest").read_text().strip() == checkpoint_name(RESUME_FROM)
    assert (checkpoints / checkpoint_name(RESUME_FROM) / "info.json").is_file(), "the main process wrote a checkpoint"
    assert (checkpoints / f".{checkpoint_name(KILL_AT)}").is_dir(), "killed while writing the next one"
    assert len(losses(out, "02-instruct")) == KILL_AT, "steps after the published checkpoint were logged"


def losses(run_dir: Path, stage: str) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / stage / "metrics.jsonl").read_text().splitlines()]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return {f"{f.name}:{k}": v for f in sorted((run_dir / "final").rglob("*.safetensors"))
            for k, v in load_file(str(f)).items()}


class Runs:
    """The recipe's runs, each trained at most once, on first use; the tests only read them (or copies of them)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[str, Any] = {}

    def _once(self, key: str, make: Callable[[Path], Any]) -> Any:
        if key not in self._made:
            self._made[key] = make(self.root / key)
        return self._made[key]

    @property
    def recipe(self) -> Path:
        return self._once("data", write_recipe)

    def single(self) -> Path:
        """One process, uninterrupted."""

        def train(out: Path) -> Path:
            run(self.recipe, out, 1)
            return out

        return self._once("single", train)

    def double(self, launch: str) -> tuple[Path, str]:
        """Two processes of ``launch``, uninterrupted: the run folder and its standard output."""
        return self._once(f"double-{launch}", lambda out: (out, run(self.recipe, out, 2, launch=launch).stdout))

    def killed(self, launch: str) -> Path:
        """Two processes of ``launch`` killed (``kill -9``) while writing the instruct stage's second checkpoint."""

        def train_and_kill(out: Path) -> Path:
            kill_while_publishing(self.recipe, out, launch)
            return out

        return self._once(f"killed-{launch}", train_and_kill)

    def resume_killed(self, launch: str, into: Path, processes: int) -> tuple[Path, str]:
        """A copy of the killed run of ``launch`` in ``into``, resumed on ``processes``: the folder and its output."""
        shutil.copytree(self.killed(launch), into, symlinks=True)
        return into, run(self.recipe, into, processes, "--resume", launch=launch).stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    return Runs(tmp_path_factory.mktemp("ddp-runs"))


def needs_engine(launch: str) -> None:
    if launch.startswith("zero"):
        pytest.importorskip("deepspeed")


@pytest.mark.parametrize("launch", sorted(LAUNCHES))
def test_two_processes_match_one_and_write_once(runs, launch):
    needs_engine(launch)
    single = runs.single()
    double, stdout = runs.double(launch)
    summary = json.loads((double / "run.json").read_text())
    assert [s["processes"] for s in summary["stages"]] == [2, 2]
    for stage, steps in (("01-alignment", ALIGNMENT_STEPS), ("02-instruct", INSTRUCT_STEPS)):
        one, two = losses(single, stage), losses(double, stage)
        assert len(two) == steps, "every step is logged once"
        assert two == pytest.approx(one, abs=1e-4)
    assert stdout.count(f"stage instruct: {INSTRUCT_STEPS} steps") == 1, "one process speaks for the run"
    assert stdout.count("final model: ") == 1
    assert not list(double.rglob(".step-*")) and not list(double.rglob("*.tmp"))
    expected, actual = final_weights(single), final_weights(double)
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("launch", sorted(LAUNCHES))
def test_two_processes_resume_after_kill(runs, tmp_path, launch):
    needs_engine(launch)
    reference, _ = runs.double(launch)
    resumed, stdout = runs.resume_killed(launch, tmp_path / "resumed", 2)
    assert stdout.count("resume from") == 1 and "already complete" in stdout
    assert f"(step {RESUME_FROM}/{INSTRUCT_STEPS})" in stdout
    assert losses(resumed, "02-instruct") == pytest.approx(losses(reference, "02-instruct"), abs=1e-5)
    assert not list(resumed.rglob(".step-*")), "the killed run's half-written checkpoint is gone"
    expected, actual = final_weights(reference), final_weights(resumed)
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=1e-6, rtol=1e-5)


def test_fsdp_checkpoint_resumes_on_one_process(runs, tmp_path):
    """A checkpoint gathered from FSDP shards holds whole tensors: one process picks the run up where two left it."""
    reference = runs.single()
    resumed, stdout = runs.resume_killed("fsdp", tmp_path / "resumed", 1)
    assert stdout.count("resume from") == 1
    assert losses(resumed, "02-instruct") == pytest.approx(losses(reference, "02-instruct"), abs=1e-4)
    expected, actual = final_weights(reference), final_weights(resumed)
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=1e-5, rtol=1e-4)


def test_fsdp_wraps_the_components_block_classes():
    from types import SimpleNamespace

    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    from medzoo.core.model.build import build_model
    from medzoo.core.training.distributed import block_class_names, configure_fsdp

    model = build_model(TINY_MODEL)
    assert block_class_names(model) == ["CLIPEncoderLayer", "MistralDecoderLayer"]
    plugin = SimpleNamespace(auto_wrap_policy=None, transformer_cls_names_to_wrap=None)
    configure_fsdp(SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin)), model)
    assert plugin.auto_wrap_policy is transformer_auto_wrap_policy
    assert plugin.transformer_cls_names_to_wrap == ["CLIPEncoderLayer", "MistralDecoderLayer"]
    chosen = SimpleNamespace(auto_wrap_policy=transformer_auto_wrap_policy, transformer_cls_names_to_wrap=["X"])
    configure_fsdp(SimpleNamespace(state=SimpleNamespace(fsdp_plugin=chosen)), model)
    assert chosen.transformer_cls_names_to_wrap == ["X"], "names given in the accelerate config win"


def test_shipped_accelerate_configs_parse():
    root = Path(__file__).resolve().parents[1] / "recipes" / "accelerate"
    kinds = {yaml.safe_load(path.read_text())["distributed_type"] for path in root.glob("*.yaml")}
    assert kinds == {"MULTI_GPU", "FSDP", "DEEPSPEED"}
    stages = {json.loads(path.read_text())["zero_optimization"]["stage"] for path in root.glob("*.json")}
    assert stages == {2, 3}


def test_deepspeed_config_filled_from_the_stage_and_explicit_mismatch_named():
    from types import SimpleNamespace

    from medzoo.core.errors import RecipeError
    from medzoo.core.model.build import build_model
    from medzoo.core.training.distributed import configure_deepspeed

    model = build_model(TINY_MODEL)
    config = json.loads((CONFIGS / "deepspeed_zero3.json").read_text())
    accelerator = SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(deepspeed_config=config)),
                                  num_processes=2)
    stage = SimpleNamespace(name="instruct", micro_batch_size=4, max_grad_norm=1.0)
    configure_deepspeed(accelerator, model, stage, micro_batches_per_step=3)
    hidden = model.language.hidden_size
    assert (config["train_micro_batch_size_per_gpu"], config["gradient_accumulation_steps"],
            config["train_batch_size"], config["gradient_clipping"]) == (4, 3, 24, 1.0)
    assert config["zero_optimization"]["reduce_bucket_size"] == hidden * hidden
    assert config["zero_optimization"]["stage3_param_persistence_threshold"] == 10 * hidden
    config["train_micro_batch_size_per_gpu"] = 16
    with pytest.raises(RecipeError, match=r"DeepSpeed config train_micro_batch_size_per_gpu: 16 disagrees with "
                                          r"stage 'instruct' \(4\)"):
        configure_deepspeed(accelerator, model, stage, micro_batches_per_step=3)


def test_gathered_tensors_replace_sharded_ones_keeping_ties_and_frozen_flags():
    from medzoo.core.errors import TrainingError
    from medzoo.core.training.distributed import _assign_tensors

    model = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False), torch.nn.BatchNorm1d(5))
    model[1].weight = model[0].weight  # tied
    model[0].weight.requires_grad_(False)
    full = {name: torch.randn_like(t.float()) if t.is_floating_point() else t.clone()
            for name, t in model.state_dict().items()}
    with torch.no_grad():  # shard-like shapes, as FSDP and ZeRO-3 leave them
        model[0].weight.data = torch.empty(0)
    _assign_tensors(model, full)
    assert model[0].weight is model[1].weight and not model[0].weight.requires_grad
    torch.testing.assert_close(model[0].weight, full["0.weight"])
    torch.testing.assert_close(model[2].running_mean, full["2.running_mean"])
    del full["2.bias"]
    with pytest.raises(TrainingError, match="gathered state dict lacks 1 tensors such as '2.bias'"):
        _assign_tensors(model, full)


def test_fsdp_wraps_every_tower_of_a_fusion():
    from medzoo.core.model.build import build_model
    from medzoo.core.plugin_system.manager import components
    from medzoo.core.training.distributed import block_class_names

    fusion = components().get("vision_encoder", "fusion").factory
    spec = {**TINY_MODEL, "vision": {"name": "fusion", "config": fusion.tiny_config()}}
    model = build_model(spec)
    names = block_class_names(model)
    assert names[-1] == "MistralDecoderLayer"
    assert set(names[:-1]) == {cls.__name__ for cls in model.vision.block_classes} and len(names) >= 3


def write_grpo_recipe(root: Path, data: Path) -> Path:
    """One GRPO stage from the random tiny model on the DDP data: 4 prompts x 4 completions per step."""
    stage = {"name": "grpo", "role": "preference",
             "objective": {"name": "grpo", "group_size": 4, "max_completion_length": 8,
                           "rewards": {"token-f1": {"weight": 1.0, "mode": "recall"}}},
             "datasets": [{"name": "med-vqa", "path": str(data / "train.json"), "image_root": str(data / "images"),
                           "options": {"split": "all"}}],
             "tuning": {"vision": "frozen", "connector": "full", "language": "full"}, "optimizer": {"lr": 1e-3},
             "max_steps": 2, "global_batch_size": 4, "micro_batch_size": 4, "max_length": 128,
             "precision": "fp32", "seed": 5}
    root.mkdir(parents=True, exist_ok=True)
    path = root / "grpo.yaml"
    path.write_text(yaml.safe_dump({"name": "ddp-grpo", "model": TINY_MODEL, "stages": [stage]}))
    return path


def test_grpo_on_two_processes_shards_the_prompts_and_matches_one(runs, tmp_path):
    """Each process generates the completions of its half of the prompts, seeded per prompt: the rewards, losses
    and weights equal the one-process run's (tolerance 1e-4 on logged figures, 1e-5 on weights: the gradient
    all-reduce sums in another order)."""
    recipe = write_grpo_recipe(tmp_path / "recipe", runs.recipe.parent)
    run(recipe, tmp_path / "one", 1)
    run(recipe, tmp_path / "two", 2)
    logs = [[json.loads(line) for line in (tmp_path / name / "01-grpo" / "metrics.jsonl").read_text().splitlines()]
            for name in ("one", "two")]
    assert [r["step"] for r in logs[1]] == [1, 2]
    for key in ("loss", "reward", "rewards/token-f1", "reward/std", "groups/equal", "completions/length"):
        assert [r[key] for r in logs[1]] == pytest.approx([r[key] for r in logs[0]], abs=1e-4), key
    expected, actual = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.allclose(expected[key].float(), actual[key].float(), atol=1e-5), key
