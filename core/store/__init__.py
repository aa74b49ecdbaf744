"""Layer 4: persistence of runs (``store``), their checkpoints, and comparisons between runs."""
