"""Leaderboard for the multiple-choice benchmarks: published rows with their protocol and source, a run's rows
beside them in the same protocol's table, and the per-subset details (modality, task, department...)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from medzoo.app.cli.main import cli
from medzoo.app.leaderboard.protocols import PROTOCOLS
from medzoo.app.leaderboard.published_results import published_rows, read_published
from medzoo.app.leaderboard.render import leaderboard_from_runs, render
from medzoo.app.leaderboard.subset_details import SubsetScore, read_subsets, subset_tables
from medzoo.app.leaderboard.table import ColumnGroup

MEDEVALKIT_TABLE = "MedEvalKit Readme multimodal results table"
MCQ_BENCHMARKS = {"PMC-VQA": "pmc-vqa", "OmniMedVQA": "omnimedvqa", "MMMU-Med": "mmmu-med",
                  "MedXpertQA-MM": "medxpertqa-mm"}  # fmt: skip
#: read off MedEvalKit's Readme results image (assets/mm_eval.png, alibaba-damo-academy/MedEvalKit 9b12e3b):
#: model -> (MMMU-Med, PMC-VQA, OmniMedVQA, MedXpertQA)
PINNED = {
    "Lingshu-7B": (54.0, 56.3, 82.9, 26.7),
    "Lingshu-32B": (62.3, 57.9, 83.4, 30.9),
    "MedGemma-4B (MedEvalKit)": (43.7, 49.9, 69.8, 22.3),
    "LLaVA-Med-7B": (29.3, 30.5, 44.3, 20.3),
    "Qwen2.5-VL-7B": (50.6, 51.9, 63.6, 22.3),
}


def test_every_multiple_choice_row_parses_and_names_its_protocol_and_source():
    rows = [row for row in read_published() if row["benchmark"] in MCQ_BENCHMARKS]
    assert len(rows) == 40 and {row["benchmark"] for row in rows} == set(MCQ_BENCHMARKS)
    assert all(row["source"].startswith(MEDEVALKIT_TABLE) and "9b12e3b" in row["source"] for row in rows)
    assert all(row["metric"] == "accuracy" and 0 < float(row["value"]) < 100 for row in rows)
    by_benchmark = {row["benchmark"]: row["protocol"] for row in rows}
    # PMC-VQA, OmniMedVQA and MedXpertQA go through judge_multi_choice; MMMU through MMMU's own parser
    assert by_benchmark == {"PMC-VQA": "medevalkit-mcq", "OmniMedVQA": "medevalkit-mcq",
                            "MedXpertQA-MM": "medevalkit-mcq", "MMMU-Med": "medevalkit-mmmu"}  # fmt: skip
    assert {row["split"] for row in rows if row["benchmark"] == "MMMU-Med"} == {"unstated"}
    assert all("split not stated" in row["source"] for row in rows if row["benchmark"] == "MMMU-Med")
    assert "parse_multi_choice_response" in PROTOCOLS["medevalkit-mmmu"].description


def test_published_figures_map_onto_medzoo_benchmark_names():
    rows = {(row.model, row.protocol): row for row in published_rows()}
    for model, (mmmu, pmc, omni, xpert) in PINNED.items():
        mcq = rows[model, "medevalkit-mcq"]
        assert mcq.scores == {ColumnGroup("pmc-vqa"): {"accuracy": pmc}, ColumnGroup("omnimedvqa"): {"accuracy": omni},
                              ColumnGroup("medxpertqa-mm"): {"accuracy": xpert}}, model  # fmt: skip
        assert rows[model, "medevalkit-mmmu"].scores == {ColumnGroup("mmmu-med", "unstated"): {"accuracy": mmmu}}
    # the same model and variant under another protocol keeps its plain name; several variants are labelled
    assert ("Lingshu-7B", "medevalkit-judge") in rows and ("MedGemma-4B (model card)", "model-card-f1") in rows


def _mcq_run(root: Path, name: str, benchmark: str, accuracy: float, subsets: dict | None = None) -> Path:
    """A run folder as ``medzoo eval`` leaves it for a multiple-choice benchmark (flat metrics.json)."""
    folder = root / name / "eval" / benchmark
    folder.mkdir(parents=True)
    metrics = {"accuracy": accuracy, "n": 4, "n_right": 2, "n_missing": 0, "answer_protocol": "medevalkit",
               "benchmark": benchmark, "model_id": name, **({"subsets": subsets} if subsets else {})}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return root / name


def test_a_run_sits_beside_the_published_rows_of_its_protocol(tmp_path):
    run = _mcq_run(tmp_path, "tiny-mc", "pmc-vqa", 50.0)
    board = leaderboard_from_runs([run], published=True)
    sections = {section.protocol: section for section in board.sections}
    assert list(sections)[0] == "medevalkit-mcq"  # the run's protocol first
    section = sections["medevalkit-mcq"]
    assert [column.key for column in section.columns] == ["pmc-vqa:test:accuracy"]  # only benchmarks the run has
    models = [row.model for row in section.rows]
    assert models[0] == "tiny-mc" and {"Lingshu-7B", "Lingshu-32B", "GPT-4.1"} <= set(models)
    assert section.best(section.columns[0]) == 57.9  # Lingshu-32B
    assert "mmmu-med" not in {group.benchmark for row in board.rows for group in row.scores}

    markdown = render(board, "md")
    parts = markdown.split("\n\n")
    index = next(i for i, part in enumerate(parts) if "| tiny-mc |" in part)
    assert "| Lingshu-7B | MedEvalKit Readme multimodal results table" in parts[index] and "| 56.30 |" in parts[index]
    assert parts[index + 1].startswith("Protocol **medevalkit-mcq**: " + PROTOCOLS["medevalkit-mcq"].description)
    page = render(board, "html")
    mcq_html = page.split('id="protocol-medevalkit-mcq"')[1].split("</section>")[0]
    assert "tiny-mc" in mcq_html and "Lingshu-32B" in mcq_html and 'data-value="57.9000"' in mcq_html


def test_without_runs_every_new_column_is_shown_grouped_by_protocol():
    board = leaderboard_from_runs([], published=True)
    sections = {section.protocol: section for section in board.sections}
    assert [c.key for c in sections["medevalkit-mcq"].columns] == [
        "pmc-vqa:test:accuracy", "omnimedvqa:test:accuracy", "medxpertqa-mm:test:accuracy"]  # fmt: skip
    assert [c.key for c in sections["medevalkit-mmmu"].columns] == ["mmmu-med:unstated:accuracy"]
    assert list(sections).index("medevalkit-mcq") < list(sections).index("medevalkit-mmmu")


SUBSETS = {
    "modality": {"CT(Computed Tomography)": {"n": 2, "accuracy": 50.0}, "X-Ray": {"n": 2, "accuracy": 100.0}},
    "question_type": {"Anatomy Identification": {"n": 4, "accuracy": 75.0}},
}


def test_subsets_are_read_from_metrics_json(tmp_path):
    run = _mcq_run(tmp_path, "a", "omnimedvqa", 75.0, SUBSETS)
    subsets = read_subsets(run / "eval" / "omnimedvqa" / "metrics.json")
    assert subsets["modality"] == {"CT(Computed Tomography)": SubsetScore(2, 50.0), "X-Ray": SubsetScore(2, 100.0)}
    nested = tmp_path / "nested.json"  # the {"metrics": {...}} layout, and malformed entries left out
    nested.write_text(json.dumps({"metrics": {"accuracy": 1.0, "subsets": {
        "task": {"good": {"n": 3, "accuracy": 33.3}, "bad": {"n": "3", "accuracy": 1.0}, "worse": 7}}}}))
    assert read_subsets(nested) == {"task": {"good": SubsetScore(3, 33.3)}}
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"accuracy": 1.0}))
    assert read_subsets(plain) == {}


def test_the_details_show_each_run_per_subset_in_markdown_and_html(tmp_path):
    first = _mcq_run(tmp_path, "first", "omnimedvqa", 75.0, SUBSETS)
    second = _mcq_run(tmp_path, "second", "omnimedvqa", 25.0,
                      {"modality": {"X-Ray": {"n": 2, "accuracy": 0.0}, "MR": {"n": 2, "accuracy": 50.0}}})
    gmai = _mcq_run(tmp_path, "third", "gmai-mmbench", 40.0,
                    {"department": {"Urology": {"n": 1, "accuracy": 100.0}}})  # fmt: skip
    (gmai / "eval" / "gmai-mmbench" / "metrics.json").write_text(json.dumps(
        {**json.loads((gmai / "eval" / "gmai-mmbench" / "metrics.json").read_text()), "split": "val"}))
    tables = subset_tables([first, second, gmai])
    assert [(t.group.key, t.kind, t.models) for t in tables] == [
        ("omnimedvqa:test", "modality", ["first", "second"]),
        ("omnimedvqa:test", "question_type", ["first"]),
        ("gmai-mmbench:val", "department", ["third"]),
    ]
    assert tables[0].subsets == ["CT(Computed Tomography)", "MR", "X-Ray"]

    result = CliRunner().invoke(cli, ["leaderboard", str(first), str(second), str(gmai)])
    assert result.exit_code == 0, result.output
    details = result.output.split("details: accuracy per subset")[1]
    assert "omnimedvqa, per modality" in details and "gmai-mmbench (val), per department" in details
    assert "| modality | first | second |" in details
    assert "| CT(Computed Tomography) | 50.00 (2) | — |" in details and "| X-Ray | 100.00 (2) | 0.00 (2) |" in details
    assert "| MR | — | 50.00 (2) |" in details and "| Urology | 100.00 (1) |" in details

    page = render(leaderboard_from_runs([first, second], published=False), "html")
    html = page.split('id="subset-details"')[1].split("</section>")[0]
    assert 'data-benchmark="omnimedvqa:test" data-kind="modality"' in html
    assert '<td data-col="subset">X-Ray</td><td class="num">100.00 (2)</td><td class="num">0.00 (2)</td>' in html
    assert "subset-details" not in render(leaderboard_from_runs([], published=True), "html")


def test_two_runs_of_one_model_get_distinct_detail_columns(tmp_path):
    first = _mcq_run(tmp_path / "x", "same", "omnimedvqa", 75.0, SUBSETS)
    second = _mcq_run(tmp_path / "y", "same", "omnimedvqa", 25.0, SUBSETS)
    assert subset_tables([first, second])[0].models == ["same", f"same ({second})"]


def test_one_run_on_every_new_benchmark_gives_one_row_per_parser_protocol(tmp_path):
    run = _mcq_run(tmp_path, "tiny-all", "pmc-vqa", 50.0)
    for benchmark, parser, split in (("omnimedvqa", "medevalkit", "test"), ("gmai-mmbench", "vlmevalkit", "val")):
        folder = run / "eval" / benchmark
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(
            {"accuracy": 25.0, "n": 4, "answer_protocol": parser, "benchmark": benchmark, "split": split}))
    board = leaderboard_from_runs([run], published=True)
    sections = {section.protocol: section for section in board.sections}
    assert set(list(sections)[:2]) == {"medevalkit-mcq", "vlmevalkit-exact"}  # the run's two protocols first
    mcq, exact = sections["medevalkit-mcq"], sections["vlmevalkit-exact"]
    assert [c.key for c in mcq.columns] == ["pmc-vqa:test:accuracy", "omnimedvqa:test:accuracy"]
    assert [c.key for c in exact.columns] == ["gmai-mmbench:val:accuracy"]
    assert [row.model for row in exact.rows] == ["tiny-all"]  # no published GMAI-MMBench row is shipped
    assert mcq.best(mcq.columns[1]) == 83.4  # Lingshu-32B's OmniMedVQA, beside the run's 25.0
    markdown = render(board, "md")
    assert "| Model | Source | Notes | pmc-vqa accuracy | omnimedvqa accuracy |" in markdown
    assert "| Model | Source | Notes | gmai-mmbench (val) accuracy |" in markdown


def test_the_leaderboard_md_of_medzoo_run_and_sweep_carries_the_details(tmp_path):
    from medzoo.app.cli.run import _leaderboard

    run = _mcq_run(tmp_path, "swept", "omnimedvqa", 75.0, SUBSETS)
    text = _leaderboard([run], tmp_path / "leaderboard.md")
    assert "omnimedvqa, per question_type" in text and "| Anatomy Identification | 75.00 (4) |" in text
    assert (tmp_path / "leaderboard.md").read_text() == text


def test_an_mmmu_run_under_medevalkit_sits_with_the_published_mmmu_rows(tmp_path):
    """MMMU as MedEvalKit runs it parses with MMMU's own parser, not judge_multi_choice: its row is medevalkit-mmmu."""
    run = _mcq_run(tmp_path, "tiny-mmmu", "mmmu-med", 40.0)
    board = leaderboard_from_runs([run], published=True)
    sections = {section.protocol: section for section in board.sections}
    assert list(sections)[0] == "medevalkit-mmmu"
    assert "tiny-mmmu" in [row.model for row in sections["medevalkit-mmmu"].rows]
    others = [row.model for protocol, section in sections.items() if protocol != "medevalkit-mmmu"
              for row in section.rows]
    assert "tiny-mmmu" not in others


def test_gmai_mmbench_published_rows_are_the_authors_leaderboard_under_vlmevalkits_judged_protocol():
    """The GMAI-MMBench Readme's leaderboard (uni-medical/GMAI-MMBench README.md at 1ee81be), val and test."""
    from medzoo.app.leaderboard.published_results import read_published

    rows = [row for row in read_published() if row["benchmark"] == "GMAI-MMBench"]
    figures = {(row["model"], row["split"]): float(row["value"]) for row in rows}
    assert figures[("GPT-4o", "val")] == 53.53 and figures[("GPT-4o", "test")] == 53.96
    assert figures[("LLaVA-Med", "val")] == 20.54 and figures[("LLaVA-Med", "test")] == 19.60
    assert {row["protocol"] for row in rows} == {"vlmevalkit-judge"}
    assert all("uni-medical/GMAI-MMBench" in row["source"] for row in rows)
    board = leaderboard_from_runs([], published=True)
    section = {s.protocol: s for s in board.sections}["vlmevalkit-judge"]
    assert {c.key for c in section.columns} == {"gmai-mmbench:val:accuracy", "gmai-mmbench:test:accuracy"}
