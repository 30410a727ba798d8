"""The synthetic data set: layout, determinism, formats, answers that need the image, and the CLI."""

from __future__ import annotations

import csv
import json
import pickle
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from medzoo.app.cli.main import cli
from medzoo.app.data_synth import DEFAULT_SIZES, FORMAT_VERSION, synthesize
from medzoo.app.data_synth.generate import OUTPUT_ENTRIES
from medzoo.app.data_synth.images import DOMAINS, SynthImage, render_split
from medzoo.app.data_synth.questions import COLONINST_TEMPLATES
from medzoo.core.errors import DataError
from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER

SMALL = {"train": 40, "val": 10, "test": 20}
BOX = re.compile(r"\{<(\d+)><(\d+)><(\d+)><(\d+)>\}")
CATEGORY = re.compile(r"\b(polyp|bleeding|ulcer)\b")


SMALL_SIZES = {"train": 400, "val": 50, "test": 150}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    """The data set at the sizes the demo default had before it grew tenfold (about two seconds)."""
    root = tmp_path_factory.mktemp("synth")
    synthesize(root, seed=0, sizes=SMALL_SIZES)
    return root


def load(root: Path, relative: str):
    path = root / relative
    if relative.endswith(".jsonl"):
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if relative.endswith(".pkl"):
        return pickle.loads(path.read_bytes())
    if relative.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if relative.endswith((".csv", ".tsv")):
        with path.open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if relative.endswith(".tsv") else ","))
    return json.loads(path.read_text(encoding="utf-8"))


def question_answer_pairs(root: Path) -> dict[str, list[tuple[str, str]]]:
    """(question text, answer) per question file; boxes in REG questions and categories in REC questions are
    masked, so each template must have varied answers."""
    pairs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in load(root, "vqa_rad/vqa_rad.json"):
        pairs["vqa_rad"].append((row["question"], row["answer"]))
    for split in ("train", "validation", "test"):
        for row in load(root, f"slake/{split}.json"):
            pairs[f"slake/{split}"].append((row["question"], row["answer"]))
    for split in ("train", "test"):
        for row in load(root, f"pathvqa/qas/{split}/{split}_qa.pkl"):
            pairs[f"pathvqa/{split}"].append((row["question"], row["answer"]))
    llava_files = ["vqa_rad/test.json", "llava_med/instruct.json"] + [
        f"coloninst/{split}/{task}_{split}.json" for split in ("train", "val", "test") for task in ("cls", "reg", "rec")
    ]
    for relative in llava_files:
        for record in load(root, relative):
            turns = record["conversations"]
            for human, gpt in zip(turns[::2], turns[1::2], strict=True):
                question = BOX.sub("{box}", human["value"].replace(IMAGE_PLACEHOLDER, "").strip())
                if "/rec_" in relative:  # REC names the category and asks for its box: compare per template
                    question = CATEGORY.sub("{category}", question)
                pairs[relative].append((question, gpt["value"]))
    return pairs


def test_layout_and_manifest(synth_dir: Path) -> None:
    manifest = load(synth_dir, "manifest.json")
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["seed"] == 0 and manifest["sizes"] == {**SMALL_SIZES, "rl": 240}  # rl: 0.6 x train
    assert sorted(path.name for path in synth_dir.iterdir()) == sorted(OUTPUT_ENTRIES)
    for relative, count in manifest["counts"].items():
        assert len(load(synth_dir, relative)) == count > 0, relative
    for domain, by_split in manifest["images"].items():
        for split, count in by_split.items():
            assert len(list((synth_dir / "images" / domain).glob(f"{split}_*.png"))) == count
    assert sum(manifest["images"][d.name]["train"] for d in DOMAINS) == SMALL_SIZES["train"]
    assert 60 <= manifest["counts"]["vqa_rad/test.json"] <= 130
    histology_test = manifest["images"]["histology"]["test"]
    assert 4 * histology_test <= manifest["counts"]["pathvqa/qas/test/test_qa.pkl"] <= 6 * histology_test


def test_every_referenced_image_is_a_64px_rgb_png(synth_dir: Path) -> None:
    referenced = {row["image"] for row in load(synth_dir, "pmc/captions.jsonl")}
    referenced |= {row["image_name"] for row in load(synth_dir, "vqa_rad/vqa_rad.json")}
    referenced |= {row["img_name"] for row in load(synth_dir, "slake/test.json")}
    referenced |= {row["image"] for row in load(synth_dir, "pathvqa/qas/test/test_qa.pkl")}
    referenced |= {row["image"] for row in load(synth_dir, "coloninst/val/rec_val.json")}
    referenced |= {row["Figure_path"] for row in load(synth_dir, "pmc_vqa/test_2.csv")}
    for relative in referenced:
        assert not Path(relative).is_absolute()
        with Image.open(synth_dir / "images" / relative) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (64, 64))


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize(first, seed=7, sizes=SMALL)
    synthesize(second, seed=7, sizes=SMALL)
    synthesize(other, seed=8, sizes=SMALL)
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    assert (first / "vqa_rad/vqa_rad.json").read_bytes() != (other / "vqa_rad/vqa_rad.json").read_bytes()
    assert (first / "images/cxr/train_000000.png").read_bytes() != (other / "images/cxr/train_000000.png").read_bytes()


@pytest.mark.parametrize("seed", [0, 3])
def test_every_question_has_at_least_two_answers(tmp_path: Path, synth_dir: Path, seed: int) -> None:
    root = synth_dir if seed == 0 else tmp_path
    if seed != 0:
        synthesize(root, seed=seed)
    for relative, pairs in question_answer_pairs(root).items():
        answers: dict[str, set[str]] = defaultdict(set)
        for question, answer in pairs:
            answers[question].add(answer)
        single = {question: next(iter(found)) for question, found in answers.items() if len(found) < 2}
        assert not single, f"{relative}: questions answerable without the image: {single}"


def test_open_and_closed_questions_in_each_benchmark(synth_dir: Path) -> None:
    osf = load(synth_dir, "vqa_rad/vqa_rad.json")
    assert {row["answer_type"] for row in osf} == {"OPEN", "CLOSED"}
    assert all((row["answer"] in ("yes", "no")) == (row["answer_type"] == "CLOSED") for row in osf)
    slake = load(synth_dir, "slake/test.json")
    assert {row["answer_type"] for row in slake} == {"OPEN", "CLOSED"}
    pathvqa = load(synth_dir, "pathvqa/qas/test/test_qa.pkl")
    closed = [row for row in pathvqa if row["answer"] in ("yes", "no")]
    assert 0 < len(closed) < len(pathvqa)
    assert set(pathvqa[0]) == {"image", "question", "answer"}


def test_vqa_rad_test_split_and_llava_med_test_json_agree(synth_dir: Path) -> None:
    osf = load(synth_dir, "vqa_rad/vqa_rad.json")
    assert {row["phrase_type"] for row in osf} == {"freeform", "para", "test_freeform", "test_para"}
    test_rows = {row["qid"]: row for row in osf if row["phrase_type"].startswith("test_")}
    test_json = load(synth_dir, "vqa_rad/test.json")
    assert sorted(record["id"] for record in test_json) == sorted(test_rows)
    for record in test_json:
        row = test_rows[record["id"]]
        human, gpt = record["conversations"]
        assert human["value"] == f"{row['question']}\n{IMAGE_PLACEHOLDER}"
        assert gpt["value"] == row["answer"] and record["image"] == row["image_name"]
        assert record["answer_type"] == row["answer_type"] and record["question_type"] == row["question_type"]
    assert set(osf[0]) == {"qid", "image_name", "image_organ", "answer", "answer_type", "question_type",
                           "question", "phrase_type"}


def test_slake_fields_and_chinese_records(synth_dir: Path) -> None:
    fields = {"img_id", "img_name", "question", "answer", "q_lang", "answer_type", "modality", "location",
              "content_type", "qid"}
    qids = []
    for split in ("train", "validation", "test"):
        rows = load(synth_dir, f"slake/{split}.json")
        assert all(set(row) == fields for row in rows)
        languages = [row["q_lang"] for row in rows]
        assert 0 < languages.count("zh") < languages.count("en")
        qids += [row["qid"] for row in rows]
    assert len(qids) == len(set(qids))


def test_coloninst_records(synth_dir: Path) -> None:
    categories = {"polyp", "bleeding", "ulcer", "normal"}
    for split in ("train", "val", "test"):
        cls, reg, rec = (load(synth_dir, f"coloninst/{split}/{task}_{split}.json") for task in ("cls", "reg", "rec"))
        for task, records in (("cls", cls), ("reg", reg), ("rec", rec)):
            templates = {BOX.sub("{box}", t) for t in COLONINST_TEMPLATES[task]}
            for record in records:
                assert set(record) == {"id", "image", "conversations"}
                human, gpt = record["conversations"]
                assert human["from"] == "human" and gpt["from"] == "gpt"
                assert human["value"].startswith(f"{IMAGE_PLACEHOLDER}\n")
                question = BOX.sub("{box}", human["value"].removeprefix(f"{IMAGE_PLACEHOLDER}\n"))
                assert question in templates or any(question == t.format(category=gpt["value"])
                                                    or question == t.format(category=c) for t in templates
                                                    for c in categories)
        assert {r["conversations"][1]["value"] for r in cls} <= categories
        assert "normal" not in {r["conversations"][1]["value"] for r in reg}
        for record in rec:
            x1, y1, x2, y2 = map(int, BOX.fullmatch(record["conversations"][1]["value"]).groups())
            assert 0 <= x1 < x2 < 64 and 0 <= y1 < y2 < 64


def test_the_rl_prompt_pool_is_rec_on_frames_of_its_own(synth_dir: Path) -> None:
    pool = load(synth_dir, "coloninst/rl/rec_rl.json")
    frames = load(synth_dir, "manifest.json")["images"]["colonoscopy"]["rl"]
    assert frames == 240 and len(pool) == 180  # balanced findings: one frame in four is normal, without a box
    assert len({record["id"] for record in pool}) == len(pool)
    supervised = {record["image"] for split in ("train", "val", "test")
                  for task in ("cls", "reg", "rec", "cap")
                  for record in load(synth_dir, f"coloninst/{split}/{task}_{split}.json")}
    assert all(record["image"].startswith("colonoscopy/rl_") for record in pool)
    assert not supervised & {record["image"] for record in pool}
    for record in pool:
        human, gpt = record["conversations"]
        assert human["value"].removeprefix(f"{IMAGE_PLACEHOLDER}\n") in {
            t.format(category=c) for t in COLONINST_TEMPLATES["rec"] for c in ("polyp", "bleeding", "ulcer")}
        x1, y1, x2, y2 = map(int, BOX.fullmatch(gpt["value"]).groups())
        assert 0 <= x1 < x2 < 64 and 0 <= y1 < y2 < 64


def test_the_rl_pool_size_changes_no_other_file(tmp_path: Path) -> None:
    """The pool's frames draw from their own random stream: a data set written before the pool existed, or with
    another pool size, holds the same bytes everywhere else (the demo's figures do not move)."""
    default, other = tmp_path / "default", tmp_path / "other"
    synthesize(default, seed=7, sizes=SMALL)
    synthesize(other, seed=7, sizes={**SMALL, "rl": 3})
    pool = ("coloninst/rl/", "images/colonoscopy/rl_", "manifest.json")
    files = sorted(str(p.relative_to(default)) for p in default.rglob("*") if p.is_file())
    shared = [f for f in files if not f.startswith(pool)]
    assert shared and all((default / f).read_bytes() == (other / f).read_bytes() for f in shared)
    assert len(load(other, "coloninst/rl/rec_rl.json")) <= 3 < len(load(default, "coloninst/rl/rec_rl.json"))


def test_captions_and_llava_med_files(synth_dir: Path) -> None:
    captions = load(synth_dir, "pmc/captions.jsonl")
    assert set(captions[0]) == {"pair_id", "image", "fig_label", "fig_caption", "in_text_mention", "domain"}
    assert {row["domain"] for row in captions} == {d.name for d in DOMAINS}
    assert len({row["fig_caption"] for row in captions}) > len(captions) // 4
    assert all(row["fig_label"] in row["in_text_mention"][0] for row in captions)
    alignment = load(synth_dir, "llava_med/alignment.json")
    assert [r["conversations"][1]["value"] for r in alignment] == [row["fig_caption"] for row in captions]
    instruct = load(synth_dir, "llava_med/instruct.json")
    lengths = {len(record["conversations"]) for record in instruct}
    assert lengths <= {4, 6} and lengths == {4, 6}
    placements = {record["conversations"][0]["value"].startswith(IMAGE_PLACEHOLDER) for record in instruct}
    assert placements == {True, False}


def _features(path: Path) -> np.ndarray:
    pixels = np.asarray(Image.open(path), dtype=np.float32) / 255.0
    coarse = pixels.reshape(16, 4, 16, 4, 3).mean((1, 3)).ravel()
    patch_texture = np.sort(pixels.reshape(8, 8, 8, 8, 3).std((1, 3)).reshape(64, 3), axis=0).ravel() * 4
    histogram = np.concatenate([np.histogram(pixels[..., c], bins=16, range=(0, 1))[0] for c in range(3)]) / 256
    return np.concatenate([coarse, patch_texture, histogram])


def _nearest_centroid_accuracy(train: list[SynthImage], test: list[SynthImage], root: Path, attribute: str) -> float:
    labels = sorted({image.findings[attribute] for image in train})
    features = {image.relative_path: _features(root / image.relative_path) for image in train + test}
    # one centroid per combination of every finding, so interacting cues (count x size) stay separable
    def joint(image: SynthImage) -> tuple:
        return tuple(sorted((k, v) for k, v in image.findings.items() if isinstance(v, str)))

    groups = sorted({joint(image) for image in train})
    centroids = np.stack([np.mean([features[i.relative_path] for i in train if joint(i) == g], axis=0) for g in groups])
    hits = 0
    for image in test:
        nearest = groups[int(((centroids - features[image.relative_path]) ** 2).sum(1).argmin())]
        hits += dict(nearest)[attribute] == image.findings[attribute]
    assert image.findings[attribute] in labels
    return hits / len(test)


@pytest.mark.parametrize("domain_names,attribute", [
    (("cxr",), "opacity"), (("cxr",), "effusion"), (("ct", "mri"), "organ"), (("ct", "mri"), "modality"),
    (("histology",), "stain"), (("histology",), "nuclei_count"), (("histology",), "nuclei_size"),
    (("colonoscopy",), "finding"),
])
def test_findings_are_visible_in_the_pixels(tmp_path: Path, domain_names: tuple[str, ...], attribute: str) -> None:
    """A nearest-centroid classifier on simple pixel features reads each finding off held-out images."""
    train, test = [], []
    for domain in DOMAINS:
        if domain.name in domain_names:
            train += render_split(domain, "train", 60, seed=1, image_dir=tmp_path)
            test += render_split(domain, "test", 30, seed=1, image_dir=tmp_path)
    assert _nearest_centroid_accuracy(train, test, tmp_path, attribute) >= 0.85


def test_bad_sizes_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown"):
        synthesize(tmp_path, sizes={"training": 3})
    with pytest.raises(DataError, match="non-negative"):
        synthesize(tmp_path, sizes={"train": -1})


def test_cli_synth_writes_refuses_and_overwrites(tmp_path: Path) -> None:
    runner = CliRunner()
    output = tmp_path / "out"
    arguments = ["data", "synth", "--output", str(output), "--seed", "5", "--size", "train=20", "--size", "test=10"]
    result = runner.invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    manifest = load(output, "manifest.json")
    assert manifest["seed"] == 5 and manifest["sizes"] == {**DEFAULT_SIZES, "train": 20, "test": 10, "rl": 12}
    assert "wrote" in result.output

    (output / "notes.txt").write_text("keep me")
    refused = runner.invoke(cli, arguments)
    assert refused.exit_code != 0 and isinstance(refused.exception, DataError)
    assert "--overwrite" in str(refused.exception)

    replaced = runner.invoke(cli, [*arguments[:-2], "--size", "test=15", "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert load(output, "manifest.json")["sizes"]["test"] == 15
    assert (output / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("bad", ["train", "train=x", "=3", "epochs=3"])
def test_cli_rejects_bad_size_with_one_line(tmp_path: Path, capsys, bad: str) -> None:
    from medzoo.app.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["data", "synth", "--output", str(tmp_path / "x"), "--size", bad])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "\n" not in error and "size" in error
    assert not (tmp_path / "x").exists()
