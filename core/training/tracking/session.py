"""One run's experiment trackers, from the start of training to the end of ``medzoo run``'s evaluation."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from medzoo.core.file_io.storage import StorageError, storage_failure
from medzoo.core.model.components import as_dict
from medzoo.core.recipes.schema import requested_trackers
from medzoo.core.training.tracking.trackers import LOGS, build_tracker, start_tracker, tensorboard_installed
from medzoo.core.training.tracking.values import evaluation_values, hyperparameters, stage_values, step_values


class RunTracking:
    """The trackers of ``logging.trackers``, each one of accelerate's.

    :meth:`start` (the main process, once the run folder is the run's) starts each tracker and stores the resolved
    recipe as its config; steps, stage summaries and evaluations go to every started tracker against the run's
    global step (a stage's steps follow the previous stages'); :meth:`finish` ends them. A tracker that cannot
    start or fails later is one warning line naming it, and the run continues without it. Until started (and on
    every other process) each call does nothing.
    """

    def __init__(self, logging: Any = None, echo=print) -> None:
        settings = as_dict(logging) if logging is not None else {}
        self.requested = requested_trackers(settings.get("trackers"))
        self.project = settings.get("project")
        self.every_steps = int(settings.get("every_steps") or 1)
        self.options = settings.get("options") or {}
        self.echo = echo
        self.trackers: list[tuple[str, Any]] = []
        self.started = False
        self.step_offset = 0  # optimizer steps of the stages before the current one

    @classmethod
    def for_recipe(cls, recipe: Any, echo=print) -> RunTracking:
        return cls(recipe.get("logging"), echo)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.trackers]

    def start(self, run_dir: Path, recipe: Any) -> None:
        """Start every requested tracker under ``run_dir/logs/<tracker>/`` (at most once)."""
        if self.started:
            return
        self.started = True
        names = self.requested
        if names is None:
            names = ["tensorboard"] if tensorboard_installed() else []
            if not names:
                self.echo("tracking: tensorboard is not installed, so no experiment tracker "
                          "(metrics.jsonl and plots/ hold the curves)")
        config = hyperparameters(recipe)
        for name in names:
            tracker = None
            try:
                tracker = build_tracker(name, Path(run_dir), self.project or str(recipe.name), str(recipe.name),
                                        as_dict(self.options.get(name) or {}))
                start_tracker(tracker)
                tracker.store_init_configuration(config)
            except Exception as error:  # a tracker never stops the run, but a full disk does
                if tracker is not None:
                    with contextlib.suppress(Exception):
                        tracker.finish()
                failure = storage_failure(error, Path(run_dir) / LOGS / name, folder=True)
                if failure is not None:
                    raise failure from None
                self._warn(name, "could not start", error)
                continue
            self.trackers.append((name, tracker))
        if self.trackers:
            self.echo(f"tracking: {', '.join(self.names)} under {Path(run_dir) / LOGS}")

    def log_step(self, record: dict[str, Any], last: bool = False) -> None:
        """A ``metrics.jsonl`` record of the current stage, every ``every_steps`` steps and at its last."""
        if record["step"] % self.every_steps == 0 or last:
            self._send(step_values(record), self.step_offset + record["step"])

    def end_stage(self, summary: dict[str, Any], send: bool = True) -> None:
        """A stage's summary (``DONE.json``); the next stage's steps follow its steps."""
        self.step_offset += int(summary["steps"])
        if send:
            self._send(stage_values(summary), self.step_offset)

    def log_evaluation(self, benchmark: str, metrics: dict[str, Any]) -> None:
        """A benchmark's metrics (and image-ablation drop), at the run's last step."""
        self._send(evaluation_values(benchmark, metrics), self.step_offset)

    def finish(self) -> None:
        """End every tracker; a full disk met by any of them (also in TensorBoard's writer thread, surfaced by a
        flush first) is raised as a :class:`StorageError` once all are ended, unless another error is already on
        its way out."""
        full: StorageError | None = None
        for name, tracker in self.trackers:
            try:
                writer = getattr(tracker, "writer", None) if name == "tensorboard" else None
                if writer is not None:
                    writer.flush()  # joins the event thread's queue and raises what the thread met
                tracker.finish()
            except Exception as error:
                failure = storage_failure(error, self._log_folder(name, tracker), folder=True)
                if failure is None:
                    self._warn(name, "could not finish", error, continues=False)
                else:
                    full = full or failure
                    with contextlib.suppress(Exception):
                        tracker.finish()
        self.trackers = []
        if full is not None and sys.exc_info()[1] is None:
            raise full

    def __enter__(self) -> RunTracking:
        return self

    def __exit__(self, *_: object) -> None:
        self.finish()

    def _send(self, values: dict[str, float], step: int) -> None:
        for name, tracker in list(self.trackers):
            try:
                tracker.log(values, step=step)
            except Exception as error:
                self.trackers.remove((name, tracker))
                with contextlib.suppress(Exception):
                    tracker.finish()
                failure = storage_failure(error, self._log_folder(name, tracker), folder=True)
                if failure is not None:  # a full disk stops the run like any other write would
                    raise failure from None
                self._warn(name, "failed", error)

    def _log_folder(self, name: str, tracker: Any) -> Path:
        """Where ``tracker`` writes (what a storage failure names; its writer thread does not say)."""
        folder = getattr(tracker, "logging_dir", None) or getattr(tracker, "run_dir", None)
        return Path(folder) if folder else Path(LOGS) / name

    def _warn(self, name: str, what: str, error: Exception, continues: bool = True) -> None:
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        tail = "; the run continues without it" if continues else ""
        self.echo(f"warning: tracker {name} {what} ({type(error).__name__}{': ' + reason if reason else ''}){tail}")
