"""Registers the built-in tuning strategies."""

from medzoo import hookimpl


@hookimpl
def register_tuning_strategies(register):
    from medzoo.plugins.tuning.frozen import FrozenTuning
    from medzoo.plugins.tuning.full import FullTuning
    from medzoo.plugins.tuning.lora import LoraTuning

    register("frozen", FrozenTuning, description="not trained in the stage")
    register("full", FullTuning, description="all parameters trained")
    register("lora", LoraTuning, description="low-rank adapters (peft); options r, alpha, dropout, target_modules",
             tiny={"options": {"r": 4, "alpha": 8, "dropout": 0.0}})
