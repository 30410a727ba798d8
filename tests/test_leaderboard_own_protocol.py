"""ColonINST CAP on the leaderboard: its columns are marked as medzoo's own protocol and every table showing them
carries a caption naming the metrics, their tokenisation and why METEOR is missing; published columns are not."""

from __future__ import annotations

import json
from pathlib import Path

from medzoo.app.leaderboard.column_notes import OWN_MARK, column_label, column_notes
from medzoo.app.leaderboard.render import leaderboard_from_runs, render
from medzoo.app.leaderboard.table import ColumnGroup
from medzoo.plugins.benchmarks.coloninst import ColonInstCapBenchmark


def cap_run(root: Path) -> Path:
    """A run folder holding CAP and CLS scores as ``medzoo eval`` writes them (CAP records its scoring line)."""
    for benchmark, metrics in (
        ("coloninst-cap", {"bleu_4": 12.5, "rouge_l": 30.25, "n": 3, "n_missing": 0,
                           "scoring_protocol": ColonInstCapBenchmark.scoring_protocol}),
        ("coloninst-cls", {"accuracy": 80.0, "n": 3}),
    ):  # fmt: skip
        folder = root / "cap-run" / "eval" / benchmark
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"benchmark": benchmark, "split": "unseen", **metrics}))
    return root / "cap-run"


def test_the_caption_names_the_metrics_their_tokens_and_the_missing_meteor(tmp_path):
    board = leaderboard_from_runs([cap_run(tmp_path)])
    (note,) = column_notes(board)
    assert note.startswith("coloninst-cap [medzoo's own] (bleu_4, rouge_l): scored by medzoo's own "
                           "(IntelliScope publishes no CAP metric)")
    for said in ("BLEU-4 on sacrebleu 13a tokens", "ROUGE-L F on rouge_score tokens", "lower-cased",
                 "comparable only with other medzoo coloninst-cap figures",
                 "METEOR is not computed: evaluate's meteor needs NLTK's WordNet data"):
        assert said in note, said
    assert column_label(ColumnGroup("coloninst-cap", "unseen")) == f"coloninst-cap (unseen) {OWN_MARK}"
    assert column_label(ColumnGroup("coloninst-cls", "unseen")) == "coloninst-cls (unseen)"  # ColonINST's own
    assert column_label(ColumnGroup("synth-coloninst-cap")) == f"synth-coloninst-cap {OWN_MARK}"


def test_markdown_and_html_mark_the_cap_columns_and_caption_them(tmp_path):
    run = cap_run(tmp_path)
    markdown = render(leaderboard_from_runs([run], published=True), "md")
    assert "coloninst-cap (unseen) [medzoo's own] bleu_4 | coloninst-cap (unseen) [medzoo's own] rouge_l" in markdown
    assert "coloninst-cls (unseen) accuracy" in markdown and "coloninst-cls (unseen) [medzoo's own]" not in markdown
    captions = [line for line in markdown.splitlines() if line.startswith("coloninst-cap [medzoo's own]")]
    assert len(captions) == 1 and "METEOR is not computed" in captions[0]  # only the table with CAP columns
    page = render(leaderboard_from_runs([run], published=True), "html")
    assert f'<th colspan="2">coloninst-cap (unseen) {OWN_MARK}</th>'.replace("'", "&#x27;") in page
    assert page.count('<p class="column-note">coloninst-cap [medzoo&#x27;s own] (bleu_4, rouge_l)') == 1


def test_a_board_without_cap_columns_has_no_caption():
    board = leaderboard_from_runs([], published=True)
    assert column_notes(board) == [] and "[medzoo's own]" not in render(board, "md")
