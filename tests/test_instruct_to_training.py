"""The paper's data path end to end: the synthetic set's figure captions go through ``medzoo instruct
generate`` (against a scripted OpenAI-compatible server on 127.0.0.1), and the generated LLaVA instruction
JSON trains the tiny recipe's stage-2 (instruction tuning) stage. The commands run in this process."""

from __future__ import annotations

import json

import pytest
from support import fake_openai as openai_fake_server
from support.in_process import medzoo_here as medzoo

from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER


@pytest.fixture(scope="module")
def fake():
    """The scripted OpenAI-compatible server module (tests/support/fake_openai.py)."""
    return openai_fake_server


def caption_of(body: dict) -> str:
    """The caption block of the last user message (``Figure caption:`` then the caption)."""
    content = body["messages"][-1]["content"]
    lines = content.split("\n")
    return lines[lines.index("Figure caption:") + 1].strip()


def generator_reply(body: dict) -> str:
    """A rule-following generator: speaks about what the image shows, never about the caption."""
    sentences = [s.strip() for s in caption_of(body).split(". ") if s.strip()]
    finding = sentences[0].rstrip(".")
    rest = " ".join(sentences[1:]) or "Nothing else stands out."
    return (
        f"User: What does this image show?\nAssistant: {finding}.\n"
        f"User: Is there anything else worth noting?\nAssistant: {rest}\n"
        "User: Where did you read that?\nAssistant: The caption says so."  # must be dropped by the filter
    )


def test_synthetic_captions_to_instructions_to_stage2_training(fake, tmp_path):
    data = tmp_path / "synth"
    result = medzoo("data", "synth", "--output", str(data), "--size", "train=20", "--size", "val=0",
                    "--size", "test=0")
    assert result.returncode == 0, result.stderr[-2000:]
    captions = data / "pmc" / "captions.jsonl"
    n_captions = len(captions.read_text().splitlines())
    assert n_captions == 20

    output = tmp_path / "generated" / "instruct.json"
    with fake.FakeOpenAI(generator_reply, max_requests=3 * n_captions) as server:
        result = medzoo("instruct", "generate", "--captions", str(captions), "--output", str(output),
                        "--backend", "openai", "--model", "fake-gpt", "--base-url", server.base_url,
                        "--api-key", "k", "--inline-mentions", "--concurrency", "4")
        assert result.returncode == 0, result.stderr[-2000:]
        assert server.request_count == n_captions and not server.overflowed

    records = json.loads(output.read_text())
    summary = json.loads((output.parent / "instruct.summary.json").read_text())
    assert len(records) == n_captions == summary["conversations"]["kept"]
    assert summary["conversations"]["turns_dropped"] == {"mentions caption or context": n_captions}
    for record in records:
        turns = record["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt", "human", "gpt"]
        assert sum(t["value"].count(IMAGE_PLACEHOLDER) for t in turns) == 1
        assert not any("caption" in t["value"].lower() for t in turns)
        assert (data / "images" / record["image"]).is_file()

    dataset = f"[{{name: llava-json, path: '{output}', image_root: '{data / 'images'}'}}]"
    run_dir = tmp_path / "run"
    result = medzoo(
        "train", "tiny", "--output-dir", str(run_dir),
        "-o", f"data.root={data}", "-o", "data.synthesize=false", "-o", "data.on_bad_record=error",
        "-o", "curriculum.name=instruct-only",
        "-o", f"stages.instruct.datasets={dataset}",
        "-o", "stages.instruct.max_steps=4", "-o", "stages.instruct.global_batch_size=4",
        "-o", "stages.instruct.micro_batch_size=4", "-o", "stages.instruct.optimizer.lr=1e-3",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{output}: {n_captions} records" in result.stdout
    run = json.loads((run_dir / "run.json").read_text())
    assert [s["stage"] for s in run["stages"]] == ["instruct"]
    assert run["stages"][0]["last_loss"] < run["stages"][0]["first_loss"]
    from medzoo.core.model.multimodal import MultimodalModel

    model = MultimodalModel.from_pretrained(str(run_dir / "final"))
    assert model.num_image_tokens == 16
