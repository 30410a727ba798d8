"""Turning transformers' activation (gradient) checkpointing on and off across its API rename."""

from __future__ import annotations

from typing import Any

NON_REENTRANT = {"use_reentrant": False}  # recomputation that works with frozen inputs


def set_activation_checkpointing(model: Any, enabled: bool) -> None:
    """Recompute ``model``'s block activations in the backward pass, or stop doing so.

    Recent transformers releases call this ``activation_checkpointing_*`` and deprecate the older
    ``gradient_checkpointing_*`` names, which earlier releases alone have.
    """
    if enabled:
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=NON_REENTRANT)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=NON_REENTRANT)
    elif hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()
