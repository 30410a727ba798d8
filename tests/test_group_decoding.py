"""Grouped decoding (core/inference/group_decoding.py, decode_step.py): rows that share a prompt are prefilled once
and decoded by the lean loop, and answer token for token what the engine's ``generate`` path answers for the same
rows and seeds: sampled, greedy and top-p rows, prompts of different lengths (left padding), with and without
images, stopping on end of sequence, stop strings and budgets; the expanded cache gives the logits of prefilling
every copy; the Llama-family step gives the model's own logits bit for bit."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from medzoo.core.inference import InferenceEngine, RowRequest, SamplingSettings
from medzoo.core.inference import decode_step as decode_step_module
from medzoo.core.inference.decode_step import llama_family_step
from medzoo.core.inference.group_decoding import expanded_cache, unsupported_reason
from medzoo.core.inference.text_stream import rust_decoder
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.processor import collate
from medzoo.testing import TINY_MODEL, single_thread


@pytest.fixture(scope="module")
def engine():
    from medzoo.core.model.build import build_model

    torch.manual_seed(0)
    with single_thread():
        yield InferenceEngine(build_model(TINY_MODEL))


def prompts(engine: InferenceEngine) -> list:
    """Three prompts of different lengths, two with an image."""
    red, blue = Image.new("RGB", (32, 32), (220, 30, 30)), Image.new("RGB", (40, 24), (30, 40, 220))
    return [engine.encode([Message("user", "<image>\nWhat is shown?")], [red]),
            engine.encode([Message("user", "Say something about the colon, please, at some length.")], []),
            engine.encode([Message("user", "<image>\nWhere?")], [blue])]


def rows_for(samples: list, settings_of) -> list[RowRequest]:
    """Three rows per prompt (the same sample object: one group), row k of prompt p with ``settings_of(p, k)``."""
    return [RowRequest(sample, settings_of(p, k)) for p, sample in enumerate(samples) for k in range(3)]


def answers(completions) -> list[tuple]:
    return [(c.token_ids, c.text, c.finish_reason, c.completion_tokens) for c in completions]


SETTINGS = {
    "sampled": lambda p, k: SamplingSettings(max_new_tokens=7, temperature=1.0, seed=100 * p + k),
    "greedy": lambda p, k: SamplingSettings(max_new_tokens=7),
    "mixed": lambda p, k: (SamplingSettings(max_new_tokens=4 + k, temperature=0.7, top_p=0.8, seed=10 * p + k)
                           if k else SamplingSettings(max_new_tokens=6)),
}


@pytest.mark.parametrize("kind", sorted(SETTINGS))
@pytest.mark.parametrize("lean_step", [True, False], ids=["llama-family-step", "model-forward"])
def test_grouped_rows_answer_what_generate_answers(engine, kind, lean_step, monkeypatch):
    samples = prompts(engine)
    assert llama_family_step(engine.model.language.model, torch.zeros(1, 1, dtype=torch.long), 1) is not None
    if not lean_step:
        monkeypatch.setattr(decode_step_module, "llama_family_step", lambda *args: None)
    with torch.no_grad():
        expected = answers(engine.run(rows_for(samples, SETTINGS[kind])))
        got = answers(engine.run_grouped(rows_for(samples, SETTINGS[kind])))
    assert got == expected
    assert all(tokens for tokens, *_ in got)
    if kind == "sampled":
        assert len({tokens for tokens, *_ in got}) > 3  # sampled rows differ within a group
    if kind == "mixed":  # each row keeps its own budget
        budgets = [6, 5, 6] * 3
        assert all(count <= budget for (*_, count), budget in zip(got, budgets, strict=True))
        assert {budget for (_, _, reason, count), budget in zip(got, budgets, strict=True)
                if reason == "length" and count == budget} == {5, 6}


def test_each_distinct_prompt_is_prefilled_once(engine, monkeypatch):
    samples = prompts(engine)
    seen = []
    embed = engine.model.embed_inputs

    def counting(input_ids, *args, **kwargs):
        seen.append(input_ids.shape[0])
        return embed(input_ids, *args, **kwargs)

    monkeypatch.setattr(engine.model, "embed_inputs", counting)
    with torch.no_grad():
        engine.run_grouped(rows_for(samples, SETTINGS["sampled"]))
    assert seen == [3]  # 9 rows, 3 prompts, one prefill


def favour_end_after(model, calls: int):
    """A hook making end of sequence the only choice from the ``calls``-th language-model head call on (the
    prefill is the first), on both paths alike."""
    eos = model.tokenizer.eos_token_id
    count = [0]

    def hook(_module, _inputs, logits):
        count[0] += 1
        return logits.index_fill(-1, torch.tensor([eos]), 1e4) if count[0] >= calls else logits

    return model.language.model.lm_head.register_forward_hook(hook)


def test_rows_stop_at_end_of_sequence_stop_strings_and_budgets(engine):
    samples = prompts(engine)[:1]
    with torch.no_grad():
        free = engine.run_grouped(rows_for(samples, SETTINGS["sampled"]))
    text = free[1].text
    stop = text[2:4]
    assert len(text) > 4 and stop.strip()

    def settings_of(p, k):  # row 1 draws what free row 1 drew, and stops at a piece of its text
        return SamplingSettings(max_new_tokens=2 if k == 2 else 7, temperature=1.0, seed=k, stop=(stop,) * (k == 1))

    results = {}
    for generate in (engine.run, engine.run_grouped):
        with torch.no_grad():
            _, cut, short = generate(rows_for(samples, settings_of))
        hook = favour_end_after(engine.model, calls=5)
        try:
            with torch.no_grad():
                ended = generate(rows_for(samples, settings_of))[0]
        finally:
            hook.remove()
        assert (ended.finish_reason, ended.completion_tokens) == ("stop", 5)  # 4 tokens, then end of sequence
        assert ended.token_ids[-1] == engine.model.tokenizer.eos_token_id
        assert cut.finish_reason == "stop" and cut.text == text[: text.find(stop)].strip()
        assert len(cut.token_ids) < len(free[1].token_ids)
        assert (short.finish_reason, short.completion_tokens) == ("length", 2)
        results[generate.__name__] = answers([ended, cut, short])
    assert results["run"] == results["run_grouped"]


def test_the_expanded_cache_gives_the_logits_of_prefilling_every_copy(engine):
    model, samples = engine.model, prompts(engine)
    language = model.language.model
    owners = torch.tensor([0, 0, 1, 2, 2, 2])

    def prefill(batch_samples):
        batch = collate(batch_samples, model.tokenizer.pad_token_id, "left")
        padding = batch["attention_mask"]
        embeds = model.embed_inputs(batch["input_ids"], batch.get("pixel_values"))
        positions = (padding.cumsum(-1) - 1).masked_fill(padding == 0, 0)
        out = language(inputs_embeds=embeds, attention_mask=padding, position_ids=positions, use_cache=True)
        return out, padding

    def step(cache, padding, token):
        mask = torch.cat([padding, torch.ones(len(padding), 1, dtype=padding.dtype)], dim=-1)
        positions = padding.sum(-1, keepdim=True)
        return language(input_ids=token, attention_mask=mask, position_ids=positions, past_key_values=cache,
                        use_cache=True).logits[:, -1]

    token = torch.full((len(owners), 1), 42)
    with torch.no_grad():
        shared, padding = prefill(samples)
        cache = expanded_cache(shared.past_key_values, owners, padding.shape[1] + 4)
        expanded = step(cache, padding[owners], token)
        copies, copy_padding = prefill([samples[i] for i in owners.tolist()])
        every_copy = step(copies.past_key_values, copy_padding, token)
    assert torch.equal(shared.logits[owners, -1], shared.logits[:, -1][owners])
    assert torch.allclose(shared.logits[owners, -1], copies.logits[:, -1], atol=1e-5)
    assert torch.allclose(expanded, every_copy, atol=1e-5)


def test_the_llama_family_step_gives_the_forwards_logits_bit_for_bit(engine):
    model, samples = engine.model, prompts(engine)
    language = model.language.model
    batch = collate(samples, model.tokenizer.pad_token_id, "left")
    padding = batch["attention_mask"]
    with torch.no_grad():
        embeds = model.embed_inputs(batch["input_ids"], batch.get("pixel_values"))
        positions = (padding.cumsum(-1) - 1).masked_fill(padding == 0, 0)
        out = language(inputs_embeds=embeds, attention_mask=padding, position_ids=positions, use_cache=True)
        owners = torch.arange(len(samples))
        ours = expanded_cache(out.past_key_values, owners, padding.shape[1] + 3)
        theirs = expanded_cache(out.past_key_values, owners, padding.shape[1] + 3)
        first = padding.sum(-1, keepdim=True)
        lean = llama_family_step(language, first, 3)
        mask = torch.cat([padding.bool(), torch.ones(len(samples), 3, dtype=torch.bool)], dim=-1)[:, None, None]
        tokens = torch.tensor([5, 17, 99])
        for index in range(3):
            keys = padding.shape[1] + index + 1
            expected = language(input_ids=tokens[:, None], attention_mask=mask[..., :keys],
                                position_ids=first + index, past_key_values=theirs, use_cache=True).logits[:, -1]
            assert torch.equal(lean(tokens, index, mask[..., :keys], ours), expected)
            tokens = expected.argmax(-1)


def test_models_the_lean_paths_cannot_drive_are_left_to_generate(engine):
    language = engine.model.language.model
    first = torch.zeros(1, 1, dtype=torch.long)
    hook = language.model.layers[0].mlp.register_forward_hook(lambda *args: None)
    try:
        assert llama_family_step(language, first, 1) is None  # a hook it would skip
    finally:
        hook.remove()
    language.train()
    try:
        assert llama_family_step(language, first, 1) is None
    finally:
        language.eval()
    assert unsupported_reason(language, 64) is None
    window = language.config.sliding_window
    language.config.sliding_window = 8
    try:
        assert "sliding window 8" in unsupported_reason(language, 64)
        samples = prompts(engine)
        with torch.no_grad():  # answered by generate: the same answers
            assert answers(engine.run_grouped(rows_for(samples, SETTINGS["sampled"]))) == \
                answers(engine.run(rows_for(samples, SETTINGS["sampled"])))
    finally:
        language.config.sliding_window = window


def test_eager_attention_decodes_through_the_models_forward_with_an_additive_mask(engine):
    language = engine.model.language.model
    language.set_attn_implementation("eager")
    try:
        assert llama_family_step(language, torch.zeros(1, 1, dtype=torch.long), 1) is None
        samples = prompts(engine)
        with torch.no_grad():
            expected = answers(engine.run(rows_for(samples, SETTINGS["mixed"])))
            assert answers(engine.run_grouped(rows_for(samples, SETTINGS["mixed"]))) == expected
    finally:
        language.set_attn_implementation("sdpa")


def test_the_tokenizers_backend_decodes_what_the_tokenizer_decodes(engine):
    tokenizer = engine.model.tokenizer
    backend = rust_decoder(tokenizer)
    assert backend is not None
    ids = torch.randint(0, len(tokenizer), (20, 12), generator=torch.Generator().manual_seed(0)).tolist()
    for row in ids:
        assert backend.decode(row, skip_special_tokens=True) == tokenizer.decode(row, skip_special_tokens=True)


@pytest.mark.parametrize("language", ["llama", "qwen2", "qwen3", "phi3", "gemma2"])
def test_other_language_models_answer_what_generate_answers(language):
    """Llama and Qwen2 take the Llama-family step (Qwen2's projections have biases); Qwen3 and Phi-3 step through
    their own forward; the tiny Gemma2's sliding window (16) is shorter than the generation, so generate answers."""
    from medzoo.core.model.build import build_model

    torch.manual_seed(0)
    with single_thread():
        engine = InferenceEngine(build_model({**TINY_MODEL, "language": {"name": language}}))
        lean = llama_family_step(engine.model.language.model, torch.zeros(1, 1, dtype=torch.long), 1)
        assert (lean is not None) == (language in ("llama", "qwen2"))
        samples = prompts(engine)
        with torch.no_grad():
            expected = answers(engine.run(rows_for(samples, SETTINGS["mixed"])))
            assert answers(engine.run_grouped(rows_for(samples, SETTINGS["mixed"]))) == expected
