"""Registers the built-in training objectives (``sft``, ``dpo``, ``grpo``)."""

from __future__ import annotations

from medzoo import Register, hookimpl


@hookimpl
def register_objectives(register: Register) -> None:
    from medzoo.plugins.objectives.dpo import DirectPreferenceObjective
    from medzoo.plugins.objectives.grpo import GroupRelativeObjective
    from medzoo.plugins.objectives.sft import SupervisedObjective

    register("sft", SupervisedObjective,
             description="supervised tuning: next-token cross-entropy on the assistant replies (the default)")
    register("dpo", DirectPreferenceObjective,
             description="direct preference optimisation (sigmoid / IPO, label smoothing, reference-free, + SFT term)",
             tiny={"options": {"beta": 0.1, "sft_weight": 0.5}})
    register("grpo", GroupRelativeObjective,
             description="group relative policy optimisation with verifiable rewards (GRPO / DAPO / Dr. GRPO "
                         "normalisations, optional KL, rollouts from the engine or vLLM)",
             tiny={"options": {"rewards": {"exact-match": 1.0}, "group_size": 2, "max_completion_length": 8}})
