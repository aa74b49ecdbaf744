"""Loaders behind ``core.data.datasets``: one module per source format.

Each loader returns a :class:`core.data.loaders.common.RawData`; ``core.data.datasets`` then checks
the classes, splits data that has no test split, resizes it and makes it read-only. Nothing here
is public API: front ends call ``core.data.datasets``.
"""
