"""``joint``: one stage over a weighted mixture of the alignment and instruction data."""

from __future__ import annotations

import copy
from typing import Any

from omegaconf import OmegaConf, open_dict

from medzoo.plugins.curricula.llava_med import LlavaMedCurriculum


class JointCurriculum(LlavaMedCurriculum):
    """Alignment and instruct stages become one stage with the instruct stage's settings.

    Each alignment dataset keeps its own template (the alignment stage's, usually ``plain``) and its weight is
    multiplied by ``options.alignment_weight`` (default 1.0).
    """

    name = "joint"

    def plan(self, stages: list[Any]) -> list[Any]:
        stages = super().plan(stages)
        alignment = [s for s in stages if s.role == "alignment"]
        instruct = [s for s in stages if s.role == "instruct"]
        if not alignment or not instruct:
            return stages
        joint = copy.deepcopy(instruct[0])
        scale = float(self.options.get("alignment_weight", 1.0))
        mixed = []
        for stage in alignment:
            for dataset in stage.datasets:
                dataset = copy.deepcopy(dataset)
                with open_dict(dataset):
                    dataset.weight = float(dataset.weight) * scale
                    if stage.template:
                        dataset.options["template"] = stage.template
                mixed.append(dataset)
        with open_dict(joint):
            joint.name = "joint"
            joint.init_from = None
            joint.datasets = OmegaConf.merge(OmegaConf.create({"d": mixed}), {}).d + list(joint.datasets)
        rest = [s for s in stages if s.role not in ("alignment", "instruct")]
        for stage in rest:
            if stage.init_from in {s.name for s in alignment + instruct}:
                stage.init_from = None
        return [joint, *rest]
