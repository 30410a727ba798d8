"""Applications built on the core and the plugins: the CLI, serving, interop, the speed bench, the main job."""
