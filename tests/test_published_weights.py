"""`medzoo eval VARIANT`: a registry variant resolves to its published weights, imported once into the cache.

The hub is faked: ``huggingface_hub.snapshot_download`` serves tiny checkpoints written here in the official
layouts (no network), so the real resolution path runs down to the download call.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from support import official_llava as helpers
from transformers import LlamaConfig, LlamaForCausalLM

from medzoo.app.cli.main import cli, main
from medzoo.app.interop import InteropError
from medzoo.app.interop.delta import make_delta_dirs
from medzoo.app.interop.published_weights import TOKENIZER_PATTERNS, resolve_model
from medzoo.app.zoo_variants import load_catalog
from medzoo.core.inference import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.multimodal import MultimodalModel

CATALOG = load_catalog()
V15 = CATALOG.variant("llava-med-v1.5").weights[0]
V10 = CATALOG.variant("llava-med-v1.0").weights[0]


class FakeHub:
    """Repository id -> local directory; records every download request."""

    def __init__(self) -> None:
        self.repos: dict[str, Path] = {}
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def snapshot_download(self, repo_id: str, allow_patterns=None, **_) -> str:
        self.calls.append((repo_id, tuple(allow_patterns or ())))
        if repo_id not in self.repos:
            raise OSError(f"offline: {repo_id} is not in the local cache")
        return str(self.repos[repo_id])

    def list_repo_files(self, repo_id: str, **_) -> list[str]:
        return [path.name for path in self.repos[repo_id].iterdir()] if repo_id in self.repos else []


@pytest.fixture
def hub(monkeypatch, tmp_path) -> FakeHub:
    fake = FakeHub()
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", fake.list_repo_files)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MEDZOO_IMPORT_CACHE", str(tmp_path / "cache"))
    return fake


@pytest.fixture(scope="module")
def tower_dir(tmp_path_factory) -> Path:
    torch.manual_seed(11)
    return helpers.save_tower(helpers.tiny_clip(), tmp_path_factory.mktemp("tower"))


@pytest.fixture(scope="module")
def v15_repos(tmp_path_factory, tower_dir):
    root = tmp_path_factory.mktemp("v15")
    source = helpers.official_model("mistral", tower_dir=tower_dir, seed=3)
    checkpoint = source.save(root / "checkpoint")
    tokenizer = root / "tokenizer"
    helpers.tiny_tokenizer().save_pretrained(str(tokenizer))
    return source, {V15.source: checkpoint, V15.tokenizer: tokenizer}


def image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(4).integers(0, 255, (30, 44, 3), dtype=np.uint8))


def assert_same_logits(model: MultimodalModel, source, messages) -> None:
    sample = processor_for(model).encode(messages, [image()], add_generation_prompt=True)
    with torch.no_grad():
        ours = model(torch.tensor([sample.input_ids]), pixel_values=sample.pixel_values).logits[0]
    ids = sample.input_ids
    if model.markup.kind == "placeholder":
        ids = helpers.official_ids(ids, model.markup.fill_id)
    torch.testing.assert_close(ours, source.logits(ids, sample.pixel_values), atol=1e-5, rtol=0)


def test_eval_by_variant_name_imports_the_published_v15_weights_once(hub, v15_repos, tmp_path):
    source, repos = v15_repos
    hub.repos.update(repos)
    from medzoo.app.data_synth.generate import synthesize

    synth = tmp_path / "synth"
    synthesize(synth, seed=1, sizes={"train": 0, "val": 0, "test": 10})
    result = CliRunner().invoke(cli, [
        "eval", "llava-med-v1.5", "--benchmark", "vqa-rad", "--data", str(synth / "vqa_rad" / "test.json"),
        "--image-root", str(synth / "images"), "--output-dir", str(tmp_path / "eval"),
        "--option", "max_new_tokens=2", "--batch-size", "8",
    ])
    assert result.exit_code == 0, result.output
    assert f"importing {V15.source} (llava-med-v1.5)" in result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["model_id"] == "llava-med-v1.5" and "closed_accuracy" in metrics
    # the checkpoint in full, and only the tokenizer files of the tokenizer repository
    assert {repo for repo, _ in hub.calls} == {V15.source, V15.tokenizer}
    assert (V15.tokenizer, tuple(TOKENIZER_PATTERNS)) in hub.calls

    calls = len(hub.calls)
    directory = resolve_model("llava-med-v1.5", echo=lambda line: pytest.fail(f"imported again: {line}"))
    assert len(hub.calls) == calls, "a cached import must not touch the hub"
    assert directory.parent == tmp_path / "cache"
    model = MultimodalModel.from_pretrained(str(directory))
    assert model.spec["language"] == {"name": "mistral", "template": "mistral_instruct"}
    assert model.vision.transform.pad_greyscale == "grey"  # v1.5's model_vqa.py pads mode L with one grey level
    assert_same_logits(model, source, [Message("user", "<image>\nIs there an effusion?")])


@pytest.fixture(scope="module")
def v10_repos(tmp_path_factory, tower_dir):
    """A LLaMA base and a LLaVA-Med v1.0 delta against it (the official release form), via make-delta."""
    root = tmp_path_factory.mktemp("v10")
    target = helpers.official_model("llama", tower_dir=tower_dir, projector="linear", v1_markup=True, seed=5)
    with torch.no_grad():
        for parameter in target.lm.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    target_dir = target.save(root / "target", with_vision=False)
    tokenizer = helpers.tiny_tokenizer()
    base = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer) - 4, hidden_size=64, intermediate_size=128,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=256))
    base.save_pretrained(str(root / "base"))
    tokenizer.save_pretrained(str(root / "base"))
    make_delta_dirs(str(root / "base"), str(target_dir), root / "delta")
    return target, root / "base", root / "delta"


def test_delta_variant_is_added_to_its_base_and_imported_with_the_v10_recipe(hub, v10_repos):
    target, base_dir, delta_dir = v10_repos
    hub.repos.update({V10.base: base_dir, V10.source: delta_dir})
    lines: list[str] = []
    directory = resolve_model("llava-med-v1.0", echo=lines.append)
    assert lines == [f"applying the delta {V10.source} to {V10.base} into {directory}"]
    model = MultimodalModel.from_pretrained(str(directory))
    assert model.spec["language"] == {"name": "llama", "template": "llava_med_v1"}
    assert model.markup.kind == "im_start_end" and model.spec["connector"]["name"] == "linear"
    assert_same_logits(model, target, [Message("user", "What does the slide show?\n<image>")])


def test_delta_base_can_be_a_local_directory(hub, v10_repos):
    _, base_dir, delta_dir = v10_repos
    hub.repos[V10.source] = delta_dir
    directory = resolve_model("llava-med-v1.0", delta_base=str(base_dir), echo=lambda _: None)
    assert MultimodalModel.from_pretrained(str(directory)).markup.kind == "im_start_end"
    assert [repo for repo, _ in hub.calls] == [V10.source]


def test_a_model_directory_is_used_as_it_is(hub, tmp_path):
    assert resolve_model(str(tmp_path)) == tmp_path
    assert hub.calls == []


def run_main(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    return exited.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("llava-med-v15", r"^error: llava-med-v15: no such model directory, and not a variant of .*registry\.yaml "
                          r"\(did you mean \"llava-med-v1\.5\"\?\); variants with published weights: llava-med-v1\.5, "),
        ("llava-med-v1.5-lora", r"^error: variant 'llava-med-v1\.5-lora' has no published weights in .*; train it with "
                                r"`medzoo train llava-med-v1\.5-lora --output-dir DIR`"),
        ("llava-med-v1.5", r"^error: microsoft/llava-med-v1\.5-mistral-7b: cannot download the checkpoint: offline"),
    ],
)
def test_unresolvable_models_are_one_line_errors(hub, capsys, tmp_path, model, expected):
    data = tmp_path / "test.json"  # the benchmark's data is checked before the model is looked up
    data.write_text("[]")
    code, err = run_main(capsys, "eval", model, "--benchmark", "vqa-rad", "--data", str(data),
                         "--output-dir", str(tmp_path / "out"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.match(expected, err), err


def test_resolution_errors_are_interop_errors(hub):
    with pytest.raises(InteropError):
        resolve_model("no-such-model")
