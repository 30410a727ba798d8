"""A run's training plots (``plots/<stage>-{loss,lr}.png``) and a sweep's loss comparison."""

from medzoo.app.plots.run_plots import redraw_run, run_plots
from medzoo.app.plots.sweep import write_sweep_plot

__all__ = ["redraw_run", "run_plots", "write_sweep_plot"]
