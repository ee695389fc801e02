"""Sweeps: spec, designs (grid, IsoFLOP, ladder), executors, the runs table (docs/sweeps.md)."""
