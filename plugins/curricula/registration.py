"""Registers the built-in curricula."""

from medzoo import hookimpl


@hookimpl
def register_curricula(register):
    from medzoo.plugins.curricula.instruct_only import InstructOnlyCurriculum
    from medzoo.plugins.curricula.joint import JointCurriculum
    from medzoo.plugins.curricula.llava_med import LlavaMedCurriculum

    register("llava-med", LlavaMedCurriculum, description="alignment -> instruct (-> downstream with options.downstream)",
             tiny={"options": {"downstream": True}})
    register("instruct-only", InstructOnlyCurriculum, description="ablation: skip the alignment stage")
    register("joint", JointCurriculum, description="ablation: one stage over alignment + instruct data",
             tiny={"options": {"alignment_weight": 0.5}})
