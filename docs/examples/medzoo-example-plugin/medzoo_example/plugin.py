"""The plugin module named by the ``medzoo`` entry point: registration hooks only, heavy imports deferred."""

from __future__ import annotations

from medzoo import Register, hookimpl


@hookimpl
def register_vision_encoders(register: Register) -> None:
    from medzoo_example.encoder import ConvViTEncoder

    register(
        "conv-vit",
        ConvViTEncoder,
        description="ViT with a convolutional stem (Xiao et al. 2021); local weights",
    )


@hookimpl
def register_connectors(register: Register) -> None:
    from medzoo_example.resampler import PerceiverResampler

    register(
        "perceiver-resampler",
        PerceiverResampler,
        description="Flamingo-style perceiver resampler: num_latents learned queries attend to the image features",
    )


@hookimpl
def register_objectives(register: Register) -> None:
    from medzoo_example.smoothed_sft import SmoothedSupervisedObjective

    register(
        "smoothed-sft",
        SmoothedSupervisedObjective,
        description="supervised tuning with label-smoothed cross-entropy (objective: {name: smoothed-sft, smoothing})",
        tiny={"options": {"smoothing": 0.1}},
    )


@hookimpl
def register_rewards(register: Register) -> None:
    from medzoo_example.laterality import LateralityReward

    register(
        "laterality",
        LateralityReward,
        description="1 when the answer names the reference's side (left / right / bilateral), for GRPO stages",
        tiny={
            "options": {"partial": 0.25},
            "context": {"record_id": "cxr-1", "reference": "Left lower lobe.", "question": "Where is the opacity?"},
            "right": {"completion": "In the left lung base."},
            "wrong": {"completion": "The right lower lobe."},
        },
    )
