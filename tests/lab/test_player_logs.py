"""The players' interval logs: what a load run writes is what a gate window reads back (added up over
runs, only the intervals that start inside the range), in the standard format hdrh's own reader takes,
and a half-written or damaged log never breaks a reader. A fake clock stamps the intervals (in the past,
so the files' real modification times are after them, as when players write while a gate reads)."""

from __future__ import annotations

from hdrh.log import HistogramLogReader

from migrate.lab.player_logs import IntervalLogWriter, log_dir, new_histogram, read_range

T0 = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write_intervals(lab_dir, name, intervals, clock=None):
    """intervals: [(seconds it lasts, {geography: [(latency ms, failed), ...]})]; the writer, closed."""
    clock = clock or Clock()
    writer = IntervalLogWriter(lab_dir, name, ("apac", "na", "eu"), clock=clock)
    for seconds, requests in intervals:
        for geography, finished in requests.items():
            for latency_ms, failed in finished:
                writer.record(geography, latency_ms, failed)
        clock.now += seconds
        writer.publish()
    writer.close()
    return writer


def test_what_a_run_writes_a_window_reads_back_errors_apart(tmp_path):
    apac = [(170.0 + i, False) for i in range(100)] + [(5000.0, True), (0.0, True)]
    writer = write_intervals(tmp_path, "1-run", [(0.5, {"apac": apac[:50]}), (0.5, {"apac": apac[50:]})])

    got = read_range(tmp_path, "apac", T0, T0 + 10)
    assert (got.samples, got.errors, got.intervals, got.problems) == (100, 2, 2, ())
    expected = new_histogram()
    for latency_ms, failed in apac:
        if not failed:
            expected.record_value(int(latency_ms * 1000))
    assert got.p95_ms == expected.get_value_at_percentile(95) / 1000  # the interval histograms added up
    assert 260 < got.p95_ms < 270

    # geographies apart: NA played nothing, EU had no log at all
    assert read_range(tmp_path, "na", T0, T0 + 10).intervals == 0
    assert read_range(tmp_path, "eu", T0, T0 + 10).p95_ms is None
    assert not writer.path("na").exists()  # an interval without requests is not written
    assert writer.error is None


def test_the_logs_are_standard_interval_logs_hdrh_reads(tmp_path):
    writer = write_intervals(tmp_path, "1-run", [(0.5, {"eu": [(20.0, False)] * 3}), (0.5, {"eu": [(30.0, False)]})])
    reader = HistogramLogReader(str(writer.path("eu")), new_histogram())
    first, second = reader.get_next_interval_histogram(), reader.get_next_interval_histogram()
    assert reader.get_next_interval_histogram() is None
    assert (first.get_total_count(), second.get_total_count()) == (3, 1)
    assert (first.get_start_time_stamp(), second.get_start_time_stamp()) == (T0 * 1000, (T0 + 0.5) * 1000)
    reader.close()


def test_only_intervals_that_start_inside_the_range_count_and_runs_add_up(tmp_path):
    one = [(1.0, {"na": [(25.0, False)] * n}) for n in (1, 2, 4, 8)]  # starting at T0, +1, +2, +3
    write_intervals(tmp_path, "1-old", one)
    write_intervals(tmp_path, "2-new", [(1.0, {"na": [(30.0, False)] * 16})], clock=Clock(T0 + 2))

    assert read_range(tmp_path, "na", T0 + 1, T0 + 2).samples == 2 + 4 + 16  # starts at +1 and +2, both runs
    assert read_range(tmp_path, "na", T0 + 0.5, T0 + 1.5).samples == 2  # straddling the edges: left out
    assert read_range(tmp_path, "na", T0 + 10, T0 + 20).intervals == 0  # after every interval
    assert read_range(tmp_path, "na", T0 - 20, T0 - 10).intervals == 0  # before
    assert read_range(tmp_path, "na", T0, T0 + 100).samples == 1 + 2 + 4 + 8 + 16


def test_a_torn_last_line_is_skipped_and_a_damaged_log_is_noted_not_raised(tmp_path):
    writer = write_intervals(tmp_path, "1-run", [(1.0, {"apac": [(170.0, False)] * 5})])
    path = writer.path("apac")
    complete = path.read_text()
    line = complete.splitlines()[-1]
    for cut in (len(line) // 2, line.index(",", line.index(",") + 1) + 1, len(line) - 3):
        path.write_text(complete + line.replace(f"{T0:f}", f"{T0 + 1:f}")[:cut])  # the writer is mid-line
        got = read_range(tmp_path, "apac", T0, T0 + 10)
        assert (got.samples, got.intervals, got.problems) == (5, 1, ())

    # a complete but damaged line (not ours to write, but a reader meets it): what came before still counts
    path.write_text(complete + f"{T0 + 1:f},1.000000,0.000000,HISTFAAAnotbase64!\n")
    got = read_range(tmp_path, "apac", T0, T0 + 10)
    assert (got.samples, got.intervals) == (5, 1)
    assert len(got.problems) == 1 and path.name in got.problems[0]


def test_a_lab_folder_that_went_away_stops_the_logs_not_the_load(tmp_path):
    (tmp_path / "players").write_text("a file where the folder should be")
    writer = write_intervals(tmp_path, "1-run", [(1.0, {"apac": [(170.0, False)]})])
    assert writer.error is not None and "players" in writer.error
    assert read_range(tmp_path / "nowhere", "apac", T0, T0 + 10).intervals == 0
    assert log_dir(tmp_path) == tmp_path / "players"
