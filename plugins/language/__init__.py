"""Language-model plugins: Hugging Face causal LMs by family (llama, vicuna, mistral, qwen2, qwen3, llama3, phi,
phi3, gemma2, gemma3, and ``hf-causal`` for any other checkpoint), each with its tiny shipped tokenizer."""
