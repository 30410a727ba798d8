"""Every vision encoder and connector declares through ``llava_hf_export`` whether and how llava-hf holds it: what
a declaration returns is checked against the component itself (a tower's features on a probe image, a
projector's output on random features), and a refusal is one line naming the component."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medzoo import ExportRefused, LlavaHfProjector, LlavaHfTower
from medzoo.app.interop.hf_llava_vision import check_features
from medzoo.core.plugin_system.manager import components

VISION_DIM, LANGUAGE_DIM, TOKENS = 16, 24, 64
ACTIVATIONS = {"gelu": F.gelu, "linear": lambda x: x}


def concrete_names(kind: str) -> list[str]:
    """Registered names, each family (``pattern=``) replaced by its ``examples``."""
    names = []
    for name in components().names(kind):
        info = components().get(kind, name).info
        names.extend(info.get("examples") or ()) if info.get("pattern") else names.append(name)
    return names


@pytest.mark.parametrize("name", components().names("vision_encoder"))
def test_a_vision_encoders_declaration_is_its_features_or_a_one_line_refusal(name):
    factory = components().get("vision_encoder", name).factory
    torch.manual_seed(0)
    encoder = factory.from_config(factory.tiny_config()).eval()
    try:
        tower = encoder.llava_hf_export(name)
    except ExportRefused as refusal:
        assert str(refusal).startswith(f"hf-llava cannot hold the {name} vision encoder ({type(encoder).__name__}): ")
        assert "\n" not in str(refusal)
        return
    assert isinstance(tower, LlavaHfTower)
    check_features(encoder, name, tower)  # refuses unless the features are the declared hidden state


@pytest.mark.parametrize("name", concrete_names("connector"))
def test_a_connectors_declaration_computes_what_it_does_or_is_a_one_line_refusal(name):
    registration = components().get("connector", name)
    language_dim = VISION_DIM if registration.info.get("preserves_dim") else LANGUAGE_DIM
    torch.manual_seed(0)
    connector = registration.factory(VISION_DIM, language_dim, TOKENS).eval()
    try:
        projector = connector.llava_hf_export(name)
    except ExportRefused as refusal:
        assert str(refusal).startswith(f"hf-llava cannot hold the {name} connector")
        assert "\n" not in str(refusal)
        return
    assert isinstance(projector, LlavaHfProjector)
    features = torch.randn(2, TOKENS, VISION_DIM, generator=torch.Generator().manual_seed(1))
    (weight_1, bias_1), (weight_2, bias_2) = projector.linear_1, projector.linear_2
    with torch.no_grad():
        theirs = F.linear(ACTIVATIONS[projector.act](F.linear(features, weight_1, bias_1)), weight_2, bias_2)
        torch.testing.assert_close(theirs, connector(features), atol=1e-6, rtol=0)


def test_the_declarations_that_llava_hf_holds():
    """Not vacuous: the LLaVA towers and projectors are declared exportable."""
    exportable = []
    for name in ("clip", "siglip", "mlp2x_gelu", "mlp1x_gelu", "linear", "identity"):
        kind = "vision_encoder" if name in ("clip", "siglip") else "connector"
        factory = components().get(kind, name).factory
        if kind == "vision_encoder":
            built = factory.from_config(factory.tiny_config())
        else:
            built = factory(VISION_DIM, VISION_DIM, TOKENS)
        exportable.append(type(built.llava_hf_export(name)).__name__)
    assert exportable == ["LlavaHfTower"] * 2 + ["LlavaHfProjector"] * 4
