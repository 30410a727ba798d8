"""``tuning: {vision: lora}`` on every registered vision tower adapts its attention and its MLP (open_clip's
``nn.MultiheadAttention``, whose query / key / value weights are not a Linear layer, included), one training step
changes those adapters, and the model saves, loads and merges back to the same outputs. Options that would adapt
nothing are refused in one line."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from PIL import Image
from torch import nn

from medzoo.core.errors import RecipeError
from medzoo.core.inference import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.adapters import adapted_modules, merge_adapters
from medzoo.core.model.build import build_model
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import collate
from medzoo.core.plugin_system.manager import components
from medzoo.plugins.tuning.lora import LoraTuning

TOWERS = components().names("vision_encoder")
ATTENTION = re.compile(r"(^|\.)(attn|self_attn|attention)\.")
MLP = re.compile(r"(^|\.)mlp\.")


def batch_of(model: MultimodalModel) -> dict[str, torch.Tensor]:
    messages = [Message("user", "<image>\nWhat does the image show?"), Message("assistant", "A chest radiograph.")]
    images = [Image.new("RGB", (40, 30), (200, 40, 40)), Image.new("RGB", (30, 40), (30, 60, 210))]
    samples = [processor_for(model).encode(messages, [image]) for image in images]
    return collate(samples, model.tokenizer.pad_token_id)


def logits(model: MultimodalModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**batch).logits


@pytest.mark.parametrize("tower", TOWERS)
def test_vision_lora_trains_every_towers_attention_and_mlp_and_round_trips(tower, tiny_model_spec, tmp_path):
    torch.manual_seed(0)
    model = build_model({**tiny_model_spec, "vision": {"name": tower}})
    batch = batch_of(model)
    model.requires_grad_(False)
    LoraTuning(r=4, alpha=8).apply(model.vision, "vision")
    model.trained_modules = {"vision"}
    trained = {name: p.detach().clone() for name, p in model.vision.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in name for name in trained)
    assert any(ATTENTION.search(name) for name in trained), f"{tower}: no adapter in the attention: {sorted(trained)}"
    assert any(MLP.search(name) for name in trained), f"{tower}: no adapter in the MLP: {sorted(trained)}"
    attentions = [name for name, m in model.vision.named_modules() if isinstance(m, nn.MultiheadAttention)]
    assert all(name.endswith(".base_layer") for name in attentions), f"{tower}: attention left unadapted"

    before = logits(model, batch)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(**batch).loss.backward()
    optimizer.step()
    after = dict(model.vision.named_parameters())
    changed = [name for name, value in trained.items() if not torch.equal(after[name].detach(), value)]
    assert any(ATTENTION.search(name) for name in changed) and any(MLP.search(name) for name in changed), changed
    tuned = logits(model, batch)
    assert not torch.equal(tuned, before)

    model.save_pretrained(str(tmp_path / "model"))
    loaded = MultimodalModel.from_pretrained(str(tmp_path / "model"))
    torch.testing.assert_close(logits(loaded, batch), tuned, rtol=0, atol=0)
    assert adapted_modules(loaded)["vision"][0] == "lora"
    assert merge_adapters(loaded) == ["vision"]
    torch.testing.assert_close(logits(loaded, batch), tuned, rtol=1e-4, atol=1e-5)
    loaded.save_pretrained(str(tmp_path / "merged"))  # every merged weight is a parameter again, and saved
    reloaded = MultimodalModel.from_pretrained(str(tmp_path / "merged"))
    assert adapted_modules(reloaded) == {}
    torch.testing.assert_close(logits(reloaded, batch), tuned, rtol=1e-4, atol=1e-5)


def test_lora_naming_no_layer_of_the_module_is_refused_in_one_line(tiny_model_spec):
    model = build_model({**tiny_model_spec, "vision": {"name": "open_clip"}})
    tower = copy.deepcopy(model.vision)
    with pytest.raises(RecipeError) as refused:
        LoraTuning(target_modules=["q_proj", "v_proj"]).apply(tower, "vision")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("tuning.options.vision.target_modules: ['q_proj', 'v_proj'] names no layer of the "
                              "vision module (OpenClipVisionEncoder), so LoRA would train nothing; expected names "
                              "of its layers, e.g. out_proj, c_fc, c_proj")
    assert not any(p.requires_grad for p in tower.parameters())


def test_qlora_on_the_open_clip_tower_adapts_its_attention_and_merges(tiny_model_spec, monkeypatch, tmp_path):
    """QLoRA (bitsandbytes replaced by the recorder: no 4-bit backend here) quantises the tower's MLP, keeps the
    nn.MultiheadAttention in full precision with its LoRA, and merges both kinds back to plain layers."""
    from support.recorded_bnb import Recorder, recorded_bnb

    from medzoo.plugins.tuning import four_bit
    from medzoo.plugins.tuning.qlora import QLoraTuning

    backend = four_bit.BitsAndBytes(bnb=recorded_bnb(Recorder()), devices=("cpu",))
    monkeypatch.setattr(four_bit, "four_bit_backend", lambda: backend)
    torch.manual_seed(0)
    model = build_model({**tiny_model_spec, "vision": {"name": "open_clip"}})
    batch = batch_of(model)
    model.requires_grad_(False)
    QLoraTuning(r=4, alpha=8).apply(model.vision, "vision")
    model.trained_modules = {"vision"}
    trained = {name for name, p in model.vision.named_parameters() if p.requires_grad}
    assert any(ATTENTION.search(name) for name in trained) and any(MLP.search(name) for name in trained)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(**batch).loss.backward()
    optimizer.step()
    tuned = logits(model, batch)
    assert merge_adapters(model) == ["vision"]
    assert not any(backend.is_quantised(m) for m in model.vision.modules())
    torch.testing.assert_close(logits(model, batch), tuned, rtol=1e-4, atol=1e-5)
    model.save_pretrained(str(tmp_path / "merged"))
    torch.testing.assert_close(logits(MultimodalModel.from_pretrained(str(tmp_path / "merged")), batch), tuned,
                               rtol=1e-4, atol=1e-5)
