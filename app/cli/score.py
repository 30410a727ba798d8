"""``medzoo score``: score a prediction file against a benchmark's references, without a model.

Predictions are either an answer jsonl (one ``{"question_id", "text", ...}`` per line, as LLaVA-Med's
``model_vqa.py`` writes) or, for ColonINST, the ColonINST json whose records carry a
``{"from": "prediction", "value": ...}`` turn (then ``--references`` may be left out: the same file holds
both). Questions without a prediction are scored as empty answers and reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from medzoo.core.errors import DataError
from medzoo.core.file_io.text_files import iter_text_lines, read_text_file

if TYPE_CHECKING:
    from medzoo.core.interfaces.benchmark import Benchmark

MAX_EXAMPLES = 5


def parse_options(pairs: tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` strings -> dict; a pair without ``=`` is an error naming it."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DataError(f"option {pair!r}: expected KEY=VALUE")
        options[key.strip()] = value.strip()
    return options


def _json_or_none(path: Path) -> Any:
    try:
        return json.loads(read_text_file(path, "predictions (JSON lines or a JSON list)"))
    except json.JSONDecodeError:
        return None


def read_answer_lines(path: Path) -> list[dict]:
    """The records of an answer jsonl; a line that is not a json object with question_id is an error."""
    answers = []
    for number, line in iter_text_lines(path, "one JSON answer per line"):
        if not line.strip():
            continue
        try:
            answer = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: line {number} is not json ({error.msg})") from None
        if not isinstance(answer, dict) or "question_id" not in answer:
            raise DataError(f"{path}: line {number}: expected an object with question_id and text")
        answers.append(answer)
    return answers


def is_conversation_file(path: Path) -> bool:
    """True for a json list of conversation records (ColonINST with prediction turns)."""
    data = _json_or_none(path)
    return isinstance(data, list) and any(isinstance(item, dict) and "conversations" in item for item in data)


def load_predictions(path: Path, benchmark: Any) -> tuple[dict[str, str], int]:
    """(question id -> prediction text, number of duplicate ids, the last one kept)."""
    if not path.is_file():
        raise DataError(f"{path}: no such prediction file")
    if is_conversation_file(path):
        items = benchmark.load(str(path))
        found = {item.question_id: item.metadata["prediction"] for item in items if "prediction" in item.metadata}
        if not found:
            raise DataError(f'{path}: no record carries a {{"from": "prediction"}} turn')
        return found, 0
    data = _json_or_none(path)
    answers = data if isinstance(data, list) else read_answer_lines(path)
    predictions: dict[str, str] = {}
    duplicates = 0
    for index, answer in enumerate(answers):
        if not isinstance(answer, dict) or "question_id" not in answer:
            raise DataError(f"{path}: answer {index}: expected an object with question_id and text")
        question_id = str(answer["question_id"])
        duplicates += question_id in predictions
        predictions[question_id] = str(answer.get("text", ""))
    return predictions, duplicates


def score_files(benchmark_name: str, references: str | None, predictions: str, options: dict[str, str]) -> dict:
    """Score ``predictions`` against ``references`` (or the prediction file itself) for one benchmark."""
    from medzoo.core.plugin_system.manager import components

    factory = components().get("benchmark", benchmark_name).factory
    benchmark: Benchmark = factory(**{"require_images": "false", **options})
    prediction_path = Path(predictions).expanduser()
    if references is None:
        if not is_conversation_file(prediction_path):
            raise DataError(
                f"{prediction_path}: --references is needed unless the predictions are a ColonINST json "
                'with {"from": "prediction"} turns'
            )
        references = str(prediction_path)
    items = benchmark.load(str(Path(references).expanduser()))
    if not items:
        raise DataError(f"{references}: no usable reference records for benchmark {benchmark_name}")
    found, duplicates = load_predictions(prediction_path, benchmark)
    metrics = benchmark.score(found, items)
    reference_ids = {item.question_id for item in items}
    missing = [item.question_id for item in items if item.question_id not in found]
    unmatched = [question_id for question_id in found if question_id not in reference_ids]
    report = benchmark.last_report
    return {
        "benchmark": benchmark_name,
        "split": benchmark.split,
        "references": str(references),
        "predictions": str(prediction_path),
        "metrics": metrics,
        "missing_predictions": len(missing),
        "missing_examples": missing[:MAX_EXAMPLES],
        "unmatched_predictions": len(unmatched),
        "unmatched_examples": unmatched[:MAX_EXAMPLES],
        "duplicate_predictions": duplicates,
        "skipped_references": report.total_skipped if report else 0,
        "skipped_references_by_reason": dict(sorted(report.skipped.items())) if report else {},
        "reference_report": report.summary() if report else "",
    }


def _warnings(result: dict) -> list[str]:
    lines = []
    if result["missing_predictions"]:
        examples = ", ".join(result["missing_examples"])
        lines.append(
            f"{result['missing_predictions']} question(s) have no prediction and were scored as empty answers "
            f"(e.g. {examples})"
        )
    if result["unmatched_predictions"]:
        examples = ", ".join(result["unmatched_examples"])
        lines.append(f"{result['unmatched_predictions']} prediction(s) match no reference question (e.g. {examples})")
    if result["duplicate_predictions"]:
        lines.append(f"{result['duplicate_predictions']} duplicate question id(s) in the predictions; the last one counts")
    if result["skipped_references"]:
        lines.append(f"references: {result['reference_report']}")
    return lines


def format_table(result: dict) -> str:
    """Metric name and value per line, percentages to two decimals."""
    metrics = result["metrics"]
    width = max(len(key) for key in metrics)
    lines = [f"{result['benchmark']}" + (f" ({result['split']})" if result.get("split") else "")]
    for key, value in metrics.items():
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"  {key:<{width}}  {shown:>8}")
    if result.get("skipped_references"):  # references left out of every metric above, by reason
        reasons = ", ".join(f"{reason}: {n}" for reason, n in result["skipped_references_by_reason"].items())
        lines.append(f"  skipped references: {result['skipped_references']} ({reasons})")
    return "\n".join(lines)


@click.command("score")
@click.option("--benchmark", "-b", "benchmark_name", required=True, help="Registered benchmark name, e.g. vqa-rad.")
@click.option(
    "--references", "-r", default=None,
    help="Ground truth: LLaVA-Med test.json, an original test file, or a ColonINST json.",
)  # fmt: skip
@click.option(
    "--predictions", "-p", required=True,
    help="Answer jsonl (question_id, text, ...) or a ColonINST json with prediction turns.",
)  # fmt: skip
@click.option("--option", "option_pairs", multiple=True, help="Benchmark option KEY=VALUE (e.g. split=seen).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as json.")
def score(
    benchmark_name: str, references: str | None, predictions: str, option_pairs: tuple[str, ...], as_json: bool
) -> None:
    """Score a prediction file against a benchmark's references (metrics in percent)."""
    result = score_files(benchmark_name, references, predictions, parse_options(option_pairs))
    for line in _warnings(result):
        click.echo(f"warning: {line}", err=True)
    click.echo(json.dumps(result, indent=2) if as_json else format_table(result))
