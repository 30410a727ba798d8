"""Leaderboards: our runs beside published results, as markdown, csv or self-contained html."""
