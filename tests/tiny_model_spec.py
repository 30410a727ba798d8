"""The smallest model the tests train (a recipe's ``model`` section): CLIP, mlp2x_gelu and Mistral, each built from
its plugin's ``tiny_config()`` (no ``config`` and no ``pretrained``), so the sizes live in one place: a CLIP-style
tower with 16 image tokens and a 2-layer Mistral-style language model with the shipped tokenizer."""

TINY_MODEL = {
    "vision": {"name": "clip"},
    "connector": {"name": "mlp2x_gelu"},
    "language": {"name": "mistral", "template": "mistral_instruct"},
}
