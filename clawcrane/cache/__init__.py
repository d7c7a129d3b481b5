"""Artifacts on disk: the only package that touches HDF5 and Parquet.

Every artifact carries its schema version, stage config, package version and a content key
chained from its inputs' keys (see ``fingerprint``). Writes are atomic (``atomic``).
"""
