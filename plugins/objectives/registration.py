"""Registers the built-in training objectives (``sft``, ``dpo``)."""

from __future__ import annotations

from medzoo import Register, hookimpl


@hookimpl
def register_objectives(register: Register) -> None:
    from medzoo.plugins.objectives.dpo import DirectPreferenceObjective
    from medzoo.plugins.objectives.sft import SupervisedObjective

    register("sft", SupervisedObjective,
             description="supervised tuning: next-token cross-entropy on the assistant replies (the default)")
    register("dpo", DirectPreferenceObjective,
             description="direct preference optimisation (sigmoid / IPO, label smoothing, reference-free, + SFT term)",
             tiny={"options": {"beta": 0.1, "sft_weight": 0.5}})
