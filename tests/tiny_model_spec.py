"""The smallest model the tests train: a CLIP-style tower (16 image tokens), mlp2x_gelu and a 2-layer
Mistral-style language model with the shipped tokenizer (a recipe's ``model`` section)."""

TINY_MODEL = {
    "vision": {"name": "clip", "config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                          "num_attention_heads": 4, "image_size": 32, "patch_size": 8}},
    "connector": {"name": "mlp2x_gelu"},
    "language": {"name": "mistral", "template": "mistral_instruct",
                 "config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
                            "tokenizer": "medzoo-tiny"}},
}
