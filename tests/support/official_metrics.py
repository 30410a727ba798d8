"""Run the OFFICIAL metric scripts on medzoo's metric-fidelity fixtures.

The official code is read from git at run time (never copied into this repository) and executed unmodified:

- LLaVA-Med ``llava/eval/run_eval_batch.py`` and ``run_eval.py`` (+ ``eval_metrics/``) at tag v1.0.0 (commit
  ``b9a98a7``, "fix closed accuracy calculation (#35)"), with nltk's ``sentence_bleu``; ``tabulate`` is swapped
  for a stand-in that hands back the rows, so the numbers arrive unrounded;
- IntelliScope ``script/multimodal_benchmark/multimodal_evaluator.py`` ``eval_engine`` (with scikit-learn),
  its fixed sample-count check (8929 / 45284 / ...) bypassed.

``tests/test_metric_fidelity.py`` uses it for its live checks (skipped where a git mirror or the official
code's dependencies are missing). Run as a script it re-records ``official_scores.json``::

    PYTHONPATH=/dir/with/scikit-learn .venv/bin/python tests/support/official_metrics.py

Where the official scripts cannot run a fixture row at all (a missing prediction: ``run_eval*.py`` assert
that answer ids equal question ids, the ColonINST evaluator mis-aligns its lists), the row is given the
empty prediction, which is what medzoo's benchmarks score a missing answer as.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

from support.hang_guard import SUBPROCESS_HANG_S

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "metric_fidelity"
RECORDED = FIXTURES / "official_scores.json"

LLAVA_MED_GIT = Path(os.environ.get("MEDZOO_LLAVA_MED_GIT", "/work/.mirror/microsoft+LLaVA-Med/repo"))
LLAVA_MED_COMMIT = "b9a98a736d2ef05bcf5ff345be6403fb3a664eaf"  # = tag v1.0.0
INTELLISCOPE_GIT = Path(os.environ.get("MEDZOO_INTELLISCOPE_GIT", "/work/.mirror/ai4colonoscopy+IntelliScope/repo"))
INTELLISCOPE_COMMIT = "573142f64d1e02d0910eaf515bc988b0c00b7fbe"

LLAVA_MED_FILES = (
    "llava/eval/run_eval_batch.py",
    "llava/eval/run_eval.py",
    "llava/eval/eval_metrics/__init__.py",
    "llava/eval/eval_metrics/evaluate_metrics.py",
    "llava/eval/eval_metrics/utils.py",
    "llava/eval/eval_metrics/glossary.py",
)
COLONINST_EVALUATOR = "script/multimodal_benchmark/multimodal_evaluator.py"

# official row name -> medzoo key
BATCH_ROWS = {
    "exact match score": "exact_match",
    "f1 score": "f1",
    "precision": "precision",
    "recall": "open_recall",
    "bleu_score": "bleu",
    "bleu_score_1": "bleu_1",
    "bleu_score_2": "bleu_2",
    "bleu_score_3": "bleu_3",
    "open accuracy": "open_accuracy",
    "yes/no accuracy": "closed_accuracy",
    "recall_closed": "closed_recall",
}
RUN_EVAL_ROWS = {"open accuracy": "open_accuracy_run_eval", "yes/no accuracy": "closed_accuracy_run_eval"}


def git_show(git_dir: Path, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(git_dir), "show", f"{commit}:{path}"], check=True, capture_output=True, text=True,
        timeout=SUBPROCESS_HANG_S,
    ).stdout


def has_commit(git_dir: Path, commit: str) -> bool:
    if not git_dir.exists():
        return False
    try:
        probe = subprocess.run(
            ["git", "-C", str(git_dir), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True, check=False,
            timeout=SUBPROCESS_HANG_S,
        )
    except OSError:  # no git
        return False
    return probe.returncode == 0


def llava_med_available() -> bool:
    return has_commit(LLAVA_MED_GIT, LLAVA_MED_COMMIT)


def intelliscope_available() -> bool:
    return has_commit(INTELLISCOPE_GIT, INTELLISCOPE_COMMIT)


@contextlib.contextmanager
def _working_directory(folder: str):
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _stand_in_modules(**modules: types.ModuleType):
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@functools.cache
def load_llava_med() -> tuple[types.ModuleType, types.ModuleType]:
    """(run_eval_batch, run_eval) as modules, imported from a temporary checkout of the pinned commit."""
    folder = Path(tempfile.mkdtemp(prefix="llava_med_eval_"))
    for path in LLAVA_MED_FILES:
        target = folder / Path(path).relative_to("llava/eval")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(git_show(LLAVA_MED_GIT, LLAVA_MED_COMMIT, path))
    fake_tabulate = types.ModuleType("tabulate")
    fake_tabulate.tabulate = lambda rows, headers=None: rows  # the rows, unrounded
    stand_ins = {"tabulate": fake_tabulate}
    try:
        importlib.import_module("pandas")
    except ImportError:  # imported by the scripts, never used by evaluate()
        stand_ins["pandas"] = types.ModuleType("pandas")
    sys.path.insert(0, str(folder))
    try:
        with _stand_in_modules(**stand_ins):
            batch = importlib.import_module("run_eval_batch")
            single = importlib.import_module("run_eval")
    finally:
        sys.path.remove(str(folder))
    return batch, single


@functools.cache
def load_coloninst_evaluator() -> types.ModuleType:
    """The ColonINST evaluator as a module (needs scikit-learn)."""
    folder = Path(tempfile.mkdtemp(prefix="coloninst_eval_"))
    (folder / "multimodal_evaluator.py").write_text(git_show(INTELLISCOPE_GIT, INTELLISCOPE_COMMIT, COLONINST_EVALUATOR))
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module("multimodal_evaluator")
    finally:
        sys.path.remove(str(folder))
    # the sample-count check (the real val/test sizes) would refuse a fixture; the loading loop stays official
    module.check_json_count = lambda file_path, expected_count: json.loads(Path(file_path).read_text("utf-8"))
    return module


def medvqa_fixture() -> list[dict[str, Any]]:
    return json.loads((FIXTURES / "medvqa_adversarial.json").read_text("utf-8"))


def medvqa_candidates() -> dict[str, list[Any]]:
    return json.loads((FIXTURES / "medvqa_candidates.json").read_text("utf-8"))


def coloninst_fixture(task: str) -> list[dict[str, Any]]:
    return json.loads((FIXTURES / f"coloninst_{task}.json").read_text("utf-8"))


def official_medvqa(items: list[dict[str, Any]], candidates: dict[str, list[Any]]) -> dict[str, float]:
    """run_eval_batch.evaluate's numbers (percent) plus run_eval.evaluate's two accuracies, by medzoo key."""
    batch, single = load_llava_med()
    gt = [
        {
            "id": item["id"],
            "answer_type": item["answer_type"],
            "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": item["reference"]}],
        }
        for item in items
    ]
    pred = [{"question_id": item["id"], "text": item.get("prediction", "")} for item in items]
    with tempfile.TemporaryDirectory() as folder, _working_directory(folder), contextlib.redirect_stdout(None):
        batch_rows = batch.evaluate(gt, pred, candidates)  # writes correct_answers_file.json into the cwd
        single_rows = single.evaluate(gt, pred, candidates)
    result = {BATCH_ROWS[name]: value for name, value in batch_rows}
    result.update({RUN_EVAL_ROWS[name]: value for name, value in single_rows if name in RUN_EVAL_ROWS})
    return result


def official_coloninst(task: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """eval_engine's ``eval_result`` for one task (fractions, as the evaluator writes them)."""
    evaluator = load_coloninst_evaluator()
    filled = []
    for item in items:
        conversations = list(item["conversations"])
        if not any(turn["from"] == "prediction" for turn in conversations):
            conversations.append({"from": "prediction", "value": ""})
        filled.append({**item, "conversations": conversations})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "predictions.json"
        path.write_text(json.dumps(filled), encoding="utf-8")
        args = argparse.Namespace(json_file=str(path), eval_task=task.upper(), eval_mode="test", write_to_json=False)
        with contextlib.redirect_stdout(None):
            evaluator.eval_engine(args)
        written = Path(str(path).replace(".json", "_eval.txt")).read_text("utf-8")
    return json.loads(written)["eval_result"][task.upper()]


def record() -> dict[str, Any]:
    import nltk
    import sklearn

    return {
        "about": "written by tests/support/official_metrics.py from the official scripts run on the fixtures here",
        "environment": {
            "python": platform.python_version(),
            "nltk": nltk.__version__,
            "scikit-learn": sklearn.__version__,
            "llava_med_commit": LLAVA_MED_COMMIT,
            "intelliscope_commit": INTELLISCOPE_COMMIT,
        },
        "medvqa": official_medvqa(medvqa_fixture(), medvqa_candidates()),
        "coloninst": {task: official_coloninst(task, coloninst_fixture(task)) for task in ("cls", "reg", "rec")},
    }


if __name__ == "__main__":
    RECORDED.write_text(json.dumps(record(), indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
    print(f"wrote {RECORDED}")
