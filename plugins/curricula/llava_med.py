"""``llava-med``: alignment, then instruction tuning, then (optionally) downstream fine-tuning."""

from __future__ import annotations

from typing import Any

from medzoo import Curriculum

ROLE_ORDER = ("alignment", "instruct", "downstream")


class LlavaMedCurriculum(Curriculum):
    """Runs the recipe's stages in order; ``downstream`` stages run only with ``options.downstream: true``.

    Roles: ``alignment`` (biomedical concept alignment), ``instruct`` (instruction tuning), ``preference`` (a
    preference-optimisation stage after instruction tuning, e.g. DPO), ``downstream`` (fine-tuning on one
    benchmark's training split), ``custom`` (anything else, run in order).
    """

    name = "llava-med"
    roles = ("alignment", "instruct", "preference", "downstream", "custom")

    def plan(self, stages: list[Any]) -> list[Any]:
        downstream = bool(self.options.get("downstream", False))
        return [stage for stage in stages if stage.role != "downstream" or downstream]
