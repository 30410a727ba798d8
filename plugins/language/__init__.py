"""Language-model plugins: Hugging Face causal LMs (Llama, Vicuna, Mistral) and the tiny shipped tokenizer."""
