"""CSV records of a contact file, with every unclosed quote reported on its own line.

A quote that is opened and never closed would, by the CSV rules, make the rest of the file (or
everything up to the next quote) one field. The line where it opens is reported as a problem row
instead, and the lines after it are read as rows of their own: no contact disappears unseen.

A field left open on every line used to be read again from each of its lines in turn, up to fifty
lines each time: a 256 KB file of such lines cost 0.9 s of CPU within the request, 3.6 s when the
lines held long near-addresses (each checked again every time). Now what a line does inside a
quoted field, and whether it stands alone (a contact of its own), is worked out once per line and
kept while it may matter, and a field certain to be taken for an unclosed quote is not read on:
the same records as before (checked against the old reading on random files), in one pass.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

MAX_FIELD = 10_000
# A quoted field running over more lines than this (or MAX_FIELD characters) is taken for an
# unclosed quote: a real one (an address, a note) is a few lines, and it also bounds what is kept.
MAX_FIELD_LINES = 50


class Record(NamedTuple):
    line: int  # the line of the file it starts on, 1-based
    cells: list[str]
    unclosed: str | None  # the line's text when it opens a quote that is not closed; cells are then []


class _FieldTooLong(Exception):
    pass


def _stays_open(line: str, delimiter: str) -> bool | None:
    """Whether a quoted field still open when `line` begins is still open at its end (None: the
    line is too long for the csv reader to say)."""
    asked = False

    def probe() -> Iterator[str]:
        nonlocal asked
        yield '"' + line  # an opening quote: the line is read as from inside a quoted field
        asked = True

    try:
        next(csv.reader(probe(), delimiter=delimiter), None)
    except csv.Error:
        return None
    return asked


class _Lines:
    """The lines given to a csv reader, numbered; those of the record being read are kept so that
    they can be read again.

    When a record's first line leaves a quoted field open, what follows is worked out from what
    each line does inside a quoted field (learnt once per line, kept while it matters): a field
    certain to run past the limits, or up to a line that stands alone, is an unclosed quote at
    once — the lines are not read again and again from each line of a runaway field in turn.
    """

    def __init__(self, lines: Iterable[str], delimiter: str, stands_alone: Callable[[int, str], bool]) -> None:
        self._source = iter(lines)
        self._again: deque[tuple[int, str]] = deque()
        self._count = 0
        self.record: list[tuple[int, str]] = []
        self._continued = 0
        self.ran_out = False
        self._delimiter = delimiter
        self._stands_alone = stands_alone
        self._text: dict[int, str] = {}  # the lines from the record being read on
        self._upto: dict[int, int] = {0: 0}  # characters in the lines up to and including this one
        # Lines run_from..run_to keep a quoted field open; `closer`, the line after them, ends it;
        # `last_alone`, the last line before it or it standing alone (0: none).
        self._run_from = self._run_to = self._last_alone = 0
        self._closer: int | None = None

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        # Asked for another line while the record is already long: raising here (the csv reader
        # passes it on) stops the reader before it holds the rest of the file in one field.
        if self.record and (len(self.record) >= MAX_FIELD_LINES or self._continued > MAX_FIELD):
            raise _FieldTooLong
        if len(self.record) == 1 and self._runs_away(self.record[0][0]):
            raise _FieldTooLong
        if self._again:
            number, line = self._again.popleft()
        else:
            read = self._read()
            if read is None:
                self.ran_out = True
                raise StopIteration
            number, line = read
        if self.record:
            self._continued += len(line)
        elif len(self._text) > 4 * MAX_FIELD_LINES:  # a record starts here: nothing before it is asked again
            for old in [n for n in self._text if n < number - 1]:
                del self._text[old], self._upto[old]
        self.record.append((number, line))
        return line

    def _read(self) -> tuple[int, str] | None:
        try:
            line = next(self._source)
        except StopIteration:
            return None
        self._count += 1
        self._text[self._count] = line
        self._upto[self._count] = self._upto[self._count - 1] + len(line)
        return self._count, line

    def _chars(self, first: int, last: int) -> int:
        return self._upto[last] - self._upto[first - 1]

    def _runs_away(self, start: int) -> bool:
        """Whether the quoted field that line `start` leaves open is certain to be taken for an
        unclosed quote, as the csv reader would find reading on (False: let it read on)."""
        limit = MAX_FIELD * 10  # never claimed where the csv reader could refuse the field instead
        if not self._run_from <= start + 1 <= self._run_to + 1:
            self._run_from, self._run_to, self._closer, self._last_alone = start + 1, start, None, 0
        while True:
            if self._run_to - start >= MAX_FIELD_LINES - 1 or self._chars(start + 1, self._run_to) > MAX_FIELD:
                return self._chars(start, self._run_to) < limit
            if self._closer is not None:
                return self._last_alone > start and self._chars(start, self._closer) < limit
            following = self._run_to + 1
            if following > self._count:
                read = self._read()
                if read is None:
                    return False  # the file ends inside the field: the reader says what that means
                self._again.append(read)
            stays = _stays_open(self._text[following], self._delimiter)
            if stays is None:
                return False
            if stays:
                self._run_to = following
                continue
            self._closer = following
            lines = ((n, self._text[n]) for n in range(start + 1, following + 1))  # later starts are further on
            self._last_alone = max((n for n, line in lines if "@" in line and self._stands_alone(n, line)), default=0)

    def start_record(self) -> None:
        self.record, self._continued, self.ran_out = [], 0, False

    def read_again(self, lines: list[tuple[int, str]]) -> None:
        self._again.extendleft(reversed(lines))


def _readings(line: str, delimiter: str) -> Iterator[list[str]]:
    """A line's cells read on its own; and read with quotes as plain characters, because the quote
    that ended a runaway field may open one on the line itself (`"b@x.com,Bob` after `"a@x.com,Ann`)."""
    yield next(csv.reader([line], delimiter=delimiter), [])
    plain = next(csv.reader([line], delimiter=delimiter, quoting=csv.QUOTE_NONE), [])
    yield [cell.strip().strip('"') for cell in plain]


def records(lines: Iterable[str], delimiter: str, stands_alone: Callable[[list[str]], bool],
            final: bool = True) -> Iterator[Record]:
    """CSV records, with each unclosed quote reported on its own line and the lines after it read again.

    A quoted field is taken as unclosed when it is still open at the end of the file (`final`),
    runs too long, or swallowed a line that `stands_alone` says is a row of its own (a contact,
    so a line with an address).
    """
    alone: dict[int, bool] = {}  # by line number, for the lines that may still be read again

    def line_stands_alone(number: int, line: str) -> bool:
        known = alone.get(number)
        if known is None:
            known = alone[number] = any(stands_alone(cells) for cells in _readings(line, delimiter))
        return known

    feed = _Lines(lines, delimiter, line_stands_alone)
    reader = csv.reader(feed, delimiter=delimiter)
    while True:
        feed.start_record()
        try:
            cells: list[str] | None = next(reader)
        except StopIteration:
            return
        except _FieldTooLong:
            cells = None
        except csv.Error:  # e.g. a 150,000-character cell: that row is a problem, not the whole file
            record = feed.record
            reader = csv.reader(feed, delimiter=delimiter)
            yield Record(record[0][0], [record[0][1][:200]], None)
            continue
        record = feed.record
        if len(alone) > 2 * MAX_FIELD_LINES:  # records start further on only: the lines before are done
            for number in [n for n in alone if n <= record[0][0]]:
                del alone[number]
        # A contact row has an address, so a line without "@" is not looked at more closely.
        unclosed = (cells is None or (final and feed.ran_out)
                    or (len(record) > 1  # most records are one line: no generator for them
                        and any(line_stands_alone(number, line) for number, line in record[1:] if "@" in line)))
        if cells is not None and not unclosed:
            yield Record(record[0][0], cells, None)
            continue
        feed.read_again(record[1:])
        reader = csv.reader(feed, delimiter=delimiter)  # the old one may be inside the runaway field
        yield Record(record[0][0], [], record[0][1].rstrip("\r\n"))
