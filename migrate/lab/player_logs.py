"""The players' own latency, handed from the load generator to the lab's gates as HdrHistogram interval
logs under `<lab>/players/`.

Why: an app cannot tell which geography a request came from, so only the players can say what a
geography saw. Each load run appends, every INTERVAL_S, the interval's histogram of each geography's
successful requests (every request type, µs) to `<pid>-<run>-<geography>.hlog`, and of its failed ones
to `<pid>-<run>-<geography>-errors.hlog` (their count is what matters; the values say how long failing
took). The format is the standard interval log (hdrh's HistogramLogWriter / HistogramLogReader, absolute
epoch timestamps), so any HdrHistogram tool can read the files too.

- One file per run and geography: no two writers share a file, and a geography is read without tags
  (the installed hdrh reads tags but does not write them).
- A line is appended with one write(), yet a reader may still catch one half written, and a killed
  run may leave one behind: readers use complete lines only.
- A reader adds up the intervals that start inside its time range, so files of finished runs may stay
  (`lab down` removes them); once older than the range they cost one stat.
- Intervals are short because a gate window uses only the intervals that start inside it: its edges
  lose at most one interval each."""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader, HistogramLogWriter

INTERVAL_S = 0.5  # how often a run appends an interval
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3  # 1 µs .. 1 h, as the load report's histograms
MAX_UNIT_RATIO = 1000.0  # the log's Interval_Max column in ms (values are µs)
ERRORS_SUFFIX = "-errors"


def log_dir(lab_dir: Path) -> Path:
    """Where every load run against the lab at `lab_dir` writes its interval logs."""
    return lab_dir / "players"


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def _us(latency_ms: float) -> int:
    return max(LOWEST_US, min(HIGHEST_US, int(latency_ms * 1000)))


def _interval_line(histogram: HdrHistogram, start: float, end: float) -> bytes:
    out = io.StringIO()
    HistogramLogWriter(out).output_interval_histogram(histogram, start, end, MAX_UNIT_RATIO)
    return out.getvalue().encode()


def _header(comment: str) -> bytes:
    out = io.StringIO()
    writer = HistogramLogWriter(out)
    writer.output_comment(f"[{comment}]")
    writer.output_log_format_version()
    writer.output_base_time(0)  # timestamps are absolute (epoch seconds): readers compare them with their clock
    writer.output_legend()
    return out.getvalue().encode()


class IntervalLogWriter:
    """One load run's interval logs: `record()` each finished request, `publish()` about every INTERVAL_S,
    `close()` at the end. Used by one thread at a time (the load's event loop, then the thread closing it)."""

    def __init__(self, lab_dir: Path, name: str, geographies: Iterable[str],
                 clock: Callable[[], float] = time.time) -> None:
        """name: unique per run (e.g. "<pid>-<run id>"); clock: epoch seconds, the readers' clock."""
        self.folder = log_dir(lab_dir)
        self.name = name
        self.clock = clock
        self._ok = {g: new_histogram() for g in geographies}
        self._failed = {g: new_histogram() for g in geographies}
        self._start = clock()
        self._fds: dict[Path, int] = {}
        self._closed = False
        self.error: str | None = None  # the first write that failed; logging stops there, the load goes on

    def path(self, geography: str, errors: bool = False) -> Path:
        """The log of `geography`'s successful (or failed) requests."""
        return self.folder / f"{self.name}-{geography}{ERRORS_SUFFIX if errors else ''}.hlog"

    def record(self, geography: str, latency_ms: float, failed: bool) -> None:
        """One finished request of a player of `geography` (ignored for a geography not logged)."""
        histogram = (self._failed if failed else self._ok).get(geography)
        if histogram is not None:
            histogram.record_value(_us(latency_ms))

    def publish(self) -> None:
        """Append the interval since the last publish (geographies with requests in it) and start the next."""
        start, end = self._start, self.clock()
        self._start = end
        for errors, table in ((False, self._ok), (True, self._failed)):
            for geography, histogram in table.items():
                if not histogram.get_total_count():
                    continue
                if not self._closed:
                    self._append(geography, errors, _interval_line(histogram, start, end))
                # A fresh histogram, not reset(): hdrh zeroes its ~26k counts in a Python loop (~6 ms,
                # GIL held), twelve times a second, in the players' own event loop.
                table[geography] = new_histogram()

    def close(self) -> None:
        """Publish the last interval and close the files (they stay for readers); idempotent."""
        if self._closed:
            return
        self.publish()
        self._closed = True
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def _append(self, geography: str, errors: bool, line: bytes) -> None:
        if self.error is not None:
            return
        path = self.path(geography, errors)
        try:
            fd = self._fds.get(path)
            if fd is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd = self._fds[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                kind = "failed" if errors else "successful"
                _write(fd, _header(f"players of load run {self.name} in {geography}: {kind} requests, µs"))
            _write(fd, line)
        except OSError as exc:  # the lab dir went away (lab down mid-run): the gates fall back, the load goes on
            self.error = f"{path}: {exc.strerror or type(exc).__name__}"


def _write(fd: int, data: bytes) -> None:
    while data:  # one write() in practice; the loop only covers a short write
        data = data[os.write(fd, data):]


@dataclass(frozen=True)
class PlayerLatency:
    """What one geography's players measured over a time range, every load run's logs added up."""

    histogram: HdrHistogram  # latency of the successful requests, µs
    errors: int  # failed requests (timeouts, refused connections, 5xx …)
    intervals: int  # interval histograms of successes added up (0: no player logged in the range)
    problems: tuple[str, ...] = ()  # logs that could not be read (each skipped from its bad line on)

    @property
    def samples(self) -> int:
        """Successful requests the histogram holds."""
        return self.histogram.get_total_count()

    @property
    def p95_ms(self) -> float | None:
        """p95 of the successful requests in ms; None without any."""
        return self.histogram.get_value_at_percentile(95) / 1000.0 if self.samples else None


class _TextLogReader(HistogramLogReader):
    """hdrh's log reader over text already read: its constructor takes a path, and reading the file
    itself would also decode a last line that is still being written."""

    def __init__(self, text: str) -> None:
        super().__init__(os.devnull, new_histogram())
        self.input_file.close()
        self.input_file = io.StringIO(text)


def read_range(lab_dir: Path, geography: str, start: float, end: float) -> PlayerLatency:
    """`geography`'s intervals that start within [start, end] (epoch seconds) in every run's logs, added up."""
    ok, failed, problems = new_histogram(), new_histogram(), []
    intervals = sum(_add(path, ok, start, end, problems) for path in _logs(lab_dir, geography, False, start))
    for path in _logs(lab_dir, geography, True, start):
        _add(path, failed, start, end, problems)
    return PlayerLatency(ok, failed.get_total_count(), intervals, tuple(problems))


def _logs(lab_dir: Path, geography: str, errors: bool, start: float) -> list[Path]:
    """The logs of `geography` written to since `start` (a file untouched since holds no interval after it)."""
    found = []
    for path in sorted(log_dir(lab_dir).glob(f"*-{geography}{ERRORS_SUFFIX if errors else ''}.hlog")):
        try:
            if path.stat().st_mtime >= start - 1.0:  # 1 s of slack for coarse file-system timestamps
                found.append(path)
        except OSError:  # removed meanwhile
            continue
    return found


def _add(path: Path, into: HdrHistogram, start: float, end: float, problems: list[str]) -> int:
    """Add `path`'s intervals that start within [start, end] into `into`; how many."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0
    text = data[:data.rfind(b"\n") + 1].decode("utf-8", "replace")  # a torn last line is not a line yet
    reader, added = _TextLogReader(text), 0
    try:
        while reader.add_next_interval_histogram(into, start, end, absolute=True) is not None:
            added += 1
    except Exception as exc:  # noqa: BLE001 — a damaged log must not crash a bake: the rest of it is skipped, noted
        problems.append(f"player log {path.name} unreadable after {added} intervals ({type(exc).__name__})")
    finally:
        reader.close()
    return added
