"""Layer 8, the front ends' side of core: dashboard logic per page, figures, sharing, export and the CLI."""
