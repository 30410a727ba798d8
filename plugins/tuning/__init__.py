"""Tuning strategies: frozen, full fine-tuning, partial (top layers), LoRA (peft; DoRA and rsLoRA as options) and
QLoRA (LoRA over 4-bit base weights)."""
