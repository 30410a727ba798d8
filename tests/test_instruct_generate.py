"""Self-instruct generation: caption reading, parsing, cache, and end-to-end runs against a scripted fake
OpenAI-compatible server (malformed replies, 429 + Retry-After, timeouts, 5xx, resume) and a tiny local model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import fake_openai as openai_fake_server
from support.hang_guard import SUBPROCESS_HANG_S, wait_for_async

from medzoo.app.instruct.backend_factory import create_backend
from medzoo.app.instruct.cache import ResponseCache, cache_key
from medzoo.app.instruct.captions import read_captions
from medzoo.app.instruct.generate import GenerationSettings, generate_instructions
from medzoo.app.instruct.parsing import image_first, parse_conversation, split_turns
from medzoo.app.instruct.prompts import FEW_SHOT_EXAMPLES, build_generation_messages
from medzoo.app.instruct.runner import RequestRunner, RetryPolicy
from medzoo.core.errors import DataError, MedzooError, PluginError
from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER
from medzoo.core.interfaces.instruct_backend import BackendReply
from medzoo.plugins.instruct.backends.openai_backend import (
    OpenAIBackend,
    chat_completions_url,
    parse_retry_after,
)

FAST = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05, timeout=5.0)


@pytest.fixture(scope="module")
def fake():
    """The scripted OpenAI-compatible server module (tests/support/fake_openai.py)."""
    return openai_fake_server


def conversation_reply(body: dict) -> str:
    """Answers like a generator would; captions carrying marker words trigger the filters."""
    caption = body["messages"][-1]["content"]
    if "GARBLE" in caption:
        return "I am sorry, I cannot write that."
    if "LEAK" in caption:
        return "User: What does the caption say?\nAssistant: The caption says it is a scan."
    first_words = " ".join(caption.split("\n")[1].split()[:4])
    return (
        "User: What does the image show?\nAssistant: It shows " + first_words + ".\n"
        "User: Is this mentioned in the context?\nAssistant: Yes, the context mentions it.\n"
        "User: What stands out?\nAssistant: A rounded bright area near the centre."
    )


def write_captions(path: Path, count: int, markers: dict[int, str] | None = None) -> Path:
    markers = markers or {}
    with path.open("w") as handle:
        for index in range(count):
            record = {
                "pair_id": f"PMC{index:04d}_F1",
                "image": f"cxr/train_{index:06d}.png",
                "fig_label": "Figure 1",
                "fig_caption": f"Chest radiograph number {index} with an opacity. {markers.get(index, '')}",
                "in_text_mention": [{"tokens": f"Figure 1 shows case {index}."}] if index % 2 else [f"Case {index}."],
                "domain": "cxr",
            }
            handle.write(json.dumps(record) + "\n")
    return path


# ---------------------------------------------------------------- captions and prompts


def test_read_captions_accepts_both_mention_forms_and_counts_bad_records(tmp_path):
    path = write_captions(tmp_path / "captions.jsonl", 2)
    with path.open("a") as handle:
        handle.write("{not json\n")
        handle.write(json.dumps({"pair_id": "X", "fig_caption": ""}) + "\n")
        handle.write(json.dumps({"pair_id": "PMC0000_F1", "fig_caption": "again"}) + "\n")
        handle.write(json.dumps({"pair_id": "Y", "fig_caption": "ok", "in_text_mention": [3]}) + "\n")
    records, report = read_captions(path)
    assert [r.pair_id for r in records] == ["PMC0000_F1", "PMC0001_F1"]
    assert records[0].mentions == ("Case 0.",) and records[1].mentions == ("Figure 1 shows case 1.",)
    assert report.total_skipped == 4
    assert report.skipped["duplicate pair_id"] == 1 and report.skipped["invalid json"] == 1
    with pytest.raises(DataError, match=r"line 3: invalid json"):
        read_captions(path, on_bad_record="error")


def test_prompt_has_rules_five_domain_examples_and_mentions_only_when_asked(tmp_path):
    records, _ = read_captions(write_captions(tmp_path / "c.jsonl", 1))
    assert {e.domain for e in FEW_SHOT_EXAMPLES} == {"cxr", "ct", "mri", "histology", "gross"}
    plain = build_generation_messages(records[0])
    inline = build_generation_messages(records[0], inline_mentions=True)
    assert plain[0]["role"] == "system" and "caption" in plain[0]["content"]
    assert len(plain) == 2 + 2 * len(FEW_SHOT_EXAMPLES)
    assert "Case 0." not in plain[-1]["content"] and "Case 0." in inline[-1]["content"]
    for example_reply in plain[2:-1:2]:  # the demonstrations themselves survive the output filters
        parsed = parse_conversation(example_reply["content"])
        assert parsed.reason is None and not parsed.dropped_turns


# ---------------------------------------------------------------- parsing


def test_split_turns_handles_marker_variants_and_counts_orphans():
    text = (
        "Here is the conversation:\n**User:** What is this?\nAssistant: A CT slice.\n"
        "Human: And the organ?\nGPT: The liver,\nwhich is enlarged.\nAssistant: Nothing else.\nUser: Dangling?"
    )
    pairs, dropped = split_turns(text)
    assert pairs == [("What is this?", "A CT slice."), ("And the organ?", "The liver,\nwhich is enlarged.\nNothing else.")]
    assert dropped == {"question without an answer": 1}


def test_parse_drops_turns_naming_the_source_and_empty_conversations():
    parsed = parse_conversation("User: What is shown?\nAssistant: A lung.\nUser: What does the caption say?\nAssistant: X.")
    assert parsed.turns == [("What is shown?", "A lung.")]
    assert parsed.dropped_turns == {"mentions caption or context": 1}
    assert parse_conversation("User: Per the context?\nAssistant: Yes.").reason == "every turn mentioned the caption or context"
    assert parse_conversation("no markers at all").reason == "no user/assistant turns found"


def test_image_placement_is_seeded_per_record_and_uses_both_sides():
    placements = [image_first(0, f"id{i}") for i in range(40)]
    assert placements == [image_first(0, f"id{i}") for i in range(40)]
    assert any(placements) and not all(placements)
    assert placements != [image_first(1, f"id{i}") for i in range(40)]


# ---------------------------------------------------------------- cache and backend pieces


def test_cache_round_trip_and_key_sensitivity(tmp_path):
    cache = ResponseCache(tmp_path)
    messages = [{"role": "user", "content": "hi"}]
    key = cache_key("openai", "m", messages, {"temperature": 0})
    assert cache.get(key) is None
    cache.put(key, BackendReply("hello", 3, 2))
    assert cache.get(key) == BackendReply("hello", 3, 2)
    assert len(cache) == 1 and not list(tmp_path.rglob(".tmp-*"))
    assert key != cache_key("openai", "m2", messages, {"temperature": 0})
    assert key != cache_key("openai", "m", messages, {"temperature": 0.7})
    assert key != cache_key("hf", "m", messages, {"temperature": 0})


def test_url_and_retry_after_parsing():
    assert chat_completions_url("http://h:8000") == "http://h:8000/v1/chat/completions"
    assert chat_completions_url("https://x.openai.azure.com/openai/v1/") == "https://x.openai.azure.com/openai/v1/chat/completions"
    assert chat_completions_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)


def test_create_backend_rejects_unknown_options_and_reads_env(monkeypatch):
    with pytest.raises(PluginError, match=r"unknown option\(s\) colour; valid: base_url"):
        create_backend("openai", "gpt-x", colour="red")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    backend = create_backend("openai", "gpt-x")
    assert isinstance(backend, OpenAIBackend) and backend.url == "http://127.0.0.1:9/v1/chat/completions"
    assert backend.headers()["Authorization"] == "Bearer sk-test"


# ---------------------------------------------------------------- end to end against the fake server


def run_cli(args: list[str]):
    from medzoo.app.cli.instruct import instruct

    result = CliRunner().invoke(instruct, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_generate_end_to_end_with_failures_then_resume_from_cache(fake, tmp_path):
    captions = write_captions(tmp_path / "captions.jsonl", 6, {4: "GARBLE", 5: "LEAK"})
    output = tmp_path / "out" / "instruct.json"
    with fake.FakeOpenAI(conversation_reply, max_requests=40) as server:
        server.push(
            fake.Malformed(),  # garbled body: retried
            fake.Status(429, {"Retry-After": "1"}),
            fake.Hang(),  # answered only when the server stops: the 0.5 s client timeout gives up and retries
            fake.Status(500),
            fake.Malformed('{"choices": []}'),  # json without a message: retried
        )
        args = [
            "generate", "--captions", str(captions), "--output", str(output), "--backend", "openai",
            "--model", "fake-gpt", "--base-url", server.base_url, "--api-key", "k", "--option", "timeout=0.5",
            "--concurrency", "2", "--backoff", "0.01", "--inline-mentions", "--seed", "3",
        ]
        result = run_cli(args)
        assert server.hangs_answered == 0  # the run ended without waiting for the hung request
        assert server.request_count == 6 + 5 and not server.overflowed
        assert max(server.delivered.values()) == 1 and len(server.delivered) == 6
        assert all(body["model"] == "fake-gpt" and body["temperature"] == 0.0 for _, body, _ in server.requests)
        assert "Case 1." in server.requests[-1][1]["messages"][-1]["content"] or any(
            "Figure 1 shows case 1." in body["messages"][-1]["content"] for _, body, _ in server.requests
        )

        records = json.loads(output.read_text())
        summary = json.loads((output.parent / "instruct.summary.json").read_text())
        assert [r["id"] for r in records] == [f"PMC{i:04d}_F1" for i in range(4)]
        for record in records:
            turns = record["conversations"]
            assert [t["from"] for t in turns] == ["human", "gpt", "human", "gpt"]
            assert sum(t["value"].count(IMAGE_PLACEHOLDER) for t in turns) == 1
            assert turns[0]["value"].startswith(IMAGE_PLACEHOLDER) or turns[0]["value"].endswith(IMAGE_PLACEHOLDER)
            assert record["image"].startswith("cxr/") and record["domain"] == "cxr"
        conversations = summary["conversations"]
        assert conversations["kept"] == 4
        assert conversations["dropped"] == {
            "every turn mentioned the caption or context": 1,
            "no user/assistant turns found": 1,
        }
        assert conversations["turns_dropped"] == {"mentions caption or context": 5}
        usage = summary["usage"]
        assert usage["requests_sent"] == 11 and usage["retries"] == 5 and usage["failed_requests"] == 0
        assert usage["prompt_tokens"] == 6 * 11 and usage["completion_tokens"] == 6 * 7
        assert usage["retry_reasons"] == {"http 429": 1, "http 500": 1, "malformed response": 2, "timeout": 1}
        assert "6 requests" not in result.output and "11 requests" in result.output

        # a second run pays for nothing and writes the same file
        first = output.read_text()
        run_cli(args)
        assert server.request_count == 11 and output.read_text() == first


def test_retry_after_holds_requests_back(fake, tmp_path, monkeypatch):
    captions, _ = read_captions(write_captions(tmp_path / "c.jsonl", 2))
    waits, sleep = [], asyncio.sleep

    async def recording_sleep(delay, *args, **kwargs):
        if delay > 0:
            waits.append(delay)
        return await sleep(delay, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    with fake.FakeOpenAI(conversation_reply, max_requests=10) as server:
        server.push(fake.Status(429, {"Retry-After": "1"}, body="slow down"))
        backend = OpenAIBackend("fake", base_url=server.base_url, timeout=5)
        runner = RequestRunner(backend, None, concurrency=1, policy=FAST)

        async def run():
            try:
                return await generate_instructions(captions, runner, GenerationSettings())
            finally:
                await backend.aclose()

        result = asyncio.run(asyncio.wait_for(run(), timeout=SUBPROCESS_HANG_S))
        assert [name for *_, name in server.requests] == ["Status", "Reply", "Reply"]
        # the retry waits the 1 s the server asked for (not the 0.01 s backoff); the other request waits out what
        # is left of that pause, nothing else
        assert 1.0 in waits and all(wait <= 1.0 for wait in waits), waits
        assert len(result.records) == 2


def test_permanent_errors_and_exhausted_retries_are_counted(fake, tmp_path):
    captions, _ = read_captions(write_captions(tmp_path / "c.jsonl", 2))
    with fake.FakeOpenAI(conversation_reply, max_requests=10) as server:
        server.push(fake.Status(401, body='{"error": "bad key"}'), *[fake.Status(503)] * 4)
        backend = OpenAIBackend("fake", base_url=server.base_url, timeout=5)
        runner = RequestRunner(backend, ResponseCache(tmp_path / "cache"), concurrency=1, policy=FAST)
        result = asyncio.run(generate_instructions(captions, runner, GenerationSettings()))
        assert result.records == [] and result.dropped == {"request failed": 2}
        assert "HTTP 401" in result.request_errors[0] and "HTTP 503" in result.request_errors[1]
        assert server.request_count == 1 + FAST.max_attempts
        assert runner.stats.failures == 2 and len(ResponseCache(tmp_path / "cache")) == 0


def test_interrupted_run_resumes_without_repeating_a_request(fake, tmp_path):
    captions, _ = read_captions(write_captions(tmp_path / "c.jsonl", 8))
    cache_dir = tmp_path / "cache"
    with fake.FakeOpenAI(conversation_reply, max_requests=30) as server:
        server.push(*[fake.Reply(conversation_reply({"messages": [{"content": "x\nfirst"}]}))] * 3)
        server.push(*[fake.Block(limit=10)] * 5)

        async def interrupted():
            backend = OpenAIBackend("fake", base_url=server.base_url, timeout=30)
            runner = RequestRunner(backend, ResponseCache(cache_dir), concurrency=2, policy=FAST)
            task = asyncio.create_task(generate_instructions(captions, runner, GenerationSettings()))
            await wait_for_async(lambda: server.blocked >= 2 and len(ResponseCache(cache_dir)) >= 3,
                                 "two requests blocked at the fake server and three answers cached")
            task.cancel()  # the run is killed with two requests in flight
            with pytest.raises(asyncio.CancelledError):
                await task
            await backend.aclose()

        asyncio.run(interrupted())
        assert len(ResponseCache(cache_dir)) == 3 and server.blocked == 2
        server.script.clear()
        paid_before = set(server.delivered)

        backend = OpenAIBackend("fake", base_url=server.base_url, timeout=30)
        runner = RequestRunner(backend, ResponseCache(cache_dir), concurrency=2, policy=FAST)
        result = asyncio.run(generate_instructions(captions, runner, GenerationSettings()))
        assert len(result.records) == 8 and runner.stats.cache_hits == 3 and runner.stats.requests_sent == 5
        assert len(server.delivered) == 8 and max(server.delivered.values()) == 1
        assert paid_before < set(server.delivered)


# ---------------------------------------------------------------- hf backend with a tiny local model


@pytest.fixture(scope="module")
def tiny_causal_lm(tmp_path_factory):
    """A tiny random Llama saved with the shipped tiny tokenizer (or one built here if that is missing)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    try:
        from medzoo.plugins.language.tiny_tokenizer import tiny_tokenizer_path

        tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_path()))
    except (ImportError, OSError):
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast

        raw = Tokenizer(models.BPE(unk_token="<unk>"))
        raw.pre_tokenizer = pre_tokenizers.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"])
        raw.train_from_iterator(["User: what is shown? Assistant: a chest radiograph."] * 20, trainer)
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = None
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_hf_backend_generates_counts_and_caches(tiny_causal_lm, tmp_path):
    captions_file = write_captions(tmp_path / "c.jsonl", 3)
    output = tmp_path / "instruct.json"
    args = [
        "generate", "--captions", str(captions_file), "--output", str(output), "--backend", "hf",
        "--model", str(tiny_causal_lm), "--max-tokens", "8", "--concurrency", "2",
        "--cache-dir", str(tmp_path / "cache"),
    ]
    from medzoo.app.cli.instruct import instruct

    def generate_once():
        result = CliRunner().invoke(instruct, args)
        if result.exit_code == 0:
            return json.loads((tmp_path / "instruct.summary.json").read_text()), None
        # a run that keeps nothing fails with its counts and writes nothing
        assert isinstance(result.exception, MedzooError), result.output
        assert not output.exists() and not (tmp_path / "instruct.summary.json").exists()
        return None, str(result.exception)

    summary, error = generate_once()
    allowed = {"no user/assistant turns found", "every turn mentioned the caption or context"}
    if summary is None:
        # gibberish from a random model: every conversation is counted as unparseable, none silently kept
        assert "\n" not in error and "0 of 3 conversations kept" in error and "first failure: PMC0000_F1" in error
        assert any(reason in error for reason in allowed) and "3 requests sent, 0 cached" in error
        _, again = generate_once()
        assert "0 requests sent, 3 cached" in again
        return
    assert summary["conversations"]["kept"] + sum(summary["conversations"]["dropped"].values()) == 3
    assert set(summary["conversations"]["dropped"]) <= allowed
    assert len(json.loads(output.read_text())) == summary["conversations"]["kept"]
    usage = summary["usage"]
    assert usage["requests_sent"] == 3 and usage["cache_hits"] == 0
    assert 0 < usage["completion_tokens"] <= 3 * 8 and usage["prompt_tokens"] > 3 * 100
    again, _ = generate_once()
    assert again["usage"]["requests_sent"] == 0 and again["usage"]["cache_hits"] == 3
    assert again["conversations"] == summary["conversations"]


def test_hf_backend_uses_a_chat_template_when_present(tiny_causal_lm):
    from medzoo.plugins.instruct.backends.hf_backend import HFBackend, plain_chat_prompt

    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert plain_chat_prompt(messages) == "System: S\n\nUser: U\n\nAssistant:"
    backend = HFBackend(str(tiny_causal_lm))
    backend.load()
    assert backend.render_prompt(messages) == plain_chat_prompt(messages)
    backend._tokenizer.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>"
    assert backend.render_prompt(messages) == "<system>S<user>U<assistant>"
    completion = asyncio.run(backend.complete(messages, max_tokens=4))
    assert completion.completion_tokens <= 4 and backend.generate_calls == 1
    with pytest.raises(PluginError, match="cannot load model"):
        HFBackend(str(tiny_causal_lm / "missing")).load()


def test_output_is_accepted_by_the_llava_json_reader(fake, tmp_path):
    from PIL import Image

    from medzoo.core.plugin_system.manager import components

    reader_class = components().get("dataset", "llava-json").factory
    captions_file = write_captions(tmp_path / "c.jsonl", 3)
    for index in range(3):
        image = tmp_path / "images" / f"cxr/train_{index:06d}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), (index * 40, 0, 0)).save(image)
    output = tmp_path / "instruct.json"
    with fake.FakeOpenAI(conversation_reply, max_requests=5) as server:
        run_cli(["generate", "--captions", str(captions_file), "--output", str(output), "--backend", "openai",
                 "--model", "m", "--base-url", server.base_url])
    records, report = reader_class().read(str(output), image_root=str(tmp_path / "images"), on_bad_record="error")
    assert len(records) == 3 and report.total_skipped == 0
    for record in records:
        assert record.image is not None and record.image.is_file()
        assert IMAGE_PLACEHOLDER in record.messages[0].content and record.messages[0].role == "user"
        assert [m.role for m in record.messages if m.role != "system"] == ["user", "assistant"] * 2


def test_identical_prompts_in_one_run_are_sent_once(fake, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(
        json.dumps({"pair_id": f"P{i}", "image": f"{i}.png", "fig_caption": "Same caption.\nAgain."}) + "\n"
        for i in range(3)
    ))
    captions, _ = read_captions(path)
    with fake.FakeOpenAI(conversation_reply, max_requests=5) as server:
        backend = OpenAIBackend("fake", base_url=server.base_url, timeout=5)
        runner = RequestRunner(backend, None, concurrency=3, policy=FAST)
        result = asyncio.run(generate_instructions(captions, runner, GenerationSettings()))
        assert server.request_count == 1 and [r["id"] for r in result.records] == ["P0", "P1", "P2"]
