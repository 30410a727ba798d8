"""Fault injection in evaluation (issue 15: torn files, resuming the wrong thing, silent drops).

Answer files (``predictions*.jsonl``, the judge's ``reviews.jsonl``) survive a torn last line and refuse any
other damage naming the file and line; an answer file is resumed only when its ``predictions.meta.json``
sidecar matches the run; benchmark loaders count every question they do not ask. Each case asserts the error
type or exit code, that the message is one line naming the file (and line, key or record), and that the files
already written are byte-identical afterwards where the run is refused."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from support.faults import cli_error, one_line

from medzoo.app.cli.main import main
from medzoo.core.errors import DataError
from medzoo.core.evaluation.answer_file import JsonlAppender, read_jsonl, records_with
from medzoo.core.evaluation.answer_meta import meta_path, weights_fingerprint
from medzoo.core.evaluation.evaluate_model import evaluate, get_benchmark
from medzoo.core.interfaces.benchmark import BenchmarkItem

OPTIONS = {"max_new_tokens": 4}


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` by relative path -> sha256."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def cli_ok(capsys, *args: object) -> str:
    capsys.readouterr()
    main([str(arg) for arg in args])
    return capsys.readouterr().out


class Notes(list):
    """An ``echo`` that keeps the lines."""

    def __call__(self, line: object = "", **_: object) -> None:
        self.append(str(line))


def answer_line(question_id: str, text: str = "yes") -> bytes:
    return (json.dumps({"question_id": question_id, "text": text}) + "\n").encode()


# ---------------------------------------------------------------- shared material


@pytest.fixture(scope="module")
def data_root(synthetic_data) -> Path:
    return synthetic_data(train=4, val=2, test=4)


@pytest.fixture(scope="module")
def model(trained_tiny_model):
    from medzoo.core.model.multimodal import MultimodalModel

    return MultimodalModel.from_pretrained(str(trained_tiny_model))


@pytest.fixture(scope="module")
def run_eval(model, trained_tiny_model, data_root, single_thread):
    """``run_eval(out, **changes)``: evaluate synth-vqa-rad as ``medzoo eval MODEL`` would (same model id)."""

    def run(out: Path, **changes):
        kwargs = {
            "options": {"root": str(data_root), **OPTIONS}, "batch_size": 4, "model_id": str(trained_tiny_model),
            "echo": Notes(),
        }  # fmt: skip
        kwargs.update(changes)
        chosen = kwargs.pop("model", model)
        with single_thread():
            return evaluate(chosen, kwargs.pop("benchmark", "synth-vqa-rad"), out, **kwargs)

    return run


@pytest.fixture(scope="module")
def finished(run_eval, tmp_path_factory) -> Path:
    """A complete evaluation folder with a noise ablation (copy it before changing anything)."""
    out = tmp_path_factory.mktemp("finished") / "eval"
    run_eval(out, image_ablation="noise")
    return out


@pytest.fixture
def out(finished, tmp_path) -> Path:
    copied = tmp_path / "eval"
    shutil.copytree(finished, copied)
    return copied


def eval_args(model_dir: Path, data_root: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", str(model_dir), "--benchmark", "synth-vqa-rad", "--option", f"root={data_root}",
            "--option", "max_new_tokens=4", "--output-dir", str(out), "--batch-size", "4", *extra]  # fmt: skip


# ---------------------------------------------------------------- the JSON-lines reader and appender

TORN_TAILS = {
    "half an object": b'{"question_id": "9", "te',
    "a cut UTF-8 character": b'{"question_id": "9", "text": "caf\xc3',
    "garbage": b"\x00\x00\x00",
}


@pytest.mark.parametrize("tail", TORN_TAILS.values(), ids=TORN_TAILS.keys())
def test_a_torn_last_line_is_cut_off_with_one_note(tmp_path, tail):
    path = tmp_path / "predictions.jsonl"
    good = answer_line("1") + answer_line("2")
    path.write_bytes(good + tail)
    notes = Notes()
    rows = read_jsonl(path, repair=True, echo=notes)
    assert [row["question_id"] for _, row in rows] == ["1", "2"]
    assert path.read_bytes() == good
    assert notes == [
        f"{path}: dropped a torn last line ({len(tail)} bytes) left by an interrupted run; it will be answered again"
    ]


BAD_LINES = {
    "invalid json in the middle": (answer_line("1") + b"{oops\n" + answer_line("3"), 2, "not valid JSON"),
    "a complete last line with non-UTF-8 bytes": (answer_line("1") + answer_line("2") + b'{"text": "\xff\xfe"}\n', 3,
                                      "byte 0xff (byte offset 82) is not UTF-8"),
    "a complete last line that is not json": (answer_line("1") + b"not json\n", 2, "not valid JSON"),
    "non-UTF-8 in the first line": (b"\xe9t\xe9\n" + answer_line("2"), 1, "byte 0xe9 (byte offset 0) is not UTF-8"),
}


@pytest.mark.parametrize("content, line, expected", BAD_LINES.values(), ids=BAD_LINES.keys())
@pytest.mark.parametrize("repair", [True, False], ids=["appended-to", "read-only"])
def test_a_bad_line_that_no_interrupted_append_leaves_is_an_error_naming_file_and_line(
    tmp_path, content, line, expected, repair
):
    path = tmp_path / "answers.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        read_jsonl(path, repair=repair, echo=Notes())
    message = one_line(error.value)
    assert message.startswith(f"{path}: line {line}: ") and expected in message
    assert path.read_bytes() == content


def test_a_file_medzoo_only_reads_refuses_a_torn_last_line_and_keeps_it(tmp_path):
    path = tmp_path / "answers.jsonl"
    content = answer_line("1") + b'{"question_id": "2", "te'
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        read_jsonl(path)
    message = one_line(error.value)
    assert message.startswith(f"{path}: line 2: torn last line (24 bytes, no newline") and "interrupted" in message
    assert path.read_bytes() == content


def test_the_appender_cuts_a_torn_line_first_and_ends_a_complete_one(tmp_path):
    torn, complete = tmp_path / "torn.jsonl", tmp_path / "complete.jsonl"
    torn.write_bytes(answer_line("1") + b'{"question_id": "2"')
    complete.write_bytes(answer_line("1") + b'{"question_id": "2", "text": "no"}')  # valid, newline missing
    for path in (torn, complete):
        notes = Notes()
        with JsonlAppender(path, echo=notes) as appender:
            appender.write([{"question_id": "3", "text": "maybe"}])
            appender.write([])
        assert len(notes) == (path is torn)
    assert [row["question_id"] for _, row in read_jsonl(torn)] == ["1", "3"]
    assert [row["question_id"] for _, row in read_jsonl(complete)] == ["1", "2", "3"]


@pytest.mark.parametrize("line", [b'["question_id", "1"]', b'{"question_id": "1", "text": 3}', b'{"text": "x"}'],
                         ids=["not an object", "text not a string", "no question_id"])
def test_an_answer_line_without_question_id_and_text_names_its_line(tmp_path, line):
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(answer_line("1") + line + b"\n")
    with pytest.raises(DataError) as error:
        records_with(path, read_jsonl(path), {"question_id": object, "text": str})
    assert one_line(error.value) == f"{path}: line 2: expected an object with question_id and text"


# ---------------------------------------------------------------- eval: torn and damaged answer files


def test_eval_resumes_past_a_torn_last_line_and_answers_that_question_again(out, run_eval):
    path = out / "predictions.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2]
    path.write_bytes(b"".join(lines[:-1]) + torn)
    notes = Notes()
    metrics = run_eval(out, echo=notes)
    assert f"{path}: dropped a torn last line ({len(torn)} bytes) left by an interrupted run; it will be " \
           "answered again" in notes
    assert f"  {len(lines) - 1} answers found in {path}, 1 to go" in notes
    after = path.read_bytes()
    assert after.startswith(b"".join(lines[:-1])) and after.endswith(b"\n")
    answered = [row["question_id"] for _, row in read_jsonl(path)]
    assert len(answered) == len(set(answered)) == metrics["n"] == len(lines) and metrics["n_missing"] == 0


@pytest.mark.parametrize(
    "damage, line, expected",
    [(b"{not json\n", 2, "not valid JSON"), (b'{"question_id": "x", "text": "\xc0"}\n', 2, "is not UTF-8"),
     (b"[1, 2]\n", 2, "expected an object with question_id and text")],
    ids=["invalid json", "non-UTF-8", "not an answer"],
)
def test_eval_refuses_a_damaged_middle_line_naming_it_and_touches_nothing(
    capsys, out, trained_tiny_model, data_root, damage, line, expected
):
    path = out / "predictions.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + damage + b"".join(lines[1:]))
    before = snapshot(out)
    message = cli_error(capsys, *eval_args(trained_tiny_model, data_root, out))
    assert message.startswith(f"error: {path}: line {line}: ") and expected in message
    assert snapshot(out) == before


def test_an_image_that_cannot_be_read_when_asked_is_one_line_naming_it(tmp_path):
    from medzoo.core.evaluation.evaluate_model import _request

    image = tmp_path / "gone.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    item = BenchmarkItem(question_id="q7", question="What is it?", answer="x", image=image)
    with pytest.raises(DataError) as error:
        _request(get_benchmark("vqa-rad"), item, None)
    assert one_line(error.value).startswith(f"{image}: question q7: cannot read the image")


# ---------------------------------------------------------------- eval: resuming the wrong thing


def _perturbed(model):
    changed = copy.deepcopy(model)
    with torch.no_grad():
        next(iter(changed.parameters())).add_(0.5)
    return changed


MISMATCHES = {
    "seed": (lambda ctx: {"options": {**ctx.options, "seed": 3}}, "protocol.seed", "0", "3"),
    "decoding": (lambda ctx: {"options": {**ctx.options, "decoding": "sampled"}}, "protocol.decoding",
                 '"greedy"', '"sampled (temperature 0.7)"'),
    "answer length": (lambda ctx: {"options": {**ctx.options, "max_new_tokens": 6}},
                      "benchmark_options.max_new_tokens", '"4"', '"6"'),
    "model id": (lambda ctx: {"model_id": "another-model"}, "model_id", None, '"another-model"'),
    "weights": (lambda ctx: {"model": _perturbed(ctx.model)}, "weights", None, None),
    "data folder": (lambda ctx: {"options": {**ctx.options, "root": str(ctx.copy)}}, "benchmark_options.root",
                    None, None),
    "image root": (lambda ctx: {"image_root": str(ctx.root / "images")}, "image_root", "null", None),
}


@pytest.mark.parametrize("change, key, old, new", MISMATCHES.values(), ids=MISMATCHES.keys())
def test_resuming_answers_of_another_evaluation_is_refused_naming_key_and_values(
    out, run_eval, model, data_root, tmp_path, change, key, old, new
):
    shutil.copytree(data_root, tmp_path / "data-copy")
    context = SimpleNamespace(options={"root": str(data_root), **OPTIONS}, model=model, root=data_root,
                              copy=tmp_path / "data-copy")  # fmt: skip
    before = snapshot(out)
    with pytest.raises(DataError) as error:
        run_eval(out, **change(context))
    message = one_line(error.value)
    path = out / "predictions.jsonl"
    assert message.startswith(f"{path}: its answers belong to another evaluation (predictions.meta.json: {key} is ")
    if old is not None:
        assert f"{key} is {old}, this run has " in message
    if new is not None:
        assert f"this run has {new})" in message
    assert "--fresh" in message and "--output-dir" in message
    assert snapshot(out) == before


def test_the_cli_refuses_a_mismatched_resume_and_fresh_starts_over(capsys, out, trained_tiny_model, data_root):
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    args = eval_args(trained_tiny_model, data_root, out, "--option", "seed=5")
    message = cli_error(capsys, *args)
    assert "protocol.seed is 0, this run has 5" in message and "--fresh" in message
    assert snapshot(out) == before
    stdout = cli_ok(capsys, *args, "--fresh")
    assert f"--fresh: removed predictions.jsonl, predictions.meta.json, predictions.noise.jsonl, " \
           f"predictions.noise.meta.json, metrics.json from {out}" in stdout
    assert not (out / "predictions.noise.jsonl").exists() and (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "predictions.meta.json").read_text())["protocol"]["seed"] == 5
    assert json.loads((out / "metrics.json").read_text())["protocol"]["seed"] == 5


def test_answers_without_a_sidecar_are_refused_unless_fresh(capsys, out, trained_tiny_model, data_root):
    meta_path(out / "predictions.jsonl").unlink()
    before = snapshot(out)
    message = cli_error(capsys, *eval_args(trained_tiny_model, data_root, out))
    assert message.startswith(f"error: {out / 'predictions.jsonl'}: answers with no predictions.meta.json")
    assert "--fresh" in message and snapshot(out) == before
    cli_ok(capsys, *eval_args(trained_tiny_model, data_root, out, "--fresh"))
    assert meta_path(out / "predictions.jsonl").is_file()


@pytest.mark.parametrize("sidecar", [b"{not json", b"[1, 2]\n", b"\xff\xfe"], ids=["torn", "a list", "binary"])
def test_an_unreadable_sidecar_is_refused_naming_it(out, run_eval, sidecar):
    path = meta_path(out / "predictions.jsonl")
    path.write_bytes(sidecar)
    before = snapshot(out)
    with pytest.raises(DataError) as error:
        run_eval(out)
    assert one_line(error.value).startswith(f"{path}: ") and "--fresh" in str(error.value)
    assert snapshot(out) == before


def test_a_mismatched_ablation_file_is_refused_before_anything_is_answered(out, run_eval):
    main_file = out / "predictions.jsonl"
    main_file.write_bytes(b"".join(main_file.read_bytes().splitlines(keepends=True)[:2]))  # a partial run
    sidecar = meta_path(out / "predictions.noise.jsonl")
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "model_id": "someone-else"}))
    before = snapshot(out)
    with pytest.raises(DataError) as error:
        run_eval(out, image_ablation="noise")
    assert one_line(error.value).startswith(f"{out / 'predictions.noise.jsonl'}: its answers belong to another")
    assert "model_id is \"someone-else\"" in str(error.value)
    assert snapshot(out) == before  # the partial main file was not resumed either


def test_a_matching_resume_asks_nothing_and_leaves_answers_and_sidecars_as_they_were(out, run_eval):
    answers = {name: (out / name).read_bytes() for name in ("predictions.jsonl", "predictions.meta.json",
                                                             "predictions.noise.jsonl", "predictions.noise.meta.json")}
    notes = Notes()
    run_eval(out, image_ablation="noise", echo=notes)
    assert any(line.endswith(", 0 to go") for line in notes)
    assert {name: (out / name).read_bytes() for name in answers} == answers


def test_the_sidecar_records_what_the_answers_belong_to(finished, model, trained_tiny_model, data_root):
    meta = json.loads((finished / "predictions.meta.json").read_text())
    assert meta == {
        "medzoo_answers": 1, "model_id": str(trained_tiny_model), "weights": weights_fingerprint(model),
        "benchmark": "synth-vqa-rad", "benchmark_options": {"max_new_tokens": "4", "root": str(data_root)},
        "data": None, "image_root": None,
        "protocol": {"prompt_template": "mistral_instruct", "decoding": "greedy", "seed": 0, "max_new_tokens": 4},
        "image_ablation": None,
    }  # fmt: skip
    assert json.loads((finished / "predictions.noise.meta.json").read_text())["image_ablation"] == "noise"


def test_the_weights_fingerprint_is_stable_and_sees_the_ends_of_every_tensor(model, trained_tiny_model):
    from medzoo.core.model.multimodal import MultimodalModel

    again = MultimodalModel.from_pretrained(str(trained_tiny_model))
    assert weights_fingerprint(again) == weights_fingerprint(model)
    name, tensor = list(again.state_dict().items())[-1]
    with torch.no_grad():
        tensor.reshape(-1)[-1] += 1
    assert weights_fingerprint(again) != weights_fingerprint(model), name


def test_a_run_s_own_stale_answers_are_answered_again_saying_why(out, run_eval):
    notes = Notes()
    run_eval(out, model_id="another-model", redo_stale=True, echo=notes)
    assert any(line.startswith("answering ") and "model_id is" in line for line in notes)
    assert any(line.startswith("stale answers: removed predictions.jsonl") for line in notes)
    meta = json.loads((out / "predictions.meta.json").read_text())
    assert meta["model_id"] == "another-model"
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert records and {record["model_id"] for record in records} == {"another-model"}


def test_fresh_removes_only_what_eval_wrote(out, run_eval):
    keep = {"reviews.jsonl": "judge's", "predictions.txt": "not an answer file", "metrics.json.bak": "a copy"}
    for name, text in keep.items():
        (out / name).write_text(text)
    (out / "sub").mkdir()
    (out / "sub" / "predictions.jsonl").write_text("someone's")
    notes = Notes()
    run_eval(out, fresh=True, echo=notes)
    assert {name: (out / name).read_text() for name in keep} == keep
    assert (out / "sub" / "predictions.jsonl").read_text() == "someone's"
    assert not (out / "predictions.noise.jsonl").exists() and (out / "metrics.json").is_file()
    assert not any("answers found" in line for line in notes)


# ---------------------------------------------------------------- benchmark files: nothing dropped silently


def _png(path: Path, size: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = torch.randint(0, 256, (size, size, 3), generator=torch.Generator().manual_seed(size), dtype=torch.uint8)
    Image.fromarray(pixels.numpy()).save(path)
    return path


def _question(qid: object, image: str, question: str = "Is there an effusion?", answer: str = "yes") -> dict:
    return {"id": qid, "image": image, "answer_type": "CLOSED",
            "conversations": [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]}


@pytest.fixture
def vqa_files(tmp_path) -> Path:
    """A LLaVA-Med-style test folder: images/ok.png, a truncated and a non-image PNG."""
    images = tmp_path / "vqa" / "images"
    _png(images / "ok.png")
    data = _png(images / "whole.png", 64).read_bytes()
    (images / "truncated.png").write_bytes(data[: len(data) // 2])
    (images / "text.png").write_text("not an image")
    return tmp_path / "vqa"


SKIPS = {
    "image missing": ([_question(1, "ok.png"), _question(2, "nowhere.png")], {"image_missing": 1}),
    "image truncated": ([_question(1, "ok.png"), _question(2, "truncated.png")], {"image_corrupt": 1}),
    "not an image": ([_question(1, "ok.png"), _question(2, "text.png"), _question(3, "ok.png")],
                     {"image_corrupt": 1}),
    "bad record": ([_question(1, "ok.png"), {"id": 2, "image": "ok.png", "conversations": "?"}],
                   {"bad_record": 1}),
}


@pytest.mark.parametrize("records, skipped", SKIPS.values(), ids=SKIPS.keys())
def test_the_loader_counts_each_skipped_question_by_kind(vqa_files, records, skipped):
    path = vqa_files / "test.json"
    path.write_text(json.dumps(records))
    benchmark = get_benchmark("vqa-rad")
    items = benchmark.load(str(path), str(vqa_files / "images"))
    counts = benchmark.question_counts
    assert counts.in_file == len(records) == len(items) + sum(skipped.values())
    assert {kind: n for kind, n in counts.skipped.items() if n} == skipped
    kind, n = next(iter(skipped.items()))
    assert counts.describe("vqa-rad") == f"vqa-rad: {n} of {len(records)} questions skipped: {kind.replace('_', ' ')} {n}"


def test_eval_reports_skips_in_one_line_and_in_metrics(vqa_files, run_eval, tmp_path):
    path = vqa_files / "test.json"
    path.write_text(json.dumps([
        _question(1, "ok.png"), _question(2, "nowhere.png"), _question(3, "truncated.png"), _question(4, "ok.png"),
        _question(5, "text.png"), {"id": 6, "image": "ok.png"},
    ]))  # fmt: skip
    notes = Notes()
    metrics = run_eval(tmp_path / "out", benchmark="vqa-rad", data=str(path), image_root=str(vqa_files / "images"),
                       options=dict(OPTIONS), echo=notes)  # fmt: skip
    assert "vqa-rad: 4 of 6 questions skipped: image missing 1, image corrupt 2, bad record 1" in notes
    assert metrics["skipped"] == {"image_missing": 1, "image_corrupt": 2, "bad_record": 1}
    assert metrics["n_questions_in_file"] == 6 and metrics["n"] == 2
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["skipped"] == metrics["skipped"] and written["n_questions_in_file"] == 6


def test_questions_of_another_split_are_left_out_and_said_so(vqa_files):
    path = vqa_files / "vqa_rad.json"
    rows = [{"qid": n, "image_name": "ok.png", "question": "Is it?", "answer": "yes", "answer_type": "CLOSED",
             "phrase_type": phrase} for n, phrase in enumerate(["freeform", "test_freeform", "para", "test_para"])]
    path.write_text(json.dumps(rows))
    benchmark = get_benchmark("vqa-rad", {"format": "vqa-rad"})
    items = benchmark.load(str(path), str(vqa_files / "images"))
    counts = benchmark.question_counts
    assert len(items) == counts.in_file == 2 and counts.n_skipped == 0
    assert counts.describe("vqa-rad") == "vqa-rad: 2 questions, none skipped; left out: other split (not test) 2"
    assert counts.as_metrics()["left_out"] == {"other split (not test)": 2}


DUPLICATES = {
    "llava-med test.json": ("vqa-rad", "test.json", [_question(7, "ok.png"), _question(8, "ok.png"),
                                                     _question(7, "ok.png", "Is it a CT?")], "'7'", 0, 2),
    "a duplicate whose image is missing": ("vqa-rad", "test.json", [_question(1, "ok.png"),
                                                                    _question(1, "nowhere.png")], "'1'", 0, 1),
    "coloninst ids that collide": ("coloninst-cls", "cls_test.json", [
        {"id": "a", "image": "ok.png", "conversations": [{"from": "human", "value": "<image>\nClass?"},
                                                          {"from": "gpt", "value": "polyp"}]},
        {"id": "a#1", "image": "ok.png", "conversations": [{"from": "human", "value": "<image>\nClass?"},
                                                            {"from": "gpt", "value": "polyp"}]},
        {"id": "a", "image": "ok.png", "conversations": [{"from": "human", "value": "<image>\nClass?"},
                                                          {"from": "gpt", "value": "adenoma"}]},
    ], "'a#1'", 1, 2),
}


@pytest.mark.parametrize("benchmark, name, records, qid, first, second", DUPLICATES.values(), ids=DUPLICATES.keys())
def test_duplicate_question_ids_are_an_error_naming_file_id_and_positions(
    vqa_files, benchmark, name, records, qid, first, second
):
    path = vqa_files / name
    path.write_text(json.dumps(records))
    with pytest.raises(DataError) as error:
        get_benchmark(benchmark).load(str(path), str(vqa_files / "images"))
    assert one_line(error.value).startswith(
        f"{path}: question id {qid} appears twice (records #{first} and #{second}, counting from 0)"
    )


# ---------------------------------------------------------------- judge: torn reviews, damaged answers


class StubRunner:
    """A judge that rates every answer 8 6 and remembers which questions it was asked."""

    backend = SimpleNamespace(model="judge-stub")

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def request(self, messages, **_):
        self.asked.append(messages[1]["content"])
        return SimpleNamespace(completion=SimpleNamespace(text="8 6\nfine"), error=None)


def _chat_files(folder: Path) -> tuple[Path, Path]:
    questions, answers = folder / "questions.jsonl", folder / "answers.jsonl"
    questions.write_text("".join(
        json.dumps({"question_id": n, "text": f"Question {n}?", "gpt4_answer": f"Reference {n}."}) + "\n"
        for n in range(1, 4)
    ))  # fmt: skip
    answers.write_text("".join(json.dumps({"question_id": n, "text": f"Answer {n}."}) + "\n" for n in range(1, 4)))
    return questions, answers


def _judge(folder: Path, output: Path, notes: Notes) -> tuple[list[dict], StubRunner]:
    from medzoo.app.instruct.judge import judge_answers, read_answers, read_questions

    questions, answers = _chat_files(folder)
    runner = StubRunner()
    reviews = asyncio.run(judge_answers(read_questions(questions)[0], read_answers(answers), runner, output,
                                        {"max_tokens": 8}, echo=notes))  # fmt: skip
    return reviews, runner


def test_judge_cuts_a_torn_review_off_and_judges_that_question_again(tmp_path):
    output = tmp_path / "judge"
    _judge(tmp_path, output, Notes())
    reviews = output / "reviews.jsonl"
    lines = reviews.read_bytes().splitlines(keepends=True)
    torn = lines[-1][:-10]
    reviews.write_bytes(b"".join(lines[:-1]) + torn)
    notes = Notes()
    result, runner = _judge(tmp_path, output, notes)
    assert notes == [
        f"{reviews}: dropped a torn last line ({len(torn)} bytes) left by an interrupted run; it will be judged again"
    ]
    assert len(runner.asked) == 1 and len(result) == 3
    after = reviews.read_bytes()
    assert after.startswith(b"".join(lines[:-1])) and len(read_jsonl(reviews)) == 3  # never appended onto it


def test_judge_refuses_a_damaged_review_in_the_middle(tmp_path):
    output = tmp_path / "judge"
    _judge(tmp_path, output, Notes())
    reviews = output / "reviews.jsonl"
    lines = reviews.read_bytes().splitlines(keepends=True)
    reviews.write_bytes(lines[0] + b'{"question_id": "2", "sta\n' + lines[2])
    before = reviews.read_bytes()
    with pytest.raises(DataError) as error:
        _judge(tmp_path, output, Notes())
    assert one_line(error.value).startswith(f"{reviews}: line 2: not valid JSON")
    assert reviews.read_bytes() == before


@pytest.mark.parametrize(
    "tail, expected",
    [(b'{"question_id": 4, "te', "line 4: torn last line"), (b'{"question_id": 4, "text": "\xe9"}\n',
                                                           "line 4: byte 0xe9 (byte offset")],
    ids=["torn last line", "non-UTF-8"],
)
def test_judge_cli_refuses_a_damaged_answers_file_and_leaves_it(capsys, tmp_path, tail, expected):
    questions, answers = _chat_files(tmp_path)
    answers.write_bytes(answers.read_bytes() + tail)
    before = answers.read_bytes()
    message = cli_error(capsys, "judge", "--questions", questions, "--answers", answers,
                        "--output", tmp_path / "out", "--backend", "openai", "--model", "judge-x",
                        "--base-url", "http://127.0.0.1:9/v1")  # fmt: skip
    assert message.startswith(f"error: {answers}: {expected}")
    assert answers.read_bytes() == before and not (tmp_path / "out" / "reviews.jsonl").exists()
