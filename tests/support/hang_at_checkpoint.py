"""``python -m support.hang_at_checkpoint ARGS``: ``medzoo ARGS`` that stops for good at a chosen checkpoint.

The process about to publish the checkpoint folder named by ``MEDZOO_TEST_HANG_AT`` (its staging folder fully
written, ``latest`` still naming the checkpoint before) writes the file named by ``MEDZOO_TEST_HANG_READY`` and
sleeps instead, so a test can ``kill -9`` a training run at a known point however slow the machine is, rather
than racing the run to its end. Every other checkpoint is published as usual.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TARGET = "MEDZOO_TEST_HANG_AT"
READY = "MEDZOO_TEST_HANG_READY"


def install(target: Path, ready: Path) -> None:
    """Make publishing ``target`` (a ``.../checkpoints/step-N`` folder) announce itself in ``ready`` and hang."""
    from medzoo.core.training import checkpoint

    publish, target = checkpoint._publish, target.resolve()

    def hang_before_publishing(directory: Path, staging: Path, final: Path, keep: int) -> None:
        if Path(final).resolve() == target:
            ready.write_text(f"{os.getpid()}\n")
            while True:
                time.sleep(60)
        publish(directory, staging, final, keep)

    checkpoint._publish = hang_before_publishing


if __name__ == "__main__":
    install(Path(os.environ[TARGET]), Path(os.environ[READY]))
    from medzoo.app.cli.main import main

    main()
