"""CSV rows with their line numbers, refusing a quote that is never closed on its line.

Python's ``csv`` module reads a field whose opening quote is never closed on to the next quote
or the end of the file, silently: one odd sentence swallows the rows after it. Sentences and
table cells never hold a line break, so a field that does is such a quote, and it is reported
with the line where it opened.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator

from clawcrane.errors import DataError


def csv_rows(lines: Iterable[str], path: str | os.PathLike) -> Iterator[tuple[int, list[str]]]:
    """``(line, columns)`` of every row (blank lines give ``[]``); raises ``DataError`` for an unclosed quote."""
    reader = csv.reader(lines)
    start = 1
    for cols in reader:
        end = reader.line_num
        if any("\n" in c or "\r" in c for c in cols):
            raise DataError(
                f"{path}:{start}: a quote opened on this line is not closed on it (the field runs on to line {end}); "
                'close the quote, or write a quote inside a field as two ("")'
            )
        yield end, cols
        start = end + 1
