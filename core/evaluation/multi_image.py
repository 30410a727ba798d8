"""Questions with several images, for an answerer that takes fewer: a declared policy, applied and counted.

An answerer declares how it handles a question with several images (:attr:`Answerer.multi_image`): ``all``
(every image, each at its ``<image>`` placeholder), ``first`` (the question is asked with its first image only)
or ``refuse`` (the question is not asked). ``--option multi_image=first|refuse`` chooses a narrower policy for an
evaluation. Nothing is silent: ``metrics.json`` records the policy and how many questions it touched, and refused
questions are counted among the skipped ones (``multi_image_refused``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medzoo.core.errors import DataError
from medzoo.core.interfaces.benchmark import BenchmarkItem

MULTI_IMAGE_POLICIES = ("all", "first", "refuse")
#: the ``skipped`` kind of ``metrics.json`` that counts questions refused for their several images
REFUSED_KIND = "multi_image_refused"


def check_multi_image_policy(value: Any, where: str) -> str:
    """``value`` as a policy name; a one-line DataError naming ``where`` (the option) and the choices."""
    policy = str(value)
    if policy not in MULTI_IMAGE_POLICIES:
        raise DataError(f"{where}={value!r}: expected one of {', '.join(MULTI_IMAGE_POLICIES)}")
    return policy


def multi_image_policy(declared: str, requested: Any, model_id: str) -> str:
    """The policy of an evaluation: ``requested`` (the option ``multi_image``) when given, else the answerer's
    ``declared`` one. ``all`` cannot be requested of an answerer that declared it takes one image."""
    declared = check_multi_image_policy(declared, f"{model_id}: multi_image")
    if requested is None:
        return declared
    policy = check_multi_image_policy(requested, "benchmark option multi_image")
    if policy == "all" and declared != "all":
        raise DataError(f"benchmark option multi_image=all: {model_id} takes one image per question (its policy is "
                        f"{declared!r}); choose multi_image=first or multi_image=refuse")
    return policy


@dataclass(frozen=True)
class MultiImageOutcome:
    """What the policy did: ``several`` questions had more than one image; ``refused`` were not asked,
    ``first_only`` were asked with their first image only."""

    policy: str
    several: int
    refused: int = 0
    first_only: int = 0

    def as_metrics(self) -> dict[str, Any]:
        return {"policy": self.policy, "questions_with_several_images": self.several, "refused": self.refused,
                "first_image_only": self.first_only}

    def describe(self, benchmark: str) -> str:
        """One line for the console (empty when no question has several images)."""
        if not self.several:
            return ""
        done = {"all": "asked with all their images", "first": "asked with their first image only",
                "refuse": "refused (not asked)"}[self.policy]
        return f"{benchmark}: {self.several} question(s) with several images {done} (multi_image={self.policy})"


def apply_multi_image(items: Sequence[BenchmarkItem], policy: str) -> tuple[list[BenchmarkItem], MultiImageOutcome]:
    """The items to ask under ``policy`` and what it did (a question keeps its order; ``first`` drops the other
    images, so the benchmark's prompt shows one placeholder)."""
    several = sum(1 for item in items if item.extra_images)
    if policy == "all" or not several:
        return list(items), MultiImageOutcome(policy, several)
    if policy == "refuse":
        return [item for item in items if not item.extra_images], MultiImageOutcome(policy, several, refused=several)
    kept = [dataclasses.replace(item, extra_images=[]) if item.extra_images else item for item in items]
    return kept, MultiImageOutcome(policy, several, first_only=several)
