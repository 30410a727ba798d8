"""Registers the built-in optimizers and learning-rate schedules."""

from medzoo import hookimpl


@hookimpl
def register_optimizers(register):
    from medzoo.plugins.optim.optimizers import adamw, sgd

    register("adamw", adamw, description="AdamW (torch.optim.AdamW), as the LLaVA-Med trainer; options betas, fused")
    register("sgd", sgd, description="SGD (torch.optim.SGD); options momentum, nesterov, fused")


@hookimpl
def register_lr_schedules(register):
    from medzoo.plugins.optim.schedules import constant, cosine, linear

    register("cosine", cosine, description="linear warmup, then cosine decay to 0 (option num_cycles)")
    register("linear", linear, description="linear warmup, then linear decay to 0")
    register("constant", constant, description="linear warmup, then the recipe's learning rate")
