"""Model composition, "model tester" style: tiny random models built from the plugins' tiny configs, checked
for where image features land, how batches are padded and labelled, decoding, checkpointing, dtypes and errors.
Parametrised over every registered vision encoder and connector (families through their examples).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from medzoo.core.errors import PluginError
from medzoo.core.inference import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.interfaces.vision_encoder import VisionEncoder
from medzoo.core.model.build import build_model
from medzoo.core.model.multimodal import ImageTokenMismatch, MultimodalModel
from medzoo.core.model.processor import IGNORE_INDEX, EncodedSample, collate
from medzoo.core.plugin_system.manager import components
from medzoo.testing import concrete_names

VISION_ENCODERS = concrete_names("vision_encoder")
CONNECTORS = concrete_names("connector")
LANGUAGE_MODELS = concrete_names("language_model")
PAIRS = [(vision, connector) for vision in VISION_ENCODERS for connector in CONNECTORS]
# every encoder with the v1.5 connector, and every connector with CLIP
STAR = [(vision, "mlp2x_gelu") for vision in VISION_ENCODERS] + [
    ("clip", connector) for connector in CONNECTORS if connector != "mlp2x_gelu"
]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the hub."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def spec(
    vision: str = "clip",
    connector: str = "mlp2x_gelu",
    language: str = "mistral",
    markup: str = "placeholder",
    dtype: str = "float32",
) -> dict:
    language_config = components().get("language_model", language).factory.tiny_config()
    if components().get("connector", connector).info.get("preserves_dim"):
        factory = components().get("vision_encoder", vision).factory
        language_config["hidden_size"] = factory.from_config(factory.tiny_config()).hidden_size
    return {
        "vision": {"name": vision},
        "connector": {"name": connector},
        "language": {"name": language, "config": language_config},
        "image_markup": markup,
        "dtype": dtype,
    }


def fresh(**choices: str) -> MultimodalModel:
    torch.manual_seed(0)
    return build_model(spec(**choices)).eval()


@functools.cache
def shared(**choices: str) -> MultimodalModel:
    """A model built once per choice of components, for tests that only read it."""
    return fresh(**choices)


def image(seed: int, size: tuple[int, int] = (56, 40)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def encode(
    model: MultimodalModel, question: str, answer: str | None, images: list[Image.Image]
) -> EncodedSample:
    messages = [Message("user", question)] + ([Message("assistant", answer)] if answer is not None else [])
    return processor_for(model).encode(messages, images, add_generation_prompt=answer is None)


def samples(model: MultimodalModel) -> list[EncodedSample]:
    """Two images, no image, one image in the middle of the question."""
    return [
        encode(model, "<image>\nCompare with <image> please.", "Both show a mass.", [image(1), image(2)]),
        encode(model, "Is a chest X-ray a CT?", "No.", []),
        encode(model, "Is there <image> a polyp?", "Yes, a small one.", [image(3)]),
    ]


def logits(model: MultimodalModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def expected_embeddings(model: MultimodalModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Independent of ``embed_inputs``: walk the ids and put image i's features on the i-th run of fill tokens."""
    ids = batch["input_ids"]
    with torch.no_grad():
        embeds = model.language.embed(ids).clone()
        features = model.encode_images(batch["pixel_values"]) if "pixel_values" in batch else None
    next_image = 0
    for row in range(ids.shape[0]):
        column = 0
        while column < ids.shape[1]:
            if ids[row, column] == model.markup.fill_id:
                embeds[row, column : column + model.num_image_tokens] = features[next_image]
                next_image, column = next_image + 1, column + model.num_image_tokens
            else:
                column += 1
    assert next_image == (0 if features is None else features.shape[0])
    return embeds


def fill_runs(model: MultimodalModel, ids: torch.Tensor) -> list[tuple[int, int]]:
    """(start, end) of each run of fill tokens in a 1-D id tensor."""
    positions = (ids == model.markup.fill_id).nonzero().flatten().tolist()
    runs: list[tuple[int, int]] = []
    for position in positions:
        if runs and runs[-1][1] == position:
            runs[-1] = (runs[-1][0], position + 1)
        else:
            runs.append((position, position + 1))
    return runs


# --- where image features go -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("vision", "connector"), PAIRS)
def test_features_are_spliced_exactly_at_image_positions(vision, connector):
    model = shared(vision=vision, connector=connector)
    assert isinstance(model.vision, VisionEncoder)
    batch = collate(samples(model), model.tokenizer.pad_token_id)
    for row, count in enumerate([2, 0, 1]):
        runs = fill_runs(model, batch["input_ids"][row])
        assert [end - start for start, end in runs] == [model.num_image_tokens] * count
    expected = expected_embeddings(model, batch)
    with torch.no_grad():
        assert torch.equal(model.embed_inputs(batch["input_ids"], batch["pixel_values"]), expected)
        reference = model.language.model(
            inputs_embeds=expected, attention_mask=batch["attention_mask"]
        ).logits
    assert torch.equal(logits(model, batch), reference)


@pytest.mark.parametrize(("vision", "connector"), STAR)
def test_the_image_changes_logits_only_from_its_position_on(vision, connector):
    model = shared(vision=vision, connector=connector)
    first = collate(
        [encode(model, "Is there <image> a polyp?", "Yes.", [image(3)])], model.tokenizer.pad_token_id
    )
    second = collate(
        [encode(model, "Is there <image> a polyp?", "Yes.", [image(4)])], model.tokenizer.pad_token_id
    )
    start = fill_runs(model, first["input_ids"][0])[0][0]
    before, after = logits(model, first), logits(model, second)
    assert torch.equal(before[:, :start], after[:, :start])
    assert (before[0, start:] - after[0, start:]).abs().amax(dim=-1).min() > 0  # every later position differs


def test_image_count_must_match_the_image_positions():
    model = shared()
    batch = collate(
        [encode(model, "<image>\nWhat is it?", "A cyst.", [image(1)])], model.tokenizer.pad_token_id
    )
    with pytest.raises(ImageTokenMismatch, match=f"{model.num_image_tokens} image positions.*2 image"):
        model(input_ids=batch["input_ids"], pixel_values=torch.cat([batch["pixel_values"]] * 2))


@pytest.mark.parametrize("vision", VISION_ENCODERS)
def test_v1_markup_wraps_patch_tokens_in_start_and_end(vision):
    model = shared(vision=vision, connector="linear", language="llama", markup="im_start_end")
    sample = encode(model, "<image>\nWhat modality is this?", "A CT scan.", [image(5)])
    ids, markup, n = sample.input_ids, model.markup, model.num_image_tokens
    assert markup.placeholder_id not in ids
    start = ids.index(markup.start_id)
    assert ids[start : start + n + 2] == [markup.start_id] + [markup.fill_id] * n + [markup.end_id]
    assert ids.count(markup.start_id) == ids.count(markup.end_id) == 1 and ids.count(markup.fill_id) == n
    assert all(label == IGNORE_INDEX for label in sample.labels[start : start + n + 2])
    batch = collate([sample], model.tokenizer.pad_token_id)
    with torch.no_grad():
        embeds = model.embed_inputs(batch["input_ids"], batch["pixel_values"])[0]
        features = model.encode_images(batch["pixel_values"])[0]
        table = model.language.input_embeddings().weight
    assert torch.equal(embeds[start + 1 : start + 1 + n], features)
    assert torch.equal(embeds[start], table[markup.start_id]) and torch.equal(
        embeds[start + n + 1], table[markup.end_id]
    )


# --- batching, padding and labels ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGE_MODELS)
def test_a_batch_mixing_samples_with_and_without_images_equals_each_sample_alone(language):
    model = shared(language=language)
    batch_samples = samples(model)
    batched = logits(model, collate(batch_samples, model.tokenizer.pad_token_id))
    for row, sample in enumerate(batch_samples):
        alone = logits(model, collate([sample], model.tokenizer.pad_token_id))[0]
        torch.testing.assert_close(batched[row, : len(sample)], alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("language", LANGUAGE_MODELS)
def test_left_and_right_padding_give_the_same_logits_at_real_tokens(language):
    model = shared(language=language)
    batch_samples = samples(model)
    right = collate(batch_samples, model.tokenizer.pad_token_id, padding_side="right")
    left = collate(batch_samples, model.tokenizer.pad_token_id, padding_side="left")
    assert not torch.equal(right["input_ids"], left["input_ids"])
    right_logits, left_logits = logits(model, right), logits(model, left)
    for row, sample in enumerate(batch_samples):
        torch.testing.assert_close(
            left_logits[row, -len(sample) :], right_logits[row, : len(sample)], atol=1e-5, rtol=1e-4
        )


@pytest.mark.parametrize("language", LANGUAGE_MODELS)
def test_labels_cover_only_the_replies(language):
    model = shared(language=language)
    messages = [
        Message("user", "<image>\nWhat is shown?"),
        Message("assistant", "A polyp."),
        Message("user", "How large?"),
        Message("assistant", "About 8 mm."),
    ]
    sample = processor_for(model).encode(messages, [image(6)])
    ids, labels = torch.tensor(sample.input_ids), torch.tensor(sample.labels)
    labelled = labels != IGNORE_INDEX
    assert torch.equal(labels[labelled], ids[labelled])
    assert not labelled[ids == model.markup.fill_id].any()
    first_target = int(labelled.nonzero()[0])  # the image and the first question come before it
    assert int((ids[:first_target] == model.markup.fill_id).sum()) == model.num_image_tokens
    assert "What is shown?" in model.tokenizer.decode(ids[:first_target])
    text = model.tokenizer.decode(ids[labelled])
    assert "A polyp." in text and "About 8 mm." in text
    assert "What is shown" not in text and "How large" not in text and "[INST]" not in text

    batch = collate([sample, encode(model, "Any finding?", "None.", [])], model.tokenizer.pad_token_id)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    with torch.no_grad():
        output = model(**batch)
    shifted_logits, shifted_labels = output.logits[:, :-1], batch["labels"][:, 1:]
    manual = F.cross_entropy(shifted_logits.reshape(-1, shifted_logits.shape[-1]), shifted_labels.reshape(-1))
    torch.testing.assert_close(output.loss, manual)


# --- decoding --------------------------------------------------------------------------------------------------


def greedy_without_cache(model: MultimodalModel, batch: dict[str, torch.Tensor], steps: int) -> torch.Tensor:
    embeds = model.embed_inputs(batch["input_ids"], batch.get("pixel_values"))
    mask = batch["attention_mask"]
    tokens = []
    with torch.no_grad():
        for _ in range(steps):
            out = model.language.model(inputs_embeds=embeds, attention_mask=mask, use_cache=False)
            token = out.logits[:, -1].argmax(dim=-1)
            tokens.append(token)
            embeds = torch.cat([embeds, model.language.embed(token[:, None])], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return torch.stack(tokens, dim=1)


@pytest.mark.parametrize("language", LANGUAGE_MODELS)
@pytest.mark.parametrize("connector", ["mlp2x_gelu", "multigranularity"])
def test_generate_with_kv_cache_equals_greedy_decoding_without_cache(language, connector):
    model = shared(language=language, connector=connector)
    prompts = [
        encode(model, "<image>\nDescribe the lesion and its margins.", None, [image(7)]),
        encode(model, "What now?", None, []),
        encode(model, "Is <image> normal?", None, [image(8)]),
    ]
    batch = collate(prompts, model.tokenizer.pad_token_id, padding_side="left")
    batch.pop("labels")
    cached = model.generate(**batch, max_new_tokens=6, do_sample=False)
    reference = greedy_without_cache(model, batch, 6)
    eos = model.tokenizer.eos_token_id
    for row in range(3):  # after EOS, generate pads the row
        expected = reference[row].tolist()
        expected = expected[: expected.index(eos) + 1] if eos in expected else expected
        assert cached[row, : len(expected)].tolist() == expected


# --- training mechanics and dtypes -----------------------------------------------------------------------------


@pytest.mark.parametrize("vision", VISION_ENCODERS)
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(vision):
    model = fresh(vision=vision).train()
    batch = collate(samples(model), model.tokenizer.pad_token_id)
    calls = {"vision": 0, "language": 0}
    for name, block_class in (
        ("vision", model.vision.block_class),
        ("language", model.language.decoder_layer_class),
    ):
        for block in [module for module in model.modules() if isinstance(module, block_class)]:
            for child in block.children():  # recomputation may call forward directly, so count the children
                child.register_forward_pre_hook(
                    lambda *_, name=name: calls.__setitem__(name, calls[name] + 1)
                )

    def loss_and_gradients() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    plain_loss, plain = loss_and_gradients()
    plain_calls = dict(calls)
    model.set_gradient_checkpointing(True)
    checkpointed_loss, checkpointed = loss_and_gradients()
    for name in calls:  # some block parts run again in the backward pass (recomputation may stop early)
        assert calls[name] - plain_calls[name] > plain_calls[name], name
    assert torch.equal(plain_loss, checkpointed_loss)
    assert plain.keys() == checkpointed.keys() and any(key.startswith("vision.") for key in plain)
    for key in plain:
        torch.testing.assert_close(checkpointed[key], plain[key], atol=1e-6, rtol=1e-5, msg=key)


@pytest.mark.parametrize(("vision", "connector"), STAR)
def test_bfloat16_forward_and_generate_on_cpu(vision, connector):
    model32 = shared(vision=vision, connector=connector)
    model16 = fresh(vision=vision, connector=connector, dtype="bfloat16")
    assert {p.dtype for p in model16.parameters()} == {torch.bfloat16}
    batch = collate(samples(model16), model16.tokenizer.pad_token_id)
    assert batch["pixel_values"].dtype == torch.float32
    half, full = logits(model16, batch), logits(model32, batch)
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    real = batch["attention_mask"].bool()
    error = (half.float() - full)[real].abs().max() / full[real].abs().max()
    assert error < 0.05
    prompt = collate(
        [encode(model16, "<image>\nWhat is it?", None, [image(9)])], model16.tokenizer.pad_token_id
    )
    prompt.pop("labels")
    assert model16.generate(**prompt, max_new_tokens=2, min_new_tokens=2, do_sample=False).shape == (1, 2)


# --- token-reducing connectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("vision", VISION_ENCODERS)
def test_token_reducing_connector_shortens_the_image_run_and_runs(vision):
    model = shared(vision=vision, connector="multigranularity")
    assert model.num_image_tokens < model.vision.num_tokens
    batch = collate(samples(model), model.tokenizer.pad_token_id)
    assert [end - start for start, end in fill_runs(model, batch["input_ids"][0])] == [
        model.num_image_tokens
    ] * 2
    with torch.no_grad():
        output = model(**batch)
    assert torch.isfinite(output.loss)
    assert output.logits.shape[:2] == batch["input_ids"].shape


# --- errors ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "name", "message"),
    [
        ("vision", "clipp", "unknown vision_encoder 'clipp' (did you mean \"clip\"?)"),
        ("connector", "mlp2x_gelus", "unknown connector 'mlp2x_gelus'"),
        ("connector", "", "unknown connector ''"),
        ("language", "mistrall", "unknown language_model 'mistrall' (did you mean \"mistral\"?)"),
    ],
)
def test_unknown_component_is_a_one_line_plugin_error(section, name, message):
    model_spec = spec()
    model_spec[section]["name"] = name
    with pytest.raises(PluginError) as caught:
        build_model(model_spec)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


@pytest.mark.parametrize("where", ["missing", "empty"])
@pytest.mark.parametrize("vision", VISION_ENCODERS)
def test_unloadable_vision_weights_are_a_one_line_plugin_error(vision, where, tmp_path):
    source = tmp_path / where
    if where == "empty":
        source.mkdir()
    model_spec = spec(vision=vision)
    model_spec["vision"]["pretrained"] = str(source)
    with pytest.raises(PluginError) as caught:
        build_model(model_spec)
    message = str(caught.value)
    assert str(source) in message and "\n" not in message


def test_missing_connector_weights_are_a_one_line_plugin_error(tmp_path):
    model_spec = spec()
    model_spec["connector"]["pretrained"] = str(tmp_path)
    with pytest.raises(PluginError, match=r"connector: weights file .*connector.safetensors' not found"):
        build_model(model_spec)


def test_shrink_builds_from_the_tiny_config_instead_of_pretrained_weights(tmp_path):
    model_spec = spec()
    model_spec["vision"]["pretrained"] = str(tmp_path / "missing")
    assert isinstance(build_model(model_spec, shrink=True).vision, VisionEncoder)
