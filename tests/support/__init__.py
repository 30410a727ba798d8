"""Test support that is not a fixture: stand-ins for the official LLaVA code and scripts, a fake OpenAI server."""
