"""Layer 2: the data set catalogue (``datasets``), its loaders, batching and image degradations."""
