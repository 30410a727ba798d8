"""Every registered vision encoder, language-model family and connector (family members through their examples),
each composed with the tiny defaults of the other two: one optimizer step changes the trained module and lowers
nothing to NaN, the model folder saves and loads back with identical logits, and greedy generation gives the same
tokens before and after the round trip."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from medzoo.core.inference import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.build import build_model
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import collate
from medzoo.core.plugin_system.manager import components
from medzoo.testing import concrete_names

DEFAULTS = {"vision": "clip", "connector": "mlp2x_gelu", "language": "mistral"}
KIND_OF = {"vision": "vision_encoder", "connector": "connector", "language": "language_model"}


CASES = [(module, name) for module, kind in KIND_OF.items() for name in concrete_names(kind)]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def composed(module: str, name: str) -> MultimodalModel:
    choice = {**DEFAULTS, module: name}
    language = {"name": choice["language"]}
    if components().get("connector", choice["connector"]).info.get("preserves_dim"):
        factory = components().get("vision_encoder", choice["vision"]).factory
        width = factory.from_config(factory.tiny_config()).hidden_size
        config = components().get("language_model", choice["language"]).factory.tiny_config()
        language["config"] = {**config, "hidden_size": width}
    torch.manual_seed(0)
    return build_model({"vision": {"name": choice["vision"]}, "connector": {"name": choice["connector"]},
                        "language": language})


def batch_of(model: MultimodalModel) -> dict[str, torch.Tensor]:
    messages = [Message("user", "<image>\nWhat does the image show?"), Message("assistant", "A chest radiograph.")]
    images = [Image.new("RGB", (40, 30), (200, 40, 40)), Image.new("RGB", (30, 40), (30, 60, 210))]
    samples = [processor_for(model).encode(messages, [image]) for image in images]
    return collate(samples, model.tokenizer.pad_token_id)


@pytest.mark.parametrize(("module", "name"), CASES, ids=[f"{m}:{n}" for m, n in CASES])
def test_compose_train_save_load_generate(module, name, tmp_path):
    model = composed(module, name).train()
    trained = getattr(model, module)
    if not list(trained.parameters()):  # identity: nothing of its own to train, so train the language model
        assert name == "identity"
        trained = model.language
    for other in {"vision", "connector", "language"}:
        getattr(model, other).requires_grad_(getattr(model, other) is trained)
    before = {key: value.clone() for key, value in trained.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    batch = batch_of(model)
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    after = trained.state_dict()
    assert any(not torch.equal(before[key], after[key]) for key in before), f"one step left {module} {name} as it was"
    assert all(torch.isfinite(value).all() for value in after.values() if value.is_floating_point())

    model.eval()
    model.save_pretrained(str(tmp_path / "model"))
    loaded = MultimodalModel.from_pretrained(str(tmp_path / "model")).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)
    prompt = processor_for(model).encode([Message("user", "<image>\nWhat does the image show?")],
                                         [Image.new("RGB", (40, 30), (200, 40, 40))], add_generation_prompt=True)
    inputs = collate([prompt], model.tokenizer.pad_token_id)
    inputs.pop("labels", None)
    with torch.no_grad():
        ours = model.generate(**inputs, max_new_tokens=4, do_sample=False)
        theirs = loaded.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert ours.shape[-1] >= 1 and torch.equal(ours, theirs)
