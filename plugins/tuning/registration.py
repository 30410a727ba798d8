"""Registers the built-in tuning strategies."""

from medzoo import hookimpl


@hookimpl
def register_tuning_strategies(register):
    from medzoo.plugins.tuning.frozen import FrozenTuning
    from medzoo.plugins.tuning.full import FullTuning
    from medzoo.plugins.tuning.lora import LoraTuning
    from medzoo.plugins.tuning.partial import PartialTuning
    from medzoo.plugins.tuning.qlora import QLoraTuning

    register("frozen", FrozenTuning, description="not trained in the stage")
    register("full", FullTuning, description="all parameters trained")
    register("lora", LoraTuning, description="low-rank adapters (peft); options r, alpha, dropout, target_modules, "
             "use_dora (DoRA), use_rslora (rank-stabilised scaling)",
             tiny={"options": {"r": 4, "alpha": 8, "dropout": 0.0},
                   "variants": {"dora": {"use_dora": True}, "rslora": {"use_rslora": True}}})
    register("qlora", QLoraTuning, description="LoRA over 4-bit base weights (bitsandbytes, CUDA); LoRA options plus "
             "quant_type, double_quant, compute_dtype",
             tiny={"options": {"r": 4, "alpha": 8, "dropout": 0.0}})
    register("partial", PartialTuning, description="only the top layers of the module's stack trained; option "
             "top_layers", tiny={"options": {"top_layers": 1}})
