"""OmniMedVQA: the open-access question files read with bad records counted by reason, MedEvalKit's options
(``A. text``) and its ``<answer>`` extraction before the judge, accuracy per modality, question type and source.

MedEvalKit behaviour read from alibaba-damo-academy/MedEvalKit, commit 9b12e3b34232a8779cc1275417bf4f72f03d28e0,
``utils/OmniMedVQA/OmniMedVQA.py`` (``construct_messages``: options ``f"{option}. {choice}"``, the reference the
letter of the option equal to ``gt_answer``; ``cal_metrics``: ``extract(response, "answer")`` then
``judge_multi_choice``, totals per question type and modality type).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from medzoo.core.errors import DataError
from medzoo.core.plugin_system.manager import components


def record(question_id: str, image: str, answer: str = "Liver", modality: str = "CT(Computed Tomography)", **extra):
    base = {"dataset": "Src", "question_id": question_id, "question_type": "Anatomy Identification",
            "question": "Which organ is shown?", "gt_answer": answer, "image_path": image, "modality_type": modality,
            "option_A": "Lung", "option_B": "Liver", "option_C": "Heart", "option_D": "Kidney"}
    base.update(extra)
    return base


@pytest.fixture
def omni(tmp_path: Path) -> Path:
    root = tmp_path / "OmniMedVQA"
    for name in ("a.png", "b.png"):
        (root / "Images" / "Src").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(root / "Images" / "Src" / name)
    folder = root / "QA_information" / "Open-access"
    folder.mkdir(parents=True)
    (folder / "Src.json").write_text(json.dumps([
        record("q1", "Images/Src/a.png"),
        record("q2", "Images/Src/b.png", answer="Lung", modality="X-Ray"),
        record("q2", "Images/Src/b.png"),  # duplicate id
        record("q3", "Images/Src/a.png", answer="Spleen"),  # not an option
        record("q4", "Images/Src/a.png", option_B="", option_C="", option_D=""),  # one option
        record("q5", "Images/Src/gone.png"),  # image nowhere
        {"question_id": "q6", "question": "No answer?", "image_path": "Images/Src/a.png"},  # missing field
    ]))
    return root


def benchmark(**options):
    return components().get("benchmark", "omnimedvqa").factory(**options)


def test_open_access_files_are_read_with_bad_records_counted_by_reason(omni):
    bench = benchmark()
    items = bench.load(str(omni))
    assert [(item.question_id, item.answer) for item in items] == [("q1", "B"), ("q2", "A")]
    assert items[0].image == omni / "Images" / "Src" / "a.png"
    assert dict(bench.last_report.skipped) == {"duplicate id": 1, "answer not among the options": 1,
                                               "fewer than two options": 1, "image not found": 1, "missing field": 1}
    assert bench.prompt(items[0]).splitlines()[3:5] == ["A. Lung", "B. Liver"]


def test_accuracy_per_modality_question_type_and_source(omni):
    bench = benchmark()
    items = bench.load(str(omni))
    result = bench.score({"q1": "B", "q2": "D"}, items)
    assert result["accuracy"] == 50.0
    assert result["subsets"]["modality"] == {"CT(Computed Tomography)": {"n": 1, "accuracy": 100.0},
                                             "X-Ray": {"n": 1, "accuracy": 0.0}}
    assert result["subsets"]["question_type"] == {"Anatomy Identification": {"n": 2, "accuracy": 50.0}}
    assert result["subsets"]["dataset"] == {"Src": {"n": 2, "accuracy": 50.0}}


def test_medevalkit_reads_the_answer_tags_first_here(omni):
    """'<answer>B</answer>\n\nC': OmniMedVQA's loader extracts the span first ('B', right); judge_multi_choice on
    the raw text takes the last paragraph's letter ('c', wrong), which is what PMC-VQA, judged without the
    extraction, gets (both confirmed by running the harness functions)."""
    bench = benchmark()
    items = bench.load(str(omni))
    assert bench.score({"q1": "<answer>B</answer>\n\nC", "q2": "A"}, items)["accuracy"] == 100.0
    from medzoo.plugins.benchmarks.multiple_choice.medevalkit import medevalkit_correct

    assert not medevalkit_correct("<answer>B</answer>\n\nC", ["A. Lung", "B. Liver", "C. Heart", "D. Kidney"], "B")
    strict = benchmark(protocol="strict")
    assert strict.score({"q1": "<answer>B</answer>", "q2": "A"}, strict.load(str(omni)))["accuracy"] == 50.0


def test_a_file_of_another_layout_is_one_line(tmp_path):
    folder = tmp_path / "QA_information" / "Open-access"
    folder.mkdir(parents=True)
    (folder / "x.json").write_text(json.dumps([{"id": 1, "text": "?"}]))
    with pytest.raises(DataError) as error:
        benchmark().load(str(tmp_path))
    assert str(error.value) == (f"{folder / 'x.json'}: not an OmniMedVQA question file: keys id, text; expected "
                                "question_id, question, gt_answer, image_path, option_A-option_D, question_type, "
                                "modality_type")


def test_the_synthetic_twin_reports_every_modality(synthetic_data):
    root = synthetic_data(seed=3, train=10, val=5, test=10)
    bench = components().get("benchmark", "synth-omnimedvqa").factory(root=str(root))
    items = bench.load()
    result = bench.score({item.question_id: item.answer for item in items}, items)
    assert result["accuracy"] == 100.0 and len(result["subsets"]["modality"]) >= 3
