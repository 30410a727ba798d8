"""The component interfaces a plugin implements (vision encoder, connector, language model, ...)."""
