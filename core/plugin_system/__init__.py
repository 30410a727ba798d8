"""The plugin system: hook specifications, the plugin manager and the table of registered components."""
