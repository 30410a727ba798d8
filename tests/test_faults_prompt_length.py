"""Fault injection (issue 29 item 4): a prompt that leaves no room for the answer is reported as what it is.

A 5,000-word question before ``<image>`` was counted as "no target tokens", which sent the user looking for an
empty answer. Now the record is skipped under "prompt longer than max_length" with its length and the limit in a
warning (or, with ``on_bad_record: error``, in the one-line error), and a truncation that would cut the image
tokens is counted and said as well. The data files are left as they were.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from support.faults import cli_error
from support.full_disk import snapshot

from medzoo.app.cli.main import main

LONG_QUESTION = " ".join(["opacity"] * 5000) + "?\n<image>"  # 5,000 words before <image>, as in the issue
MAX_LENGTH = 256  # the tiny recipe's
STEPS = ["stages.alignment.max_steps=1", "stages.instruct.max_steps=1",
         *(f"stages.{stage}.{key}=4" for stage in ("alignment", "instruct")
           for key in ("global_batch_size", "micro_batch_size"))]


@pytest.fixture(scope="module")
def long_prompt_root(synthetic_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("long-prompt")
    shutil.copytree(synthetic_data(train=8, val=2, test=4), root, dirs_exist_ok=True)
    path = root / "llava_med" / "instruct.json"
    records = json.loads(path.read_text())
    records[0]["conversations"][0]["value"] = LONG_QUESTION
    path.write_text(json.dumps(records, indent=1))
    return root, str(records[0]["id"])


def train_args(run, root, *overrides: str) -> list[str]:
    return ["train", "tiny", "-d", str(run), *(f"-o{o}" for o in [f"data.root={root}", *STEPS, *overrides])]


def test_a_prompt_longer_than_max_length_is_skipped_under_its_own_reason_with_a_warning(long_prompt_root, tmp_path,
                                                                                         capsys, single_thread):
    root, record_id = long_prompt_root
    before = snapshot(root)
    capsys.readouterr()
    with single_thread():
        main(train_args(tmp_path / "run", root))
    printed = capsys.readouterr().out
    assert "'prompt longer than max_length': 1" in printed and "no target tokens" not in printed
    (warning,) = [line for line in printed.splitlines() if line.startswith("warning: stage instruct:")]
    found = re.fullmatch(r"warning: stage instruct: 1 record\(s\) skipped: the prompt alone is not shorter than "
                         rf"max_length {MAX_LENGTH} \(the longest (\d+) tokens\), so no answer token is left to learn; "
                         r"raise max_length or shorten those prompts", warning)
    assert found and int(found.group(1)) > 5000, warning
    assert (tmp_path / "run" / "final" / "medzoo_model.json").is_file() and snapshot(root) == before


def test_with_on_bad_record_error_it_is_one_line_with_the_length_and_the_limit(long_prompt_root, tmp_path, capsys,
                                                                              single_thread):
    root, record_id = long_prompt_root
    with single_thread():
        line = cli_error(capsys, *train_args(tmp_path / "run", root, "data.on_bad_record=error"))
    found = re.fullmatch(rf"error: sample {re.escape(record_id)}: the prompt alone is (\d+) tokens \(image tokens "
                         rf"included\), not shorter than max_length {MAX_LENGTH}: truncation leaves no answer to "
                         r"learn; raise max_length or shorten the prompt", line)
    assert found and int(found.group(1)) > 5000, line


def test_truncation_that_would_cut_the_image_tokens_is_counted_and_said(long_prompt_root, tmp_path, capsys,
                                                                        single_thread):
    root, record_id = long_prompt_root
    keep = "stages.instruct.image_placement=keep"  # <image> stays after the 5,000 words
    with single_thread():
        line = cli_error(capsys, *train_args(tmp_path / "error", root, keep, "data.on_bad_record=error"))
    assert line.startswith(f"error: sample {record_id}: the prompt alone is ") and line.endswith(
        f"not shorter than max_length {MAX_LENGTH}: truncation leaves no answer to learn and would cut through its "
        "image tokens; raise max_length or shorten the prompt")
    capsys.readouterr()
    with single_thread():
        main(train_args(tmp_path / "skip", root, keep))
    printed = capsys.readouterr().out
    assert (f"warning: stage instruct: 1 record(s) skipped: truncation to max_length {MAX_LENGTH} would cut their "
            "image tokens") in printed.splitlines()


def test_a_cut_through_image_tokens_with_a_short_prompt_has_its_own_reason():
    """An image in a later turn that truncation would cut, the prompt before the first answer being short."""
    from medzoo.core.model.processor import SampleTooLong

    error = SampleTooLong("r1", max_length=100, length=180, prompt_tokens=40, cuts_image=True)
    assert error.reason == SampleTooLong.IMAGE and not error.prompt_too_long
    assert str(error) == ("sample r1: max_length 100 cuts through the image tokens (the sample is 180 tokens); raise "
                          "max_length or shorten the text before the image")
