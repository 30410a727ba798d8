"""Fault injection (issue 15: tracebacks instead of one-line errors): damaged files medzoo reads.

A copy of a saved tiny model, a training checkpoint, dataset files, training images and chat images are damaged
(truncated, emptied, removed, not UTF-8, not JSON, the wrong JSON type, a tensor of the wrong shape, a
decompression bomb). Each case asserts the error type or exit code, that the message is one line naming the
damaged file (and key or line), and that a folder whose load failed is byte-identical afterwards."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file, save_file
from support.faults import cli_error, one_line

from medzoo.app.cli.main import cli
from medzoo.core.errors import DataError, MedzooError, TrainingError
from medzoo.testing import TINY_MODEL, single_thread


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` by relative path -> sha256 (folders too, so a removed one shows)."""
    return {
        str(path.relative_to(root)): "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
    }


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def reshape_first_tensor(path: Path) -> str:
    """Give the (sorted) first tensor of a safetensors file a wrong shape; returns its name."""
    tensors = load_file(str(path))
    key = sorted(tensors)[0]
    tensors[key] = torch.zeros(3, 3)
    save_file(tensors, str(path))
    return key


def torn_jpeg() -> bytes:
    """A JPEG cut short: PIL's ``verify`` passes, a full decode fails."""
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buffer, format="JPEG")
    data = buffer.getvalue()
    return data[: len(data) * 2 // 3]


@pytest.fixture(autouse=True)
def one_thread():
    with single_thread():
        yield


# ---------------------------------------------------------------- 1. model folders


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> dict[str, Path]:
    """Two saved tiny models (random weights): ``full`` (every module in full) and ``lora`` (LoRA adapters on the
    connector and the language model, saved beside the base weights)."""
    from medzoo.core.model.adapters import tuning_strategy
    from medzoo.core.model.build import build_model

    root = tmp_path_factory.mktemp("saved-models")
    with single_thread():
        torch.manual_seed(0)
        build_model(TINY_MODEL).save_pretrained(str(root / "full"))
        adapted = build_model(TINY_MODEL)
        lora = tuning_strategy("lora")
        lora.apply(adapted.language.model, "language")
        lora.apply(adapted.connector, "connector")
        adapted.save_pretrained(str(root / "lora"))
    return {"full": root / "full", "lora": root / "lora"}


def _no_key(*keys: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        def drop(data: dict) -> None:
            *parents, last = keys
            for key in parents:
                data = data[key]
            del data[last]

        edit_json(folder / "medzoo_model.json", drop)

    return damage


# (case, model, damaged file, damage, what else the message must name)
MODEL_DAMAGES: list[tuple[str, str, str, Callable[[Path], object], str]] = [
    ("manifest not json", "full", "medzoo_model.json", lambda f: (f / "medzoo_model.json").write_text('{"format": '),
     "not valid JSON"),
    ("manifest not utf-8", "full", "medzoo_model.json",
     lambda f: (f / "medzoo_model.json").write_bytes(b'{"format": "\xff"}'), "line 1"),
    ("manifest is a list", "full", "medzoo_model.json", lambda f: (f / "medzoo_model.json").write_text("[]"),
     "JSON list"),
    ("manifest without model", "full", "medzoo_model.json", _no_key("model"), "'model'"),
    ("manifest without saved_modules", "full", "medzoo_model.json", _no_key("saved_modules"), "'saved_modules'"),
    ("manifest without architecture", "full", "medzoo_model.json", _no_key("architecture"), "'architecture'"),
    ("manifest without language name", "full", "medzoo_model.json", _no_key("model", "language", "name"),
     "'model.language.name'"),
    ("manifest model is a string", "full", "medzoo_model.json",
     lambda f: edit_json(f / "medzoo_model.json", lambda d: d.update(model="clip")), "JSON string"),
    ("manifest names an unknown saved module", "full", "medzoo_model.json",
     lambda f: edit_json(f / "medzoo_model.json", lambda d: d.update(saved_modules=[1])), "'saved_modules'"),
    ("manifest names an unknown adapter strategy", "lora", "medzoo_model.json",
     lambda f: edit_json(f / "medzoo_model.json", lambda d: d["adapters"]["language"].update(strategy="lorax")),
     "'adapters.language.strategy'"),
    ("language config a JSON list", "full", "language/config.json",
     lambda f: (f / "language/config.json").write_text("[]"), "JSON list"),
    ("vision weights truncated", "full", "vision.safetensors", lambda f: truncate(f / "vision.safetensors"),
     "safetensors"),
    ("vision weights empty", "full", "vision.safetensors", lambda f: (f / "vision.safetensors").write_bytes(b""),
     "safetensors"),
    ("vision weights missing", "full", "vision.safetensors", lambda f: (f / "vision.safetensors").unlink(),
     "missing"),
    ("vision tensor of the wrong shape", "full", "vision.safetensors",
     lambda f: reshape_first_tensor(f / "vision.safetensors"), "[3, 3]"),
    ("connector weights truncated", "full", "connector.safetensors", lambda f: truncate(f / "connector.safetensors"),
     "safetensors"),
    ("connector tensor of the wrong shape", "full", "connector.safetensors",
     lambda f: reshape_first_tensor(f / "connector.safetensors"), "[3, 3]"),
    ("language weights truncated", "full", "language/model.safetensors",
     lambda f: truncate(f / "language/model.safetensors"), "safetensors"),
    ("language weights empty", "full", "language/model.safetensors",
     lambda f: (f / "language/model.safetensors").write_bytes(b""), "safetensors"),
    ("language weights missing", "full", "language/model.safetensors",
     lambda f: (f / "language/model.safetensors").unlink(), "missing"),
    ("language tensor of the wrong shape", "full", "language/model.safetensors",
     lambda f: reshape_first_tensor(f / "language/model.safetensors"), "config.json"),
    ("language config missing", "full", "language/config.json", lambda f: (f / "language/config.json").unlink(),
     "missing"),
    ("tokenizer missing", "full", "language/tokenizer.json", lambda f: (f / "language/tokenizer.json").unlink(),
     "missing"),
    ("tokenizer truncated", "full", "language/tokenizer.json", lambda f: truncate(f / "language/tokenizer.json"),
     "not valid JSON"),
    ("tokenizer config not utf-8", "full", "language/tokenizer_config.json",
     lambda f: (f / "language/tokenizer_config.json").write_bytes(b"\xff\xfe{}"), "UTF-8"),
    ("language adapter weights truncated", "lora", "adapters/language/adapter_model.safetensors",
     lambda f: truncate(f / "adapters/language/adapter_model.safetensors"), "safetensors"),
    ("connector adapter weights truncated", "lora", "adapters/connector/adapter_model.safetensors",
     lambda f: truncate(f / "adapters/connector/adapter_model.safetensors"), "safetensors"),
    ("language adapter weights missing", "lora", "adapters/language/adapter_model.safetensors",
     lambda f: (f / "adapters/language/adapter_model.safetensors").unlink(), "missing; expected the LoRA adapter weights"),
    ("language adapter tensor of the wrong shape", "lora", "adapters/language",
     lambda f: reshape_first_tensor(f / "adapters/language/adapter_model.safetensors"), "size mismatch"),
    ("adapter config truncated", "lora", "adapters/language/adapter_config.json",
     lambda f: truncate(f / "adapters/language/adapter_config.json"), "adapter config"),
    ("base weights beside adapters truncated", "lora", "language/base_weights.safetensors",
     lambda f: truncate(f / "language/base_weights.safetensors"), "safetensors"),
    ("base weights beside adapters missing", "lora", "language/base_weights.safetensors",
     lambda f: (f / "language/base_weights.safetensors").unlink(), "missing"),
]


@pytest.fixture
def damaged_model(saved_models, tmp_path) -> Callable[[str, Callable[[Path], object]], Path]:
    """``damaged_model(kind, damage)``: a private copy of a saved model with ``damage`` applied."""

    def make(kind: str, damage: Callable[[Path], object]) -> Path:
        folder = Path(shutil.copytree(saved_models[kind], tmp_path / "model"))
        damage(folder)
        return folder

    return make


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_undamaged_copies_load(damaged_model, kind):
    from medzoo.core.model.multimodal import MultimodalModel

    model = MultimodalModel.from_pretrained(str(damaged_model(kind, lambda folder: None)))
    assert model.num_image_tokens == 16


@pytest.mark.parametrize(
    "kind,relative,damage,detail", [case[1:] for case in MODEL_DAMAGES], ids=[case[0] for case in MODEL_DAMAGES]
)
def test_a_damaged_model_folder_is_one_line_naming_the_file(damaged_model, kind, relative, damage, detail):
    from medzoo.core.model.multimodal import MultimodalModel

    folder = damaged_model(kind, damage)
    before = snapshot(folder)
    with pytest.raises(MedzooError) as raised:
        MultimodalModel.from_pretrained(str(folder))
    message = one_line(raised.value)
    assert str(folder / relative) in message and detail in message, message
    assert snapshot(folder) == before


@pytest.mark.parametrize("command", ["eval", "chat"])
def test_the_cli_loading_a_damaged_model_prints_one_line(damaged_model, synthetic_data, tmp_path, capsys, command):
    folder = damaged_model("full", lambda f: truncate(f / "connector.safetensors"))
    before = snapshot(folder)
    args = [command, folder]
    if command == "eval":  # real benchmark data: it is checked before the model loads
        data = synthetic_data(seed=3, train=4, val=2, test=4)
        args += ["--benchmark", "synth-vqa-rad", "--option", f"root={data}", "-d", tmp_path / "out"]
    line = cli_error(capsys, *args)
    assert str(folder / "connector.safetensors") in line and "safetensors" in line, line
    assert snapshot(folder) == before


# vision towers loaded from a local checkpoint folder (a recipe's ``pretrained: /path``)

TINY_OPEN_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"timm_model_name": "test_vit", "timm_model_pretrained": False, "timm_pool": "",
                   "timm_proj": "linear", "image_size": 160},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}  # fmt: skip


@pytest.fixture(scope="module")
def vision_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A tiny CLIP-vision checkpoint (Hugging Face layout) and a tiny open_clip one (BiomedCLIP's hub layout)."""
    import open_clip
    from transformers import CLIPVisionConfig, CLIPVisionModel

    root = tmp_path_factory.mktemp("vision-checkpoints")
    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8)  # fmt: skip
    CLIPVisionModel(config).save_pretrained(root / "clip")
    (root / "clip" / "preprocessor_config.json").write_text(json.dumps({"crop_size": 32}))
    (root / "biomedclip").mkdir()
    model = open_clip.CLIP(**json.loads(json.dumps(TINY_OPEN_CLIP)))
    (root / "biomedclip" / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_OPEN_CLIP}))
    torch.save(model.state_dict(), root / "biomedclip" / "open_clip_pytorch_model.bin")
    return {"clip": root / "clip", "biomedclip": root / "biomedclip"}


def _reshape_trunk_tensor(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    key = next(key for key in sorted(state) if key.startswith("visual.trunk."))
    state[key] = torch.zeros(3, 3)
    torch.save(state, path)


VISION_DAMAGES: list[tuple[str, str, str, Callable[[Path], object], str]] = [
    ("clip weights truncated", "clip", "model.safetensors", lambda f: truncate(f / "model.safetensors"),
     "safetensors"),
    ("clip tensor of the wrong shape", "clip", "model.safetensors",
     lambda f: reshape_first_tensor(f / "model.safetensors"), "config.json"),
    ("clip preprocessor config not JSON", "clip", "preprocessor_config.json",
     lambda f: (f / "preprocessor_config.json").write_text("{crop"), "not valid JSON"),
    ("biomedclip weights truncated", "biomedclip", "open_clip_pytorch_model.bin",
     lambda f: truncate(f / "open_clip_pytorch_model.bin"), "truncated"),
    ("biomedclip trunk tensor of the wrong shape", "biomedclip", "open_clip_pytorch_model.bin",
     lambda f: _reshape_trunk_tensor(f / "open_clip_pytorch_model.bin"), "[3, 3]"),
    ("biomedclip config not utf-8", "biomedclip", "open_clip_config.json",
     lambda f: (f / "open_clip_config.json").write_bytes(b'{"model_cfg": "\xff"}'), "UTF-8"),
]


@pytest.mark.parametrize(
    "name,relative,damage,detail", [case[1:] for case in VISION_DAMAGES], ids=[case[0] for case in VISION_DAMAGES]
)
def test_a_damaged_vision_checkpoint_is_one_line_naming_the_file(
    vision_checkpoints, tmp_path, name, relative, damage, detail
):
    from medzoo.core.plugin_system.manager import components

    folder = Path(shutil.copytree(vision_checkpoints[name], tmp_path / name))
    encoder = components().get("vision_encoder", name).factory
    encoder.from_pretrained(str(folder))  # the undamaged copy loads
    damage(folder)
    before = snapshot(folder)
    with pytest.raises(MedzooError) as raised:
        encoder.from_pretrained(str(folder))
    message = one_line(raised.value)
    assert str(folder / relative) in message and detail in message, message
    assert snapshot(folder) == before


# ---------------------------------------------------------------- 2. training checkpoints (resume)


class _OneProcess:
    """What checkpointing asks of the accelerator, for one process without DeepSpeed."""

    is_main_process = True
    num_processes = 1
    distributed_type = "NO"

    def wait_for_everyone(self) -> None:
        return None


def _training_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[0].requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler


@pytest.fixture
def checkpoints(tmp_path) -> Path:
    """A checkpoints folder holding ``step-00000002`` and the ``latest`` pointer naming it."""
    from medzoo.core.training.checkpoint import save_checkpoint

    model, optimizer, scheduler = _training_state()
    folder = tmp_path / "checkpoints"
    save_checkpoint(_OneProcess(), folder, 2, model, model, optimizer, scheduler, {"samples_seen": 4})
    return folder


STEP = "step-00000002"
CHECKPOINT_DAMAGES: list[tuple[str, str, Callable[[Path], object], str]] = [
    ("trainable weights truncated", f"{STEP}/trainable.safetensors",
     lambda c: truncate(c / STEP / "trainable.safetensors"), "safetensors"),
    ("trainable weights empty", f"{STEP}/trainable.safetensors",
     lambda c: (c / STEP / "trainable.safetensors").write_bytes(b""), "safetensors"),
    ("trainable weights missing", f"{STEP}/trainable.safetensors",
     lambda c: (c / STEP / "trainable.safetensors").unlink(), "missing"),
    ("trainable tensor of the wrong shape", f"{STEP}/trainable.safetensors",
     lambda c: reshape_first_tensor(c / STEP / "trainable.safetensors"), "[3, 3]"),
    ("info not json", f"{STEP}/info.json", lambda c: (c / STEP / "info.json").write_text('{"step": '),
     "not valid JSON"),
    ("info a list", f"{STEP}/info.json", lambda c: (c / STEP / "info.json").write_text("[2]"), "JSON list"),
    ("info without step", f"{STEP}/info.json", lambda c: (c / STEP / "info.json").write_text('{"engine": "torch"}'),
     "'step'"),
    ("info missing", f"{STEP}/info.json", lambda c: (c / STEP / "info.json").unlink(), "incomplete"),
    ("latest names a missing checkpoint", "latest", lambda c: (c / "latest").write_text("step-00000099"),
     "step-00000099"),
    ("latest empty", "latest", lambda c: (c / "latest").write_text(""), "step-N"),
    ("latest leaves the folder", "latest", lambda c: (c / "latest").write_text("../elsewhere"), "../elsewhere"),
    ("state truncated", f"{STEP}/state.pt", lambda c: truncate(c / STEP / "state.pt"), "training state"),
]


@pytest.mark.parametrize(
    "relative,damage,detail", [case[1:] for case in CHECKPOINT_DAMAGES], ids=[case[0] for case in CHECKPOINT_DAMAGES]
)
def test_a_damaged_checkpoint_refuses_to_resume_naming_the_file(checkpoints, relative, damage, detail):
    from medzoo.core.training.checkpoint import latest_checkpoint, load_checkpoint

    damage(checkpoints)
    before = snapshot(checkpoints)
    model, optimizer, scheduler = _training_state()
    with pytest.raises(TrainingError) as raised:
        found = latest_checkpoint(checkpoints)
        assert found is not None, "a damaged checkpoint folder read as 'nothing saved yet'"
        load_checkpoint(_OneProcess(), found, model, model, optimizer, scheduler)
    message = one_line(raised.value)
    assert str(checkpoints / relative) in message and detail in message, message
    assert snapshot(checkpoints) == before


def test_resume_with_a_dangling_latest_pointer_does_not_start_over(checkpoints):
    from medzoo.core.training.trainer import resume_step

    shutil.rmtree(checkpoints / STEP)
    run = SimpleNamespace(checkpoints=checkpoints)
    with pytest.raises(TrainingError) as raised:
        resume_step(run, echo=print)
    assert str(checkpoints / "latest") in one_line(raised.value)


def test_an_undamaged_checkpoint_resumes(checkpoints):
    from medzoo.core.training.checkpoint import latest_checkpoint, load_checkpoint

    model, optimizer, scheduler = _training_state()
    info = load_checkpoint(_OneProcess(), latest_checkpoint(checkpoints), model, model, optimizer, scheduler)
    assert info["step"] == 2


# ---------------------------------------------------------------- 3. dataset files

LLAVA = [{"id": f"r{i}", "image": "a.png", "conversations": [
    {"from": "human", "value": "<image>\nWhat colour?"}, {"from": "gpt", "value": "Red."}]} for i in range(3)]
CAPTIONS = [{"pair_id": f"p{i}", "image": "a.png", "fig_caption": f"Figure {i}."} for i in range(3)]


def _bad_byte_on_line_2(records: list[dict]) -> bytes:
    lines = [json.dumps(record).encode() for record in records]
    lines[1] = lines[1].replace(b"Red", b"R\xffed").replace(b"Figure", b"Fig\xffure")
    return b"\n".join(lines) + b"\n"


def _dataset_damages(records: list[dict]) -> list[tuple[str, str, bytes, str]]:
    text = json.dumps(records).encode()
    return [
        ("json not utf-8", ".json", text.replace(b"a.png", b"a\xff.png", 1), "line 1"),
        ("json truncated", ".json", text[: len(text) // 2], "not valid JSON"),
        ("json object at the top", ".json", json.dumps({"records": records}).encode(), "JSON object"),
        ("jsonl not utf-8 on line 2", ".jsonl", _bad_byte_on_line_2(records), "line 2"),
        ("jsonl torn everywhere", ".jsonl", b'{"id": "r0", "ima\n{"id": \n', "JSON-lines"),
    ]


DATASET_CASES = [("llava-json", *case) for case in _dataset_damages(LLAVA)]
DATASET_CASES += [("pmc-captions", *case) for case in _dataset_damages(CAPTIONS)]


@pytest.mark.parametrize(
    "reader,suffix,content,detail",
    [(case[0], *case[2:]) for case in DATASET_CASES],
    ids=[f"{case[0]}: {case[1]}" for case in DATASET_CASES],
)
def test_a_damaged_dataset_file_is_a_one_line_data_error(tmp_path, reader, suffix, content, detail):
    from medzoo.core.plugin_system.manager import components

    Image.new("RGB", (8, 8), (200, 0, 0)).save(tmp_path / "a.png")
    path = tmp_path / f"train{suffix}"
    path.write_bytes(content)
    with pytest.raises(DataError) as raised:
        components().get("dataset", reader).factory().read(str(path))
    message = one_line(raised.value)
    assert message.startswith(str(path)) and detail in message, message


@pytest.mark.parametrize("content,detail", [
    (_bad_byte_on_line_2(CAPTIONS), "line 2"),
    (b'{"pair_id": "p0", "fig_cap\n', "no line parses"),
    (json.dumps(CAPTIONS, indent=1).encode(), "one JSON list"),
], ids=["not utf-8 on line 2", "torn everywhere", "a JSON list"])
def test_a_damaged_caption_file_for_instruct_is_a_one_line_data_error(tmp_path, content, detail):
    from medzoo.app.instruct.captions import read_captions

    path = tmp_path / "captions.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as raised:
        read_captions(path)
    message = one_line(raised.value)
    assert message.startswith(str(path)) and detail in message, message


# ---------------------------------------------------------------- 4. a truncated JPEG in the training data


def _recipe_with_a_torn_image(root: Path, on_bad_record: str):
    from medzoo.core.recipes.loading import load_recipe

    (root / "images").mkdir(parents=True)
    records = []
    for i in range(8):
        Image.new("RGB", (32, 32), (30 * i, 10, 10)).save(root / "images" / f"{i}.png")
        records.append({**LLAVA[0], "id": f"r{i}", "image": f"{i}.png"})
    (root / "images" / "torn.jpg").write_bytes(torn_jpeg())
    records.insert(3, {**LLAVA[0], "id": "torn", "image": "torn.jpg"})
    (root / "train.json").write_text(json.dumps(records))
    recipe = {
        "name": "torn-image", "model": TINY_MODEL, "data": {"on_bad_record": on_bad_record},
        "stages": [{
            "name": "instruct", "role": "instruct",
            "datasets": [{"name": "llava-json", "path": str(root / "train.json"), "image_root": str(root / "images")}],
            "tuning": {"vision": "frozen", "connector": "full", "language": "frozen"}, "optimizer": {"lr": 1e-3},
            "max_steps": 2, "global_batch_size": 8, "micro_batch_size": 8, "max_length": 64, "precision": "fp32",
            "seed": 0,
        }],
    }  # fmt: skip
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return load_recipe(root / "recipe.yaml").config


def test_a_truncated_training_jpeg_is_counted_and_skipped(tmp_path):
    from medzoo.app.training import train_run

    assert Image.open(io.BytesIO(torn_jpeg())).verify() is None  # the damage PIL's verify does not see
    notes: list[str] = []
    final = train_run(_recipe_with_a_torn_image(tmp_path / "data", "skip"), tmp_path / "run", echo=notes.append)
    assert (final / "medzoo_model.json").is_file()
    report = next(note for note in notes if "train.json" in note)
    assert "8 records kept, 1 skipped (image_corrupt: 1)" in report, notes


def test_a_truncated_jpeg_met_mid_stage_without_verification_is_one_line_naming_it(tmp_path):
    from medzoo.app.training import train_run
    from medzoo.core.errors import DataError

    recipe = _recipe_with_a_torn_image(tmp_path / "data", "skip")
    recipe.stages[0].datasets[0].options = {"verify_images": False}
    with pytest.raises(DataError) as error:
        train_run(recipe, tmp_path / "run", echo=lambda *_: None)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'data' / 'images' / 'torn.jpg'}: image of record")
    assert "cannot be decoded mid-stage" in message and "verify_images" in message


def test_a_truncated_training_jpeg_stops_with_on_bad_record_error(tmp_path):
    from medzoo.app.training import train_run

    with pytest.raises(DataError) as raised:
        train_run(_recipe_with_a_torn_image(tmp_path / "data", "error"), tmp_path / "run", echo=lambda _: None)
    message = one_line(raised.value)
    assert "train.json" in message and "record torn" in message and "torn.jpg" in message, message


# ---------------------------------------------------------------- 5. chat images


def _bomb(path: Path, monkeypatch) -> None:
    """An ordinary 64x64 PNG made a decompression bomb by lowering PIL's pixel limit below its size."""
    Image.new("RGB", (64, 64), (0, 0, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)


# case -> (how the file is made, what the message says)
CHAT_IMAGES: dict[str, tuple[Callable[[Path, object], object], str]] = {
    "missing": (lambda path, _: None, "No such file"),
    "a folder": (lambda path, _: path.mkdir(), "directory"),
    "not an image": (lambda path, _: path.write_text("just some notes"), "not an image"),
    "truncated": (lambda path, _: path.write_bytes(torn_jpeg()), "truncated"),
    "a decompression bomb": (_bomb, "decompression bomb"),
}


@pytest.mark.parametrize("case", list(CHAT_IMAGES))
def test_chat_reports_an_unusable_image_and_goes_on(saved_models, tmp_path, monkeypatch, case):
    path = tmp_path / "picture.jpg"
    make, detail = CHAT_IMAGES[case]
    make(path, monkeypatch)
    stdin = f"/image {path}\nWhat colour?\n"
    result = CliRunner().invoke(cli, ["chat", str(saved_models["full"]), "--max-new-tokens", "2"], input=stdin)
    assert result.exit_code == 0 and result.exception is None, result.output
    errors = [line[line.index("error: "):] for line in result.output.splitlines() if "error: " in line]
    assert len(errors) == 1 and str(path) in errors[0] and detail in errors[0], result.output
    assert "Traceback" not in result.output
    # the loop went on: the question after the bad image was answered
    assert result.output.count("ASSISTANT> ") == 1, result.output


def test_chat_with_an_unusable_image_option_is_one_line_before_loading(tmp_path, capsys):
    picture = tmp_path / "picture.png"
    picture.write_text("not a png")
    line = cli_error(capsys, "chat", tmp_path, "--image", picture)  # tmp_path is no model: not loaded first
    assert str(picture) in line and "not an image" in line, line
