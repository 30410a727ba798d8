"""How a medzoo connector is written as llava-hf's ``multi_modal_projector``: ``linear_2(act(linear_1(x)))``
applied to each vision feature on its own (``projector_hidden_act``, biases on: ``multimodal_projector_bias``).

Each connector says whether and how through its ``llava_hf_export`` (``mlp2x_gelu`` is that projector with GELU;
a single Linear (``linear``, ``mlp1x_gelu``) and ``identity`` are written exactly with the identity activation
and identity matrices with zero biases where a layer is missing). Connectors that change the token count are
refused here, before the connector is asked.
"""

from __future__ import annotations

from medzoo.core.errors import ExportRefused
from medzoo.core.interfaces.connector import Connector
from medzoo.core.interfaces.llava_hf import IDENTITY_ACT, LlavaHfProjector

__all__ = ["IDENTITY_ACT", "express_projector"]


def express_projector(connector: Connector, name: str) -> LlavaHfProjector:
    """The llava-hf projector of ``connector`` (plugin ``name``), or :class:`ExportRefused` saying why not."""
    if connector.num_output_tokens != connector.num_input_tokens:
        raise ExportRefused(
            f"hf-llava cannot hold the token-reducing {name} connector ({connector.num_input_tokens} -> "
            f"{connector.num_output_tokens} tokens per image): llava-hf has one image token per vision feature"
        )
    return connector.llava_hf_export(name)
