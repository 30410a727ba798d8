"""Leaderboard: run directories and published rows rendered as markdown, csv and html, one table per protocol."""

from __future__ import annotations

import csv
import io
import json
import re
from html import escape
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from medzoo.app.cli.main import cli
from medzoo.app.leaderboard.protocols import PROTOCOLS, PUBLISHED_PROTOCOLS
from medzoo.app.leaderboard.published_results import PUBLISHED_CSV, published_rows, read_published
from medzoo.app.leaderboard.render import leaderboard_from_runs, render, render_run_dirs
from medzoo.app.leaderboard.table import ColumnGroup
from medzoo.core.errors import DataError

REFERENCE_CSV = Path("/work/shared/reference/published-results.csv")


def _run(root: Path, name: str, model: str | None, metrics: dict[str, dict]) -> Path:
    run_dir = root / name
    for benchmark, values in metrics.items():
        folder = run_dir / "eval" / benchmark
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(values))
    if model:
        (run_dir / "run.json").write_text(json.dumps({"model": {"name": model}}))
    return run_dir


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    first = _run(
        tmp_path, "run-a", "tiny-llava-med",
        {"vqa-rad": {"benchmark": "vqa-rad", "split": "test",
                     "metrics": {"open_recall": 41.5, "closed_accuracy": 70.25, "f1": 12.0, "n": 451}},
         "coloninst-rec": {"mean_iou": 33.333, "acc_at_0_5": 30.0, "n": 10}},
    )  # fmt: skip
    second = _run(tmp_path, "run-b", None, {"vqa-rad": {"open_recall": 55.0, "closed_accuracy": 60.0}})
    return [first, second]


def test_published_csv_keeps_the_reference_facts():
    rows = read_published()
    assert len(rows) == 223 and all(row["source"] for row in rows)
    assert {row["protocol"] for row in rows} <= set(PUBLISHED_PROTOCOLS)
    if REFERENCE_CSV.is_file():  # the reference rows, in order, with a protocol column added
        with REFERENCE_CSV.open(newline="", encoding="utf-8") as handle:
            reference = list(csv.DictReader(handle))
        assert [{k: v for k, v in row.items() if k != "protocol"} for row in rows[: len(reference)]] == reference
    protocol = {(row["model"], row["variant"], row["benchmark"]): row["protocol"] for row in rows}
    assert protocol["LLaVA", "zero-shot", "VQA-RAD"] == "zero-shot"  # the only zero-shot row of the paper's table
    for variant in ("from LLaVA", "from Vicuna", "BiomedCLIP"):
        assert protocol["LLaVA-Med", variant, "SLAKE"] == "llava-med-finetuned"
    assert protocol["M2I2", "supervised", "PathVQA"] == "llava-med-finetuned"
    assert protocol["LLaVA-Tri", "MedTrinity-25M", "VQA-RAD"] == "llava-med-finetuned"
    assert {p for (_, _, benchmark), p in protocol.items() if benchmark.startswith("ColonINST")} == {"coloninst"}


def test_every_protocol_has_a_one_line_legend():
    assert all(p.description and "\n" not in p.description and p.name == name for name, p in PROTOCOLS.items())
    assert "synthetic" in PROTOCOLS and "synthetic" not in PUBLISHED_PROTOCOLS


def test_an_unknown_protocol_in_the_csv_is_a_one_line_error(tmp_path):
    lines = PUBLISHED_CSV.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "published.csv"
    bad.write_text("\n".join([lines[0], lines[1], lines[2].replace(",zero-shot,65.07", ",fine-tuned,65.07")]) + "\n")
    with pytest.raises(DataError) as error:
        read_published(bad)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{bad}: line 3: protocol 'fine-tuned' is not known")
    assert message.endswith("expected one of " + ", ".join(PUBLISHED_PROTOCOLS))
    bad.write_text("\n".join([lines[0], lines[1].replace(",zero-shot,50.00", ",synthetic,50.00")]) + "\n")
    with pytest.raises(DataError, match="line 2: protocol 'synthetic' is not known"):
        read_published(bad)
    bad.write_text("benchmark,split,metric,model,variant,value,source\nVQA-RAD,test,open_recall,X,,1.0,paper\n")
    with pytest.raises(DataError, match="expected the columns .*variant, protocol, value"):
        read_published(bad)


#: field.md's current medical VLMs: (model label, protocol, metric, {benchmark: value}, source)
FIELD_ROWS = [
    ("LLaVA-Med v1.5", "huatuogpt-zero-shot", "overall_accuracy", {"vqa-rad": 51.4, "slake": 48.6, "pathvqa": 56.8},
     "HuatuoGPT-Vision README"),
    ("HuatuoGPT-Vision-34B", "huatuogpt-zero-shot", "overall_accuracy",
     {"vqa-rad": 68.1, "slake": 76.9, "pathvqa": 63.5}, "HuatuoGPT-Vision README (exact protocol unverified)"),
    ("LLaVA-Med++", "llava-med-finetuned", "overall_accuracy", {"vqa-rad": 81.6, "slake": 87.8},
     "MedTrinity-25M README"),
    ("MedGemma-4B (model card)", "model-card-f1", "token_f1", {"vqa-rad": 49.9, "slake": 72.3}, "MedGemma model card"),
    ("MedGemma-4B (MedEvalKit)", "medevalkit-judge", "overall_accuracy", {"vqa-rad": 72.5}, "MedEvalKit issue 21"),
    ("Lingshu-7B", "medevalkit-judge", "overall_accuracy", {"vqa-rad": 67.9, "slake": 83.1, "pathvqa": 61.9},
     "Lingshu paper (arXiv 2506.07044) Table 6"),
    ("Lingshu-32B", "medevalkit-judge", "overall_accuracy", {"vqa-rad": 76.5, "slake": 89.2, "pathvqa": 65.9},
     "Lingshu paper (arXiv 2506.07044) Table 6"),
    ("Qwen2.5-VL-7B", "medevalkit-judge", "overall_accuracy", {"vqa-rad": 64.5, "slake": 67.2, "pathvqa": 44.1},
     "Lingshu paper (arXiv 2506.07044) Table 6"),
]  # fmt: skip


def test_the_current_medical_vlms_come_with_their_protocol_and_source():
    rows = {(row.model, row.protocol): row for row in published_rows()}  # a model may also have MCQ rows
    for model, protocol, metric, values, source in FIELD_ROWS:
        row = rows[model, protocol]
        assert row.protocol == protocol and row.source.startswith(source), model
        assert {group.benchmark: scores for group, scores in row.scores.items()} == {
            benchmark: {metric: value} for benchmark, value in values.items()
        }, model  # one figure without open/closed is never recorded as closed accuracy
    page = render(leaderboard_from_runs([], published=True), "md")
    assert "| Lingshu-32B | Lingshu paper (arXiv 2506.07044) Table 6, MedEvalKit with a GPT-4.1 judge | **76.50** |" in page


def test_published_rows_map_names_and_label_repeated_models():
    rows = {row.model: row for row in published_rows()}
    vicuna = rows["LLaVA-Med (from Vicuna)"]
    assert vicuna.scores[ColumnGroup("vqa-rad", "test")]["open_recall"] == 64.39
    assert vicuna.source == "LLaVA-Med paper VQA table" and vicuna.kind == "published"
    colongpt = rows["ColonGPT (ColonGPT)"]
    assert colongpt.scores[ColumnGroup("coloninst-rec", "seen")]["mean_iou"] == 65.89
    assert colongpt.scores[ColumnGroup("coloninst-cls", "unseen")]["accuracy"] == 85.81
    assert "SigLIP" in colongpt.details


def test_board_columns_follow_headline_metrics(runs):
    board = leaderboard_from_runs(runs)
    assert [row.model for row in board.rows] == ["tiny-llava-med", "run-b"]
    assert [column.key for column in board.columns] == [
        "vqa-rad:test:open_recall", "vqa-rad:test:closed_accuracy",
        "coloninst-rec:unseen:mean_iou", "coloninst-rec:unseen:acc_at_0_5",
    ]  # fmt: skip
    assert board.value(board.rows[1], board.columns[2]) is None


def test_markdown_and_csv(runs):
    board = leaderboard_from_runs(runs, published=True)
    markdown = render(board, "md")
    assert "| tiny-llava-med |" in markdown and "33.33" in markdown and "—" in markdown
    assert "LLaVA-Med (from LLaVA)" in markdown and "LLaVA-Med paper VQA table" in markdown
    assert "ColonGPT" in markdown  # published coloninst-rec rows come along with our coloninst-rec run
    assert "ColonINST-CLS" not in markdown and "coloninst-cls" not in markdown  # benchmarks no run reports
    table = list(csv.DictReader(io.StringIO(render(board, "csv"))))
    ours = next(row for row in table if row["model"] == "tiny-llava-med")
    assert ours["vqa-rad:test:closed_accuracy"] == "70.25" and ours["kind"] == "run"
    assert ours["protocol"] == "zero-shot" and ours["protocol_basis"] == "training not recorded with these scores: zero-shot assumed"
    m2i2 = next(row for row in table if row["model"] == "M2I2")
    assert m2i2["vqa-rad:test:open_recall"] == "" and m2i2["vqa-rad:test:closed_accuracy"] == "83.50"
    assert m2i2["protocol"] == "llava-med-finetuned"
    order = [row["protocol"] for row in table]  # grouped: our runs' protocol first, then the vocabulary's order
    assert order == sorted(order, key=lambda name: (name != "zero-shot", list(PROTOCOLS).index(name)))


def test_html_is_self_contained_sortable_and_charted(runs):
    page = render(leaderboard_from_runs(runs, published=True), "html")
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page and "<rect" in page and "addEventListener" in page
    assert 'class="sortable" data-col="vqa-rad:test:open_recall"' in page
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    assert "tiny-llava-med" in page and "LLaVA-Med paper VQA table" in page


def test_run_directory_errors_name_the_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no eval/<benchmark>/metrics.json"):
        leaderboard_from_runs([tmp_path / "empty"])
    bad = _run(tmp_path, "bad", None, {"slake": {"note": "text only"}})
    with pytest.raises(DataError, match="no numeric metrics"):
        leaderboard_from_runs([bad])
    with pytest.raises(DataError, match="expected one of md, csv, html"):
        render(leaderboard_from_runs([]), "pdf")


def test_leaderboard_command(runs, tmp_path):
    result = CliRunner().invoke(cli, ["leaderboard", *map(str, runs), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("model,kind,protocol,protocol_basis,source,details,vqa-rad:test:")
    output = tmp_path / "board.html"
    result = CliRunner().invoke(cli, ["leaderboard", str(runs[0]), "--published", "--format", "html", "-O", str(output)])
    assert result.exit_code == 0, result.output
    assert "<table" in output.read_text()
    result = CliRunner().invoke(cli, ["leaderboard", "--published"])
    assert result.exit_code == 0 and "ColonGPT (ColonGPT)" in result.stdout and "LLaVA-Tri" in result.stdout


def test_flat_metrics_file_as_the_evaluator_writes_it(tmp_path):
    run_dir = _run(
        tmp_path, "runs-tiny", None,
        {"synth-coloninst-rec": {"mean_iou": 12.5, "acc_at_0_5": 10.0, "n": 4, "seconds": 3.2,
                                 "benchmark": "synth-coloninst-rec", "split": "seen", "model_id": "model",
                                 "image_ablation": {"kind": "noise", "metrics": {"mean_iou": 1.0}}}},
    )  # fmt: skip
    (run_dir / "run.json").write_text(json.dumps({"recipe": "tiny", "stages": []}))
    text = render_run_dirs([run_dir], fmt="md")
    assert "| tiny |" in text and "synth-coloninst-rec (seen) mean_iou" in text and "12.50" in text
    assert "seconds" not in text and "ColonGPT" not in text


def test_markdown_leaderboard_adds_the_image_ablation_table(tmp_path):
    run_dir = _run(
        tmp_path, "ablated", "tiny",
        {"synth-vqa-rad": {"open_recall": 90.0, "closed_accuracy": 96.5, "benchmark": "synth-vqa-rad",
                           "image_ablation": {"kind": "noise",
                                              "metrics": {"open_recall": 30.0, "closed_accuracy": 50.25}}},
         "synth-slake": {"open_recall": 80.0, "closed_accuracy": 90.0}},
    )  # fmt: skip
    result = CliRunner().invoke(cli, ["leaderboard", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "image ablation (noise)" in result.stdout
    assert "| tiny | synth-vqa-rad | closed_accuracy | 96.50 | 50.25 | +46.25 |" in result.stdout
    assert "| tiny | synth-vqa-rad | open_recall | 90.00 | 30.00 | +60.00 |" in result.stdout
    assert "| tiny | synth-slake |" not in result.stdout  # not ablated: no row
    csv_text = CliRunner().invoke(cli, ["leaderboard", str(run_dir), "--format", "csv"]).stdout
    assert "image ablation" not in csv_text


def test_rows_say_which_prompt_and_decoding_produced_them(tmp_path):
    """A run's row carries the protocol its metrics.json recorded (LLaVA-Med v1.0: the paper's prompt, sampled)."""
    for name, protocol in {
        "v10": {"prompt_template": "llava_med_v1_vqa", "decoding": "sampled (temperature 0.7)", "seed": 0},
        "v15": {"prompt_template": "mistral_instruct", "decoding": "greedy", "seed": 0},
    }.items():
        folder = tmp_path / name / "eval" / "vqa-rad"
        folder.mkdir(parents=True)
        metrics = {"benchmark": "vqa-rad", "closed_accuracy": 50.0, "open_recall": 20.0, "protocol": protocol}
        (folder / "metrics.json").write_text(json.dumps(metrics))
    text = render(leaderboard_from_runs([tmp_path / "v10", tmp_path / "v15"], published=False), "md")
    assert "| Notes |" in text.splitlines()[0]
    assert "prompt llava_med_v1_vqa, sampled (temperature 0.7), seed 0; training not recorded" in text
    assert "prompt mistral_instruct, greedy; training not recorded with these scores: zero-shot assumed |" in text


# ---------------------------------------------------------------- protocols of medzoo rows, ranks within them


def _trained_run(root: Path, name: str, stages: list[tuple[str, str]], datasets: dict[str, list[dict]] | None,
                 metrics: dict[str, dict]) -> Path:
    """A run folder as ``medzoo run`` leaves it: run.json with the stages that ran, recipe.yaml with their data."""
    run_dir = _run(root, name, None, metrics)
    stage_records = [{"stage": stage, "role": role, "steps": 3} for stage, role in stages]
    (run_dir / "run.json").write_text(json.dumps({"recipe": name, "stages": stage_records}))
    if datasets is not None:
        recipe = {"name": name, "data": {"root": "/data/vqa_rad_project"},
                  "stages": [{"name": stage, "role": role, "datasets": datasets.get(stage, [])} for stage, role in stages]}
        (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return run_dir


VQA = {"open_recall": 40.0, "closed_accuracy": 70.0}
TWO_STAGES = [("alignment", "alignment"), ("instruct", "instruct")]


def test_medzoo_rows_get_their_protocol_from_what_the_run_recorded(tmp_path):
    from medzoo.app.leaderboard.runs import run_rows

    def protocols(run_dir: Path) -> dict[str, tuple[str, str, set[str]]]:
        return {row.protocol: (row.model, row.basis, {g.benchmark for g in row.scores}) for row in run_rows(run_dir)}

    captions = [{"name": "pmc-captions", "path": "/data/vqa_rad_project/pmc/captions.jsonl"}]  # root names vqa_rad
    finetuned = _trained_run(
        tmp_path, "downstream", [*TWO_STAGES, ("downstream", "downstream")],
        {"alignment": captions, "downstream": [{"name": "med-vqa", "path": "/data/vqa_rad_project/vqa_rad/train.json"}]},
        {"vqa-rad": VQA, "slake": VQA, "coloninst-cls": {"accuracy": 50.0}},
    )  # fmt: skip
    assert protocols(finetuned) == {
        "llava-med-finetuned": ("downstream", "stage downstream trained on the train split", {"vqa-rad"}),
        "zero-shot": ("downstream", "no stage trained on the train split", {"slake", "coloninst-cls"}),
    }
    colon = _trained_run(tmp_path, "colongpt", TWO_STAGES,
                         {"instruct": [{"name": "colon-inst", "path": "/data/vqa_rad_project/Json-file/train/3tasks.json"}]},
                         {"coloninst-cls": {"accuracy": 90.0}, "coloninst-rec": {"mean_iou": 40.0}})  # fmt: skip
    assert protocols(colon) == {"coloninst": ("colongpt", "stage instruct trained on the train split",
                                              {"coloninst-cls", "coloninst-rec"})}
    unrecorded = _trained_run(tmp_path, "no-recipe", [*TWO_STAGES, ("downstream", "downstream")], None, {"slake": VQA})
    assert protocols(unrecorded)["llava-med-finetuned"][1] == "downstream stage downstream ran, its data not recorded"
    two_stages = _trained_run(tmp_path, "two-stages", TWO_STAGES, None, {"slake": VQA})
    assert protocols(two_stages)["zero-shot"][1] == (
        "no downstream stage ran (data of stage alignment, instruct not recorded): zero-shot assumed"
    )
    contender = _run(tmp_path, "contender", None, {"vqa-rad": {**VQA, "protocol": {
        "prompt_template": "chat_template@0123abcd", "decoding": "greedy", "seed": 0}}})  # fmt: skip
    assert protocols(contender)["zero-shot"][1] == "a contender, trained by its authors (not recorded): zero-shot assumed"
    synthetic = _trained_run(tmp_path, "tiny", TWO_STAGES,
                             {"instruct": [{"name": "med-vqa", "path": "/data/vqa_rad_project/vqa_rad/vqa_rad.json"}]},
                             {"synth-vqa-rad": VQA, "synth-coloninst-cls": {"accuracy": 80.0},
                              "llava-med-chat": {"relative_score": 50.0, "n": 3}})  # fmt: skip
    assert protocols(synthetic) == {
        "synthetic": ("tiny", "synth-coloninst-cls: no stage trained on the train split; "
                      "synth-vqa-rad: stage instruct trained on the train split", {"synth-vqa-rad", "synth-coloninst-cls"}),
        "chat-judge": ("tiny", "", {"llava-med-chat"}),
    }


def test_rows_of_different_protocols_are_never_ranked_against_each_other(tmp_path):
    """A zero-shot run above every fine-tuned row is the best of its own table, not of the fine-tuned one."""
    strong = _run(tmp_path, "strong-zero-shot", None, {"vqa-rad": {"open_recall": 99.0, "closed_accuracy": 99.0}})
    tuned = _trained_run(tmp_path, "tuned", [*TWO_STAGES, ("downstream", "downstream")],
                         {"downstream": [{"name": "med-vqa", "path": "/d/vqa_rad/train.json"}]},
                         {"vqa-rad": {"open_recall": 10.0, "closed_accuracy": 20.0}})  # fmt: skip
    board = leaderboard_from_runs([strong, tuned], published=True)
    sections = {section.protocol: section for section in board.sections}
    assert list(sections)[:2] == ["zero-shot", "llava-med-finetuned"]  # the runs' protocols first
    closed = next(c for c in sections["llava-med-finetuned"].columns if c.key == "vqa-rad:test:closed_accuracy")
    assert sections["llava-med-finetuned"].best(closed) == 84.90  # LLaVA-Tri, not the zero-shot 99
    assert sections["zero-shot"].best(closed) == 99.0 and board.best(closed) is None  # the whole board ranks nothing
    assert [row.model for row in sections["llava-med-finetuned"].rows][0] == "tuned"
    assert "strong-zero-shot" not in {row.model for row in sections["llava-med-finetuned"].rows}

    markdown = render(board, "md")
    tables = markdown.split("\n\n")
    finetuned_table = next(t for t in tables if "| tuned |" in t)
    assert "| tuned | " in finetuned_table and "| 20.00 |" in finetuned_table and "**84.90**" in finetuned_table
    assert "99.00" not in finetuned_table and "**99.00**" in next(t for t in tables if "strong-zero-shot" in t)
    legends = [line for line in markdown.splitlines() if line.startswith("Protocol **")]
    assert len(legends) == len(board.sections) == len(re.findall(r"^\| Model \|", markdown, re.MULTILINE))
    assert legends[0].startswith("Protocol **zero-shot**: " + PROTOCOLS["zero-shot"].description)
    assert any(line.startswith("Protocol **medevalkit-judge**: MedEvalKit") for line in legends)

    page = render(board, "html")
    found = re.findall(r'<section class="protocol" id="protocol-([\w-]+)"><h2>[\w-]+</h2>'
                       r'<p class="protocol-legend">([^<]+)</p>', page)  # fmt: skip
    assert [name for name, _ in found] == [section.protocol for section in board.sections]
    assert all(legend == escape(PROTOCOLS[name].description) for name, legend in found)
    finetuned_html = page.split('id="protocol-llava-med-finetuned"')[1].split("</section>")[0]
    assert "strong-zero-shot" not in finetuned_html and "tuned" in finetuned_html  # tables and charts per protocol
    assert 'class="num best" data-col="vqa-rad:test:closed_accuracy" data-value="84.9000"' in finetuned_html
    zero_shot_html = page.split('id="protocol-zero-shot"')[1].split("</section>")[0]
    assert 'class="num best" data-col="vqa-rad:test:closed_accuracy" data-value="99.0000"' in zero_shot_html
    assert "<svg" in zero_shot_html and "LLaVA-Tri" not in zero_shot_html


# ---------------------------------------------------------------- row names: run.json, else the model that answered


def _answered(root: Path, folder: str, model_ids: dict[str, str], recipe: str | None = None) -> Path:
    """An OUT folder as ``medzoo eval ... -d OUT/eval/<benchmark>`` leaves it: flat metrics.json with a model_id."""
    run_dir = _run(root, folder, None, {benchmark: {**VQA, "benchmark": benchmark, "model_id": model_id}
                                        for benchmark, model_id in model_ids.items()})  # fmt: skip
    if recipe is not None:
        (run_dir / "run.json").write_text(json.dumps({"recipe": recipe, "stages": []}))
    return run_dir


def test_a_row_without_run_json_is_named_by_the_model_that_answered(tmp_path):
    from medzoo.app.leaderboard.runs import run_rows

    hub = _answered(tmp_path, "out", {"vqa-rad": "llava-hf/llava-1.5-7b-hf", "slake": "llava-hf/llava-1.5-7b-hf"})
    assert [(row.model, row.source, row.details) for row in run_rows(hub)] == [
        ("llava-hf/llava-1.5-7b-hf", str(hub), "")]
    local = _answered(tmp_path, "out2", {"vqa-rad": "/models/runs/tiny-med/final"})
    (row,) = run_rows(local)
    assert row.model == "tiny-med" and row.details == "model_id /models/runs/tiny-med/final"
    csv_rows = list(csv.DictReader(io.StringIO(render(leaderboard_from_runs([local], published=False), "csv"))))
    assert [(r["model"], r["source"], r["details"]) for r in csv_rows] == [
        ("tiny-med", str(local), "model_id /models/runs/tiny-med/final")]
    unnamed = _answered(tmp_path, "unnamed-folder", {"vqa-rad": "model"})  # the placeholder names nothing
    assert [row.model for row in run_rows(unnamed)] == ["unnamed-folder"]


def test_a_medzoo_run_keeps_its_recipe_name(tmp_path):
    from medzoo.app.leaderboard.runs import run_rows

    run_dir = _answered(tmp_path, "run-folder", {"vqa-rad": "/elsewhere/other/final"}, recipe="tiny")
    assert [(row.model, row.details) for row in run_rows(run_dir)] == [("tiny", "")]


def test_benchmarks_that_disagree_on_the_model_say_so(tmp_path):
    from medzoo.app.leaderboard.runs import model_name, run_rows

    run_dir = _answered(tmp_path, "out", {"slake": "Qwen/Qwen2-VL-2B-Instruct", "vqa-rad": "/m/llava-1.5-7b-hf"})
    (row,) = run_rows(run_dir)
    assert row.model == model_name(run_dir) == "mixed: Qwen/Qwen2-VL-2B-Instruct, llava-1.5-7b-hf"
    assert row.details == ("model_id differs between benchmarks (slake: Qwen/Qwen2-VL-2B-Instruct; "
                           "vqa-rad: /m/llava-1.5-7b-hf)")


@pytest.mark.parametrize(("model_id", "shown"), [
    ("llava-hf/llava-1.5-7b-hf", "llava-hf/llava-1.5-7b-hf"), ("llava-med-v1.5", "llava-med-v1.5"),
    ("/data/models/llava-1.5-7b-hf/", "llava-1.5-7b-hf"), ("runs/tiny/final", "tiny"), ("./tiny", "tiny"),
    ("~/models/medgemma", "medgemma"), ("C:\\models\\medgemma", "medgemma"),
])  # fmt: skip
def test_a_local_path_is_shown_by_its_folder(model_id, shown):
    from medzoo.app.leaderboard.row_names import shown_model_id

    assert shown_model_id(model_id) == shown
