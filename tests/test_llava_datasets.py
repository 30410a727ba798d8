"""The llava-json and pmc-captions readers: synthetic data, every skip reason under both policies, hub loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from medzoo.app.data_synth import synthesize
from medzoo.core.errors import DataError
from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER
from medzoo.core.plugin_system.manager import components
from medzoo.plugins.datasets import llava_json
from medzoo.plugins.datasets.image_checks import ImageChecker, ImageProblem
from medzoo.plugins.datasets.llava_json import LlavaJsonReader
from medzoo.plugins.datasets.pmc_captions import DESCRIBE_INSTRUCTIONS, PmcCaptionsReader, caption_prompt


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth_readers")
    synthesize(root, seed=1, sizes={"train": 60, "val": 10, "test": 20})
    return root


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """Images for hand-made records: a good PNG, a file of garbage bytes and a truncated PNG."""
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(root / "good.png")
    (root / "garbage.png").write_bytes(b"this is not an image at all")
    full = (root / "good.png").read_bytes()
    (root / "truncated.png").write_bytes(full[: len(full) // 2])
    (tmp_path / "outside.png").write_bytes(full)
    return root


def turns(*values: str) -> list[dict[str, str]]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]


GOOD = {"id": "good", "image": "good.png", "conversations": turns(f"{IMAGE_PLACEHOLDER}\nWhat is this?", "A red square.")}

BAD_LLAVA_RECORDS: dict[str, dict] = {
    "image_missing": {"id": "bad", "image": "nowhere.png", "conversations": GOOD["conversations"]},
    "image_corrupt": {"id": "bad", "image": "garbage.png", "conversations": GOOD["conversations"]},
    "image_outside_root": {"id": "bad", "image": "../outside.png", "conversations": GOOD["conversations"]},
    "malformed_record": {"id": "bad", "image": "good.png", "conversations": [{"from": "doctor", "value": "hi"}]},
    "placeholder_mismatch": {"id": "bad", "image": "good.png", "conversations": turns("What is this?", "A square.")},
    "empty_conversation": {"id": "bad", "image": "good.png", "conversations": []},
    "not_alternating": {"id": "bad", "image": "good.png",
                        "conversations": [{"from": "human", "value": f"{IMAGE_PLACEHOLDER} Q"},
                                          {"from": "human", "value": "Q again"}]},
    "image_required": {"id": "bad", "conversations": turns("What is 2+2?", "4")},
}
# further shapes of the same reasons
EXTRA_LLAVA_RECORDS: list[tuple[str, object]] = [
    ("image_corrupt", {"id": "bad", "image": "truncated.png", "conversations": GOOD["conversations"]}),
    ("image_outside_root", {"id": "bad", "image": "/etc/hosts", "conversations": GOOD["conversations"]}),
    ("malformed_record", {"image": "good.png", "conversations": GOOD["conversations"]}),
    ("malformed_record", {"id": "bad", "image": "good.png", "conversations": "hello"}),
    ("malformed_record", {"id": "bad", "image": 3, "conversations": GOOD["conversations"]}),
    ("malformed_record", {"id": "bad", "image": "good.png", "conversations": [{"from": "human", "value": 5}]}),
    ("malformed_record", ["not", "an", "object"]),
    ("placeholder_mismatch", {"id": "bad", "image": "good.png",
                              "conversations": turns(f"{IMAGE_PLACEHOLDER}{IMAGE_PLACEHOLDER} Q", "A")}),
    ("placeholder_mismatch", {"id": "bad", "image": "good.png",
                              "conversations": turns("Q", "A", f"{IMAGE_PLACEHOLDER} Q2", "A2")}),
    ("not_alternating", {"id": "bad", "image": "good.png",
                         "conversations": turns(f"{IMAGE_PLACEHOLDER} Q", "A", "Unanswered?")}),
    ("not_alternating", {"id": "bad", "image": "good.png",
                         "conversations": [{"from": "gpt", "value": "A"}, {"from": "human", "value": "<image> Q"}]}),
]


def write_json(path: Path, records) -> str:
    path.write_text(json.dumps(records), encoding="utf-8")
    return str(path)


def test_readers_are_registered() -> None:
    registry = components()
    assert registry.get("dataset", "llava-json").factory is LlavaJsonReader
    assert registry.get("dataset", "pmc-captions").factory is PmcCaptionsReader


# -- the synthetic data set ---------------------------------------------------------------------------------

@pytest.mark.parametrize("relative", ["llava_med/alignment.json", "llava_med/instruct.json", "vqa_rad/test.json",
                                      "coloninst/test/rec_test.json"])
def test_llava_json_reads_synthetic_files(synth_dir: Path, relative: str) -> None:
    records, report = LlavaJsonReader().read(str(synth_dir / relative), image_root=str(synth_dir / "images"))
    raw = json.loads((synth_dir / relative).read_text())
    assert report.total_skipped == 0 and report.kept == len(records) == len(raw)
    for record, row in zip(records, raw, strict=True):
        assert record.id == str(row["id"]) and record.image.is_absolute() and record.image.is_file()
        assert [m.role for m in record.messages][:2] == ["user", "assistant"]
        assert IMAGE_PLACEHOLDER in record.messages[0].content
        assert [m.content for m in record.messages] == [turn["value"] for turn in row["conversations"]]


def test_pmc_captions_on_synthetic_captions_match_the_alignment_file(synth_dir: Path) -> None:
    images = str(synth_dir / "images")
    captions, report = PmcCaptionsReader().read(str(synth_dir / "pmc/captions.jsonl"), image_root=images)
    aligned, _ = LlavaJsonReader().read(str(synth_dir / "llava_med/alignment.json"), image_root=images)
    rewrapped, _ = PmcCaptionsReader().read(str(synth_dir / "llava_med/alignment.json"), image_root=images)
    assert report.total_skipped == 0 and len(captions) == len(aligned) == 60
    for caption, alignment, again in zip(captions, aligned, rewrapped, strict=True):
        assert caption.id == alignment.id == again.id and caption.image == alignment.image
        assert caption.messages == alignment.messages == again.messages
        assert caption.metadata["domain"] in {"cxr", "ct", "mri", "histology", "colonoscopy"}
        assert caption.metadata["fig_label"] in caption.metadata["in_text_mention"][0]


def test_pmc_captions_keep_the_alignment_records_own_instruction(synth_dir: Path, tmp_path: Path) -> None:
    """LLaVA-Med v1.0.0 trained stage 1 on each alignment record's own human turn; ``pool`` is the ablation."""
    images = str(synth_dir / "images")
    rows = json.loads((synth_dir / "llava_med/alignment.json").read_text())[:3]
    for row in rows:
        row["conversations"][0]["value"] = "Summarize the visual content of the image.\n<image>"
    path = tmp_path / "alignment.json"
    path.write_text(json.dumps(rows))
    kept, _ = PmcCaptionsReader().read(str(path), image_root=images)
    assert [r.messages[0].content for r in kept] == ["Summarize the visual content of the image.\n<image>"] * 3
    pooled, _ = PmcCaptionsReader(instruction="pool").read(str(path), image_root=images)
    assert [r.messages[0].content for r in pooled] == [caption_prompt(r.id) for r in pooled]
    assert [r.messages[1] for r in pooled] == [r.messages[1] for r in kept]
    with pytest.raises(DataError, match="instruction='own'; expected one of record, pool"):
        PmcCaptionsReader(instruction="own")


def test_caption_prompt_is_deterministic_and_varied() -> None:
    prompts = [caption_prompt(f"PMC{n}_F1") for n in range(200)]
    assert prompts == [caption_prompt(f"PMC{n}_F1") for n in range(200)]
    used = {prompt.replace(IMAGE_PLACEHOLDER, "").strip() for prompt in prompts}
    assert used == set(DESCRIBE_INSTRUCTIONS) and len(DESCRIBE_INSTRUCTIONS) >= 10
    assert {prompt.startswith(IMAGE_PLACEHOLDER) for prompt in prompts} == {True, False}
    assert all(prompt.count(IMAGE_PLACEHOLDER) == 1 for prompt in prompts)


# -- skip reasons under both policies ---------------------------------------------------------------------------

CASES = list(BAD_LLAVA_RECORDS.items()) + EXTRA_LLAVA_RECORDS


@pytest.mark.parametrize("reason,bad", CASES, ids=[f"{reason}-{i}" for i, (reason, _) in enumerate(CASES)])
def test_llava_json_skips_and_counts_each_reason(tmp_path: Path, image_root: Path, reason: str, bad) -> None:
    path = write_json(tmp_path / "data.json", [GOOD, bad, GOOD | {"id": "good2"}])
    records, report = LlavaJsonReader().read(path, image_root=str(image_root))
    assert [r.id for r in records] == ["good", "good2"]
    assert dict(report.skipped) == {reason: 1} and report.kept == 2
    assert reason in report.summary() and "2 records kept, 1 skipped" in report.summary()


@pytest.mark.parametrize("reason,bad", CASES, ids=[f"{reason}-{i}" for i, (reason, _) in enumerate(CASES)])
def test_llava_json_error_policy_names_file_record_and_reason(tmp_path: Path, image_root: Path, reason, bad) -> None:
    path = write_json(tmp_path / "data.json", [GOOD, bad])
    with pytest.raises(DataError) as error:
        LlavaJsonReader().read(path, image_root=str(image_root), on_bad_record="error")
    message = str(error.value)
    assert path in message and reason in message and "\n" not in message
    assert "bad" in message or "#1" in message


def test_counts_accumulate_over_many_bad_records(tmp_path: Path, image_root: Path) -> None:
    rows = [GOOD] + [bad | {"id": f"{reason}-{n}"} for n in range(2) for reason, bad in BAD_LLAVA_RECORDS.items()]
    records, report = LlavaJsonReader().read(write_json(tmp_path / "d.json", rows), image_root=str(image_root))
    assert len(records) == 1 and report.skipped == {reason: 2 for reason in BAD_LLAVA_RECORDS}
    assert report.examples["image_missing"] == ["image_missing-0", "image_missing-1"]


def test_text_only_records_are_kept_when_no_image_is_required(tmp_path: Path, image_root: Path) -> None:
    path = write_json(tmp_path / "d.json", [BAD_LLAVA_RECORDS["image_required"] | {"id": "text"}, GOOD,
                                            {"id": "x", "conversations": turns(f"{IMAGE_PLACEHOLDER} Q", "A")}])
    records, report = LlavaJsonReader(require_image=False).read(path, image_root=str(image_root))
    assert [(r.id, r.image) for r in records] == [("text", None), ("good", image_root.resolve() / "good.png")]
    assert dict(report.skipped) == {"placeholder_mismatch": 1}


def test_system_turn_placeholder_after_question_and_default_image_root(tmp_path: Path, image_root: Path) -> None:
    row = {"id": 7, "image": "images/good.png", "source": "x", "conversations": [
        {"from": "system", "value": "Be brief."}, {"from": "human", "value": f"Q?\n{IMAGE_PLACEHOLDER}"},
        {"from": "gpt", "value": "A."}]}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(row) + "\n\n", encoding="utf-8")
    (record,), report = LlavaJsonReader().read(str(path))  # image root defaults to the file's folder
    assert record.id == "7" and [m.role for m in record.messages] == ["system", "user", "assistant"]
    assert record.image == (tmp_path / "images/good.png").resolve() and record.metadata == {"source": "x"}


@pytest.mark.parametrize("content,expected", [
    ("{not json", "not valid JSON"), ('{"id": 1}', "expected a JSON list"), (b"\xff\xfe\x00bad", "line 1: byte 0xff \\(byte offset 0\\) is not UTF-8"),
])
def test_unreadable_or_non_json_file_names_the_file(tmp_path: Path, content, expected: str) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    for reader in (LlavaJsonReader(), PmcCaptionsReader()):
        with pytest.raises(DataError, match=expected) as error:
            reader.read(str(path))
        assert str(path) in str(error.value)


def test_jsonl_bad_lines_are_counted_but_an_all_bad_file_is_an_error(tmp_path: Path, image_root: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{broken\n", encoding="utf-8")
    records, report = LlavaJsonReader().read(str(path), image_root=str(image_root))
    assert len(records) == 1 and report.skipped == {"malformed_record": 1}
    assert report.examples["malformed_record"] == ["line 2"]
    with pytest.raises(DataError, match="line 2"):
        LlavaJsonReader().read(str(path), image_root=str(image_root), on_bad_record="error")
    path.write_text("garbage\nmore garbage\n", encoding="utf-8")
    with pytest.raises(DataError, match="not a JSON-lines file"):
        LlavaJsonReader().read(str(path))


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(DataError, match="require_imag"):
        LlavaJsonReader(require_imag=False)
    with pytest.raises(DataError, match="unknown option"):
        PmcCaptionsReader(require_image=True)


# -- pmc-captions bad input -------------------------------------------------------------------------------------

CAPTION_OK = {"pair_id": "PMC1_F1", "image": "good.png", "fig_label": "Figure 1", "fig_caption": "A red square.",
              "in_text_mention": ["As shown in Figure 1, it is red."], "domain": "cxr"}
BAD_CAPTIONS: list[tuple[str, dict]] = [
    ("image_missing", CAPTION_OK | {"pair_id": "bad", "image": "nowhere.png"}),
    ("image_corrupt", CAPTION_OK | {"pair_id": "bad", "image": "truncated.png"}),
    ("image_outside_root", CAPTION_OK | {"pair_id": "bad", "image": "../outside.png"}),
    ("malformed_record", {"pair_id": "bad", "image": "good.png", "caption": "wrong key"}),
    ("malformed_record", CAPTION_OK | {"pair_id": "bad", "fig_caption": ["not", "a", "string"]}),
    ("malformed_record", {k: v for k, v in CAPTION_OK.items() if k != "image"} | {"pair_id": "bad"}),
    ("empty_caption", CAPTION_OK | {"pair_id": "bad", "fig_caption": "   "}),
    ("empty_conversation", {"id": "bad", "image": "good.png", "conversations": []}),
    ("not_alternating", {"id": "bad", "image": "good.png", "conversations": turns("Describe.")}),
]


@pytest.mark.parametrize("reason,bad", BAD_CAPTIONS, ids=[f"{r}-{i}" for i, (r, _) in enumerate(BAD_CAPTIONS)])
def test_pmc_captions_skips_or_raises_for_each_reason(tmp_path: Path, image_root: Path, reason: str, bad) -> None:
    path = tmp_path / "captions.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in (CAPTION_OK, bad)) + "\n", encoding="utf-8")
    records, report = PmcCaptionsReader().read(str(path), image_root=str(image_root))
    assert [r.id for r in records] == ["PMC1_F1"] and dict(report.skipped) == {reason: 1}
    assert records[0].messages[0].content == caption_prompt("PMC1_F1")
    assert records[0].messages[1].content == "A red square."
    with pytest.raises(DataError, match=reason) as error:
        PmcCaptionsReader().read(str(path), image_root=str(image_root), on_bad_record="error")
    assert str(path) in str(error.value)


# -- image checks and the hub -----------------------------------------------------------------------------------

def test_image_checker_refuses_symlinks_leaving_the_root(tmp_path: Path, image_root: Path) -> None:
    (image_root / "link.png").symlink_to(tmp_path / "outside.png")
    checker = ImageChecker(image_root)
    with pytest.raises(ImageProblem) as problem:
        checker.locate("link.png")
    assert problem.value.reason == "image_outside_root"
    assert checker.locate("./good.png") == (image_root / "good.png").resolve()
    assert ImageChecker(image_root, verify=False).locate("garbage.png").name == "garbage.png"


def test_missing_local_file_is_an_error_without_trying_the_hub(tmp_path: Path, monkeypatch) -> None:
    def no_hub(*args, **kwargs):
        raise AssertionError("the hub must not be tried for a local path")

    monkeypatch.setattr(llava_json, "load_hub_rows", no_hub)
    with pytest.raises(DataError, match="not found"):
        LlavaJsonReader().read(str(tmp_path / "absent.json"))


def test_hub_dataset_rows_with_embedded_and_relative_images(tmp_path: Path, image_root: Path, monkeypatch) -> None:
    import datasets

    calls = []

    def fake_load_dataset(name: str, split: str):
        calls.append((name, split))
        embedded = Image.new("RGB", (8, 8), (0, 0, 255))
        return [
            {"id": "hub-1", "image": embedded, "conversations": turns(f"{IMAGE_PLACEHOLDER} Colour?", "Blue.")},
            {"id": "hub-2", "image": "good.png", "conversations": turns(f"{IMAGE_PLACEHOLDER} Colour?", "Red.")},
            {"id": "hub-3", "image": "nowhere.png", "conversations": turns(f"{IMAGE_PLACEHOLDER} Colour?", "?")},
        ]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    reader = LlavaJsonReader(split="test", image_cache_dir=str(tmp_path / "cache"))
    records, report = reader.read("someone/llava-style-set", image_root=str(image_root))
    assert calls == [("someone/llava-style-set", "test")]
    assert [r.id for r in records] == ["hub-1", "hub-2"] and report.skipped == {"image_missing": 1}
    with Image.open(records[0].image) as image:
        assert records[0].image.parent == (tmp_path / "cache").resolve() and image.getpixel((0, 0)) == (0, 0, 255)


def test_hub_failure_becomes_one_line_data_error(monkeypatch) -> None:
    import datasets

    def failing(name: str, split: str):
        raise FileNotFoundError(f"Dataset '{name}' doesn't exist on the Hub\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", failing)
    with pytest.raises(DataError) as error:
        PmcCaptionsReader().read("nobody/missing-captions")
    assert "nobody/missing-captions" in str(error.value) and "\n" not in str(error.value)
