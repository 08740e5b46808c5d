"""Comparisons: samplers x step counts (x cfg x seeds x presets) on one class, in lock step, and their grids."""
