"""The plugin system: hook specifications, the plugin manager, the component table and the zoo's catalogue."""
