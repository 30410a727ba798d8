"""Contenders: any transformers image-text-to-text model answers a benchmark through ``medzoo eval --contender
hf-vlm`` with its own chat template, beside medzoo's models on the leaderboard.

Every family is a tiny random model of the real transformers class saved with ``save_pretrained`` together with
an assembled processor (``medzoo.plugins.contenders.tiny_families``); its greedy answers must be those of calling
``model.generate`` on the same chat-template prompt by hand."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from support.faults import cli_error, one_line

from medzoo.app.cli.main import main
from medzoo.core.errors import DataError, PluginError
from medzoo.core.evaluation.evaluate_model import evaluate, get_benchmark
from medzoo.plugins.contenders.tiny_families import FAMILIES, save_tiny_family

MAX_NEW_TOKENS = 4
ANSWER_KEYS = {"question_id", "prompt", "text", "answer_id", "model_id", "metadata"}


@pytest.fixture(scope="module")
def data_root(synthetic_data) -> Path:
    return synthetic_data(train=4, val=2, test=4)


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory) -> dict[str, Path]:
    """Each family's tiny model folder, named as a hub model would be (the folder name is the model id)."""
    root = tmp_path_factory.mktemp("families")
    return {family: save_tiny_family(family, root / f"tiny-{family}") for family in FAMILIES}


def cli_ok(capsys, *args: object) -> str:
    capsys.readouterr()
    main([str(arg) for arg in args])
    return capsys.readouterr().out


def eval_args(source: Path | str, data_root: Path, out: Path, *extra: object) -> list[object]:
    return ["eval", source, "--contender", "hf-vlm", "--benchmark", "synth-vqa-rad", "--option", f"root={data_root}",
            "--option", f"max_new_tokens={MAX_NEW_TOKENS}", "--output-dir", out, "--batch-size", 8, *extra]


def read_answers(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def by_hand(folder: Path, question: str, image: Image.Image) -> str:
    """The greedy answer of ``model.generate`` on the chat-template prompt, built here without medzoo."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    messages = [{"role": "user", "content": [{"type": "image", "image": image.convert("RGB")},
                                             {"type": "text", "text": question}]}]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt")
    inputs.pop("labels", None)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
    return processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


# ---------------------------------------------------------------- every family, end to end


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_answers_vqa_rad_through_medzoo_eval(family, family_dirs, data_root, tmp_path, capsys,
                                                         single_thread):
    folder = family_dirs[family]
    out = tmp_path / "eval"
    with single_thread():
        stdout = cli_ok(capsys, *eval_args(folder, data_root, out, "--image-ablation", "noise"))
    metrics = json.loads(stdout[stdout.index("{"):])
    items = get_benchmark("synth-vqa-rad", {"root": str(data_root)}).load()
    answers = read_answers(out / "predictions.jsonl")
    assert sorted(a["question_id"] for a in answers) == sorted(i.question_id for i in items) and len(items) > 4
    assert all(set(a) == ANSWER_KEYS and a["model_id"] == folder.name for a in answers)
    assert metrics["model_id"] == folder.name and metrics["n"] == len(items)
    assert metrics["protocol"]["prompt_template"].startswith("chat_template@")
    assert metrics["protocol"]["decoding"] == "greedy"
    assert json.loads((out / "predictions.meta.json").read_text())["model_id"] == folder.name
    assert len(read_answers(out / "predictions.noise.jsonl")) == len(items) and "drop" in metrics["image_ablation"]
    # greedy, batched with left padding: each answer is that of generate on its own prompt
    texts = {a["question_id"]: a["text"] for a in answers}
    with single_thread():
        for item in items[:3]:
            with Image.open(item.image) as image:
                assert texts[item.question_id] == by_hand(folder, item.question, image), item.question_id


def test_a_rerun_asks_only_the_questions_not_answered_yet(family_dirs, data_root, tmp_path, capsys, single_thread):
    out = tmp_path / "eval"
    args = eval_args(family_dirs["qwen2-vl"], data_root, out)
    with single_thread():
        cli_ok(capsys, *args)
        answers = read_answers(out / "predictions.jsonl")
        kept = answers[:5]
        (out / "predictions.jsonl").write_text("".join(json.dumps(a) + "\n" for a in kept))
        result = cli_ok(capsys, *args)
    assert f"5 answers found in {out / 'predictions.jsonl'}, {len(answers) - 5} to go" in result
    resumed = read_answers(out / "predictions.jsonl")
    assert [a["answer_id"] for a in resumed[:5]] == [a["answer_id"] for a in kept]
    assert {a["question_id"]: a["text"] for a in resumed} == {a["question_id"]: a["text"] for a in answers}
    again = cli_ok(capsys, *args)  # everything answered: nothing is asked
    assert f"{len(answers)} answers found" in again and "0 to go" in again


def test_a_parquet_copy_of_vqa_rad_is_answered(family_dirs, data_root, tmp_path, capsys, single_thread):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    items = get_benchmark("synth-vqa-rad", {"root": str(data_root)}).load()[:6]
    images = []
    for item in items:
        buffer = io.BytesIO()
        with Image.open(item.image) as image:
            image.save(buffer, format="PNG")
        images.append({"bytes": buffer.getvalue(), "path": None})
    table = pa.table({"image": images, "question": [i.question for i in items], "answer": [i.answer for i in items]})
    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(table, path)
    out = tmp_path / "eval"
    with single_thread():
        stdout = cli_ok(capsys, "eval", family_dirs["gemma3"], "--contender", "hf-vlm", "--benchmark", "vqa-rad",
                        "--data", path, "--option", f"max_new_tokens={MAX_NEW_TOKENS}", "--output-dir", out)
    metrics = json.loads(stdout[stdout.index("{"):])
    assert metrics["benchmark"] == "vqa-rad" and metrics["n"] == 6
    assert len(read_answers(out / "predictions.jsonl")) == 6


def test_the_leaderboard_lists_contenders_beside_medzoo_models(family_dirs, data_root, tmp_path, capsys,
                                                               tiny_model_spec, single_thread):
    from medzoo.core.model.build import build_model

    runs = tmp_path / "runs"
    medzoo_model = tmp_path / "medzoo-tiny"
    torch.manual_seed(0)
    build_model(tiny_model_spec).save_pretrained(str(medzoo_model))
    names = []
    with single_thread():
        for family in ("llava-1.5", "idefics3"):
            name = family_dirs[family].name
            cli_ok(capsys, *eval_args(family_dirs[family], data_root, runs / name / "eval" / "synth-vqa-rad"))
            names.append(name)
        cli_ok(capsys, "eval", medzoo_model, "--benchmark", "synth-vqa-rad", "--option", f"root={data_root}",
               "--option", f"max_new_tokens={MAX_NEW_TOKENS}", "--output-dir", runs / "medzoo-tiny" / "eval" /
               "synth-vqa-rad")
    board = cli_ok(capsys, "leaderboard", *(runs / name for name in [*names, "medzoo-tiny"]), "--format", "csv")
    rows = {line.split(",")[0]: line for line in board.splitlines()[1:] if line.strip()}
    assert set(rows) == {*names, "medzoo-tiny"}
    assert "chat_template@" in rows[names[0]] and "chat_template@" not in rows["medzoo-tiny"]


# ---------------------------------------------------------------- the Python API and the hook


def test_evaluate_takes_a_contender_object_and_a_plugin_can_register_its_own(data_root, tmp_path):
    from medzoo import hookimpl, register_plugin, unregister_plugin
    from medzoo.core.evaluation.contenders import get_contender, load_contender
    from medzoo.core.interfaces.answerer import Answerer, PromptChoice

    class Echo(Answerer):
        """Answers every question with its own last word."""

        def __init__(self, source: str, word: str = "yes") -> None:
            self.model_id, self.word = f"echo-{source}", word

        def answer(self, requests, settings, template, batch_size):
            assert template == "echo" and settings.greedy
            return [self.word for _ in requests]

        def weights_fingerprint(self) -> str:
            return "none"

        def prompt_for(self, benchmark, requested):
            return PromptChoice("echo")

    class Plugin:
        @hookimpl
        def register_contenders(self, register):
            register("echo", Echo, description="answers yes")

    plugin = Plugin()
    register_plugin(plugin, name="echo-contender")
    try:
        assert get_contender("echo").description == "answers yes"
        answerer = load_contender("echo", "a", word="no")
        with pytest.raises(PluginError, match=r"^contender echo: unknown option 'wrod' \(did you mean \"word\"\?\)"):
            load_contender("echo", "a", wrod="no")
        with pytest.raises(PluginError, match=r"^unknown contender 'ecko' \(did you mean \"echo\"\?\)"):
            get_contender("ecko")
    finally:
        unregister_plugin(plugin)
    metrics = evaluate(answerer, "synth-vqa-rad", tmp_path, options={"root": str(data_root)}, echo=lambda *_: None)
    assert metrics["model_id"] == "echo-a" and metrics["protocol"]["prompt_template"] == "echo"
    assert {a["text"] for a in read_answers(tmp_path / "predictions.jsonl")} == {"no"}


def test_contenders_share_the_component_registry_checks():
    from medzoo.core.plugin_system.registry import ComponentRegistry

    registry = ComponentRegistry()
    registry.add("contender", "echo", lambda source: source, "p", description="echoes")
    assert registry.get("contender", "echo").description == "echoes"
    with pytest.raises(PluginError, match=r"^p: contender 'x': expected a callable \(source, \*\*options\)$"):
        registry.add("contender", "x", "not callable", "p")
    with pytest.raises(PluginError, match=r"^q: invalid contender name 'Echo'; expected lower-case letters"):
        registry.add("contender", "Echo", lambda source: source, "q")
    with pytest.raises(PluginError, match=r"^duplicate contender 'echo': registered by p and by q$"):
        registry.add("contender", "echo", lambda source: source, "q")


# ---------------------------------------------------------------- one-line errors


def test_a_folder_that_is_not_a_vision_language_model_is_one_line(tmp_path, capsys, data_root, family_dirs):
    empty = tmp_path / "empty"
    empty.mkdir()
    message = cli_error(capsys, *eval_args(empty, data_root, tmp_path / "a"))
    assert message == f"error: {empty}: no config.json; expected a folder written by a transformers model's " \
                      "save_pretrained, or a hub id"
    from medzoo.plugins.language.llama import LlamaLanguageModel

    text_only = tmp_path / "text-only"
    LlamaLanguageModel.from_config(LlamaLanguageModel.tiny_config()).model.save_pretrained(text_only)
    message = cli_error(capsys, *eval_args(text_only, data_root, tmp_path / "b"))
    assert message.startswith(f"error: {text_only}: not a loadable transformers image-text-to-text model (")
    no_template = tmp_path / "no-template"
    shutil.copytree(family_dirs["llava-1.5"], no_template)
    for name in ("chat_template.jinja", "chat_template.json"):
        (no_template / name).unlink(missing_ok=True)
    config = json.loads((no_template / "processor_config.json").read_text()) \
        if (no_template / "processor_config.json").is_file() else None
    if config is not None and "chat_template" in config:
        del config["chat_template"]
        (no_template / "processor_config.json").write_text(json.dumps(config))
    message = cli_error(capsys, *eval_args(no_template, data_root, tmp_path / "c"))
    assert message.startswith("error: no-template: the processor has no chat template")


def test_contender_options_and_prompt_template_errors_are_one_line(tmp_path, capsys, data_root, family_dirs):
    folder = family_dirs["paligemma"]
    message = cli_error(capsys, *eval_args(folder, data_root, tmp_path / "a", "--contender-option", "dtype=fp64"))
    assert message.startswith("error: contender hf-vlm: option dtype='fp64': expected one of auto, float32")
    message = cli_error(capsys, *eval_args(folder, data_root, tmp_path / "b", "--contender-option", "dtyp=float32"))
    assert message.startswith("error: contender hf-vlm: unknown option 'dtyp' (did you mean \"dtype\"?)")
    message = cli_error(capsys, *eval_args(folder, data_root, tmp_path / "c", "--option", "prompt_template=plain"))
    assert message.startswith("error: benchmark option prompt_template='plain': the hf-vlm contender asks with")
    message = cli_error(capsys, "eval", folder, "--contender", "hf-vml", "--benchmark", "synth-vqa-rad",
                        "--output-dir", tmp_path / "d")
    assert message.startswith("error: unknown contender 'hf-vml' (did you mean \"hf-vlm\"?); known: hf-vlm")


def test_a_request_with_more_placeholders_than_images_is_a_data_error():
    from medzoo.core.interfaces.conversation import Message
    from medzoo.plugins.contenders.hf_messages import chat_messages

    image = Image.new("L", (8, 8))
    converted = chat_messages([Message("user", "<image>\nWhat is shown?")], [image])
    assert converted[0]["content"][1] == {"type": "text", "text": "What is shown?"}
    assert converted[0]["content"][0]["type"] == "image" and converted[0]["content"][0]["image"].mode == "RGB"
    assert chat_messages([Message("user", "Where?")], [image])[0]["content"][0]["type"] == "image"
    with pytest.raises(DataError) as error:
        chat_messages([Message("user", "<image> and <image>")], [image])
    assert one_line(error.value).startswith("a user turn has more <image> placeholders than the request has images")


# ---------------------------------------------------------------- medzoo plugins


def test_medzoo_plugins_lists_contenders_and_reports_a_failing_contender_plugin():
    from click.testing import CliRunner

    from medzoo import hookimpl, register_plugin, unregister_plugin
    from medzoo.app.cli.main import cli

    class Broken:
        @hookimpl
        def register_contenders(self, register):
            raise ImportError("no module named 'missing_dependency'")

    plugin = Broken()
    register_plugin(plugin, name="broken-contenders")
    try:
        listing = CliRunner().invoke(cli, ["plugins", "--json"])
        table = CliRunner().invoke(cli, ["plugins"])
    finally:
        unregister_plugin(plugin)
    assert listing.exit_code == 0 and table.exit_code == 0, listing.output + table.output
    payload = json.loads(listing.stdout)
    hf_vlm = next(row for row in payload["contenders"] if row["name"] == "hf-vlm")
    assert hf_vlm["kind"] == "contender" and hf_vlm["provider"] == "medzoo.contenders"
    assert hf_vlm["description"].startswith("Any transformers image-text-to-text model")
    assert "contender" not in {row["kind"] for row in payload["components"]}
    assert {"plugin": "broken-contenders", "distribution": "in-process",
            "error": "register_contenders: ImportError: no module named 'missing_dependency'"} in payload["failures"]
    line = next(line for line in table.stdout.splitlines() if " hf-vlm " in line)
    assert line.split()[:3] == ["contender", "hf-vlm", "medzoo.contenders"] and "image-text-to-text" in line
    assert "failed to load: broken-contenders (in-process): register_contenders: ImportError" in table.stderr
