"""Layer 1, imported by every other: errors, typed configs, the JAX backend, devices, image files, parallelism."""
