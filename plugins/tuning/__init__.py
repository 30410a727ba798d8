"""Tuning strategies: frozen, full fine-tuning and LoRA (peft)."""
