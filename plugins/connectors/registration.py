"""Registers the built-in connectors."""

from __future__ import annotations

from medzoo import Register, hookimpl


@hookimpl
def register_connectors(register: Register) -> None:
    from medzoo.plugins.connectors.identity import IdentityConnector
    from medzoo.plugins.connectors.linear import LinearConnector
    from medzoo.plugins.connectors.mlp import FAMILY_PATTERN, MlpGeluConnector
    from medzoo.plugins.connectors.multigranularity import MultiGranularityConnector
    from medzoo.plugins.connectors.perceiver import PerceiverResampler
    from medzoo.plugins.connectors.ppc import FAMILY_PATTERN as PPC_PATTERN
    from medzoo.plugins.connectors.ppc import PyramidPoolingConnector
    from medzoo.plugins.connectors.qformer import QFormerConnector

    register("linear", LinearConnector, description="one Linear layer (LLaVA-Med v1.0)")
    register(
        "mlpnx_gelu",
        MlpGeluConnector,
        pattern=FAMILY_PATTERN,
        examples=("mlp1x_gelu", "mlp2x_gelu", "mlp3x_gelu"),
        tiny={"name": "mlp2x_gelu"},
        description="mlp{N}x_gelu: Linear, then N-1 times GELU + Linear (LLaVA-Med v1.5: mlp2x_gelu)",
    )
    register(
        "identity",
        IdentityConnector,
        preserves_dim=True,
        description="no projection; vision and language widths must be equal",
    )
    register(
        "multigranularity",
        MultiGranularityConnector,
        description="ColonGPT-style: GELU MLP then average pooling of the patch grid to several sizes",
        tiny={"options": {"grids": [2, 1]}},
    )
    register(
        "ppc",
        PyramidPoolingConnector,
        pattern=PPC_PATTERN,
        examples=("ppc_14_7_1",),
        tiny={"name": "ppc_14_7_1"},
        description="ppc_{grids}: ColonGPT's multigranularity adapter (Linear+GELU, pyramid pooling, shared conv, Linear)",
    )
    register(
        "perceiver_resampler",
        PerceiverResampler,
        description="Flamingo-style Perceiver Resampler: num_queries learned latents cross-attend to the features",
        tiny={"options": {"num_queries": 4, "depth": 1, "heads": 2, "head_dim": 8}},
    )
    register(
        "qformer",
        QFormerConnector,
        description="BLIP-2 Q-Former: num_queries learned queries, self- and cross-attention, then a Linear",
        tiny={"options": {"num_queries": 4, "depth": 1, "hidden_size": 32, "heads": 2}},
    )
