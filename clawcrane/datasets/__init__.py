"""Dataset readers. Every reader yields the record model of ``records``."""

from clawcrane.datasets.records import Dataset, Instance, Query, Video

__all__ = ["Dataset", "Instance", "Query", "Video"]
