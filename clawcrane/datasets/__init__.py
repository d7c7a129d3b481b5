"""Dataset readers. Every reader yields the record model of ``records``; ``open_dataset`` picks one."""

from clawcrane.datasets.layout import LAYOUTS, detect_layout, open_dataset
from clawcrane.datasets.records import Dataset, Instance, Query, Video

__all__ = ["LAYOUTS", "Dataset", "Instance", "Query", "Video", "detect_layout", "open_dataset"]
