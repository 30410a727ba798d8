"""Training plots: every stage of a run gets ``plots/<stage>-loss.png`` and ``<stage>-lr.png`` (valid PNGs,
600 x 350 pixels) whose lines hold exactly the logged values; ``medzoo plot`` draws them again, and for a sweep
folder one figure of every run's loss over its curriculum; ``run_plots`` lists them for the leaderboard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from support.tiny_run import STAGES, STEPS, train

from medzoo.app.cli.main import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The tiny run, no tracker, the instruct stage with a second learning rate for the connector."""
    run, _ = train(tmp_path_factory.mktemp("plots"), "logging.trackers=[]",
                   "stages.instruct.optimizer.module_lr.connector=5e-3")
    return run


def records(run: Path, stage: str) -> list[dict]:
    (folder,) = run.glob(f"[0-9][0-9]-{stage}")
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def lines_of(figure) -> dict[str, list[tuple[float, float]]]:
    (axis,) = figure.axes
    return {line.get_label(): [tuple(point) for point in line.get_xydata()] for line in axis.lines}


def test_each_stage_gets_a_loss_and_a_learning_rate_png(trained):
    from medzoo.app.plots import run_plots

    plots = run_plots(trained)
    assert list(plots) == [f"{stage}-{kind}" for stage in STAGES for kind in ("loss", "lr")]
    for path in plots.values():
        assert path.parent == trained / "plots" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert (image.format, image.size) == ("PNG", (600, 350))
    assert not list((trained / "plots").glob(".*"))  # written atomically: no temporary files left
    # the stage folder keeps its loss.png, the same figure
    assert (trained / "02-instruct" / "loss.png").read_bytes() == plots["instruct-loss"].read_bytes()


def test_the_figures_hold_exactly_the_logged_values(trained):
    from medzoo.app.plots.curves import read_records, stage_figures

    for stage in STAGES:
        logged = records(trained, stage)
        (folder,) = trained.glob(f"[0-9][0-9]-{stage}")
        figures = stage_figures(read_records(folder / "metrics.jsonl"), stage)
        steps = [float(r["step"]) for r in logged]
        assert steps == [float(step) for step in range(1, STEPS + 1)]
        assert lines_of(figures["loss"]) == {"loss": list(zip(steps, [r["loss"] for r in logged], strict=True))}
        lr_lines = lines_of(figures["lr"])
        if stage == "alignment":
            assert lr_lines == {"lr": list(zip(steps, [r["lr"] for r in logged], strict=True))}
        else:  # one line per parameter group
            assert lr_lines == {
                "lr (other parameters)": list(zip(steps, [r["lr"] for r in logged], strict=True)),
                "connector": list(zip(steps, [r["lr/connector"] for r in logged], strict=True)),
            }
            assert [r["lr/connector"] for r in logged] == pytest.approx([5 * r["lr"] for r in logged])


def test_medzoo_plot_draws_a_run_again(trained, tmp_path, capsys):
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    shutil.rmtree(run / "plots")
    main(["plot", str(run)])
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(run / "plots" / f"{s}-{k}.png") for s in STAGES for k in ("loss", "lr"))
    with Image.open(run / "plots" / "instruct-lr.png") as image:
        assert image.size == (600, 350)


def test_a_sweep_gets_one_figure_of_its_curricula(trained, tmp_path, capsys):
    from medzoo.app.plots.sweep import sweep_curves

    sweep = tmp_path / "sweep"
    both = Path(shutil.copytree(trained, sweep / "name=llava-med"))
    instruct_only = Path(shutil.copytree(trained, sweep / "name=instruct-only"))
    shutil.rmtree(instruct_only / "01-alignment")
    main(["plot", str(sweep)])
    figure = sweep / "plots" / "sweep-loss.png"
    assert str(figure) in capsys.readouterr().out.split()
    with Image.open(figure) as image:
        assert image.size == (600, 350)
    curves = {curve.label: curve for curve in sweep_curves(sorted(sweep.glob("name=*")))}
    losses = [r["loss"] for stage in STAGES for r in records(both, stage)]
    assert curves["name=llava-med"].steps == [float(step) for step in range(1, 2 * STEPS + 1)]
    assert curves["name=llava-med"].values == losses
    assert curves["name=instruct-only"].values == losses[STEPS:]


def test_plot_of_a_folder_that_is_no_run_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exited:
        main(["plot", str(tmp_path)])
    error = capsys.readouterr().err
    assert exited.value.code == 2 and error.count("\n") == 1
    assert error.startswith(f"error: {tmp_path}: not a run folder (no medzoo_run.json)")
