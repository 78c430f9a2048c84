"""The plan spec: the shipped migration.toml is valid and complete, and every malformed variant is
refused with one line naming the file and the line or field, plus a hint with the fix."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import pytest
from pydantic import ValidationError

from migrate.errors import SpecError, UnknownRegion
from migrate.spec import GEOGRAPHIES, PHASES, REGIONAL_PHASES, Spec, load_spec
from migrate.spec_locate import key_lines, line_of

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "migration.toml"

Edit = Callable[[str], str]


def sub(old: str, new: str) -> Edit:
    """An edit replacing the one occurrence of `old` (the test fails loudly if it is not unique)."""

    def edit(text: str) -> str:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in migration.toml"
        return text.replace(old, new)

    return edit


def line(old: str) -> str:
    """A shipped `{ phase = … }` line, as it appears in the programme (with indent and newline)."""
    return f"  {old},\n"


def swap(first: str, second: str) -> Edit:
    return sub(first + second, second + first)


def move(entry: str, before: str) -> Edit:
    """Take a programme line out and put it back just before another one."""

    def edit(text: str) -> str:
        text = sub(entry, "")(text)
        return sub(before, entry + before)(text)

    return edit


STANDUP_AP = line('{ phase = "stand-up-region", region = "ap-northeast-1" }')
ATTACH_AP = line('{ phase = "attach-secondary", region = "ap-northeast-1" }')
SHADOW_EU = line('{ phase = "shadow-traffic", region = "eu-central-1" }')
CUTOVER = line('{ phase = "cutover", region = "ap-northeast-1" }')
CUTOVER_EU = line('{ phase = "cutover", region = "eu-central-1" }')
SHIFT_EU = line('{ phase = "shift-traffic", region = "eu-central-1" }')
EXPAND = line('{ phase = "expand-schema" }')
CONTRACT = line('{ phase = "contract-schema" }')


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec(SHIPPED)


# -- the shipped file --------------------------------------------------------------------------

def test_shipped_spec_has_the_whole_programme(spec):
    assert {e.phase for e in spec.phases} == set(PHASES)
    assert spec.programme == spec.phases
    assert spec.source_region == "us-east-1"
    assert spec.target_regions == ["ap-northeast-1", "eu-central-1"]
    for region in spec.target_regions:
        assert [e.phase for e in spec.phase_entries(region=region)
                if e.phase in REGIONAL_PHASES] == list(REGIONAL_PHASES)
    for phase in ("expand-schema", "contract-schema"):
        [entry] = spec.phase_entries(phase=phase)
        assert entry.region is None
    # Every target region becomes the writer of the players it homes, Tokyo first (DESIGN §2).
    assert spec.cutover_regions == ["ap-northeast-1", "eu-central-1"]
    for region in spec.target_regions:
        labels = [e.label for e in spec.phase_entries(region=region)]
        assert labels.index(f"shift-traffic {region}") < labels.index(f"cutover {region}")
    assert spec.phases[0].label == "stand-up-region ap-northeast-1"  # Tokyo first
    assert spec.phases[-1].phase == "contract-schema"  # the point of no return comes last
    order = [e.phase for e in spec.phases]
    assert order.index("expand-schema") < order.index("cutover")
    assert max(i for i, p in enumerate(order) if p == "cutover") < order.index("contract-schema")
    assert [q.name for q in spec.quarters] == sorted(q.name for q in spec.quarters)
    assert all(q.goal for q in spec.quarters)
    assert [e for q in spec.quarters for e in q.phases] == spec.phases
    assert all(e.quarter for e in spec.phases)


def test_shipped_regions_mix_and_settings(spec):
    assert set(spec.regions) == {"us-east-1", "ap-northeast-1", "eu-central-1"}
    assert spec.regions["ap-northeast-1"].display == "Tokyo"
    assert spec.regions["ap-northeast-1"].geography == "apac"
    assert spec.regions["us-east-1"].role == "source" and spec.regions["us-east-1"].writer
    assert spec.writer_region == "us-east-1"
    assert sum(r.writer for r in spec.regions.values()) == 1
    assert spec.region_for_geography("eu") == "eu-central-1"
    assert spec.traffic_mix == {"apac": 0.60, "na": 0.25, "eu": 0.15}
    assert abs(sum(spec.traffic_mix.values()) - 1) < 1e-9
    assert spec.shift_schedule == [1, 5, 25, 50, 100]
    assert set(spec.gates.p95_ms_max) == set(GEOGRAPHIES)
    assert 0 < spec.shadow.sample_rate <= 1 and spec.shadow.reads_only
    assert 0 < spec.shadow.min_samples and 0 <= spec.shadow.error_rate_max < 1
    assert all(route.startswith("/") for route in spec.shadow.endpoints)
    assert spec.shadow.endpoints["/v1/leaderboard/regional"].diff is False


def test_shipped_environments(spec):
    lab, aws = spec.environment("lab"), spec.environment("aws")
    assert (lab.name, lab.kind, aws.name, aws.kind) == ("lab", "lab", "aws", "aws")
    assert lab.state_url == "sqlite:///.migrate/lab-state.db"
    assert aws.state_url.startswith("postgresql://") and ":" not in aws.state_url.split("@")[0][13:]
    assert lab.lab is not None and lab.lab.lab_dir == ".lab" and lab.lab.players == 1_000_000
    assert lab.aws is None and aws.lab is None
    assert aws.aws is not None and len(aws.aws.account_id) == 12
    for env in (lab, aws):
        assert 0 < env.heartbeat_seconds < env.lock_ttl_seconds
        assert env.timings.verify_chunk_rows > 0
    assert lab.timings.bake_seconds < 60 <= aws.timings.bake_seconds  # seconds vs real minutes


def test_digest_path_and_helpers(spec):
    assert spec.digest == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert spec.path == SHIPPED
    assert spec.phase_entries(phase="shift-traffic", region="eu-central-1")[0].quarter == "2027-Q4"
    assert spec.phase_entries(phase="cutover", region="eu-central-1")[0].quarter == "2027-Q4"
    assert len(spec.phase_entries()) == len(spec.phases) == 12
    with pytest.raises(UnknownRegion) as excinfo:
        spec.region("eu-west-1")
    assert "eu-central-1" in excinfo.value.hint
    with pytest.raises(ValidationError):
        spec.regions["us-east-1"].writer = False  # frozen: nothing changes the spec after load


def test_unknown_environment_lists_known_ones(spec):
    with pytest.raises(SpecError) as excinfo:
        spec.environment("prod")
    err = excinfo.value
    assert "prod" in err.message and str(SHIPPED) in err.one_line()
    assert err.hint == "pass --env one of lab, aws"
    with pytest.raises(SpecError) as excinfo:
        spec.environment("labb")
    assert excinfo.value.hint.startswith("did you mean 'lab'?")


def test_lab_defaults_when_left_out(tmp_path):
    edit = sub('state_url = "sqlite:///.migrate/lab-state.db"\n', "")
    text = edit(SHIPPED.read_text())
    start, end = text.index("[environments.lab.lab]"), text.index("[environments.aws]")
    path = tmp_path / "migration.toml"
    path.write_text(text[:start] + text[end:])
    lab = load_spec(path).environment("lab")
    assert lab.state_url == "sqlite:///.migrate/lab-state.db"
    assert lab.lab is not None and lab.lab.lab_dir == ".lab" and lab.lab.players == 1_000_000


def test_an_environment_sizes_its_own_shadow_sample(spec):
    lab, aws = spec.shadow_in(spec.environment("lab")), spec.shadow_in(spec.environment("aws"))
    assert (lab.sample_rate, lab.min_samples) == (0.5, 100)  # [environments.lab.shadow]
    assert (aws.sample_rate, aws.min_samples) == (spec.shadow.sample_rate, spec.shadow.min_samples)
    assert lab.max_observe_bakes == spec.shadow.max_observe_bakes and lab.endpoints == spec.shadow.endpoints


# -- malformed files ---------------------------------------------------------------------------

# (id, edit, field expected in `where` (or None), text of the line expected in `where` (or None),
#  part of the message, part of the hint)
CASES = [
    ("toml-syntax", sub("lock_ttl_seconds = 30 ", "lock_ttl_seconds 30 "),
     None, "lock_ttl_seconds 30", "invalid TOML", "key = value"),
    ("unknown-top-level-key", sub("version = 1\n", "version = 1\nshift_shedule = [1, 100]\n"),
     "shift_shedule", "shift_shedule", "unknown key 'shift_shedule'",
     "did you mean 'shift_schedule'?"),
    ("misspelt-key", sub("heartbeat_seconds = 5 ", "heartbeat_secs = 5 "),
     "environments.lab.heartbeat_secs", "heartbeat_secs", "unknown key",
     "did you mean 'heartbeat_seconds'?"),
    ("wrong-type", sub("players = 1000000", 'players = "lots"'),
     "environments.lab.lab.players", "players =", 'must be a whole number, got string "lots"',
     "players must be a whole number > 0"),
    ("string-for-number", sub("bake_seconds = 1800", 'bake_seconds = "1800"'),
     "environments.aws.timings.bake_seconds", "bake_seconds = \"1800\"", "must be a number",
     "bake_seconds must be a number of seconds > 0"),
    ("negative-bake", sub("bake_seconds = 25 ", "bake_seconds = -5 "),
     "environments.lab.timings.bake_seconds", "bake_seconds = -5", "must be > 0, got -5",
     "bake_seconds must be a number of seconds > 0"),
    ("missing-key", sub("step_timeout_seconds = 900\n", ""),
     "environments.lab.timings.step_timeout_seconds", "[environments.lab.timings]",
     "missing required key 'step_timeout_seconds'", "add step_timeout_seconds to"),
    ("unknown-phase", sub('phase = "attach-secondary", region = "eu-central-1"',
                          'phase = "attach-secondry", region = "eu-central-1"'),
     "quarters[2].phases[2].phase", "attach-secondry", "unknown phase 'attach-secondry'",
     "did you mean 'attach-secondary'?"),
    ("unknown-region", sub('phase = "shadow-traffic", region = "eu-central-1"',
                           'phase = "shadow-traffic", region = "eu-west-1"'),
     "quarters[3].phases[0].region", "eu-west-1", "unknown region 'eu-west-1'", "eu-central-1"),
    ("unknown-region-table", sub("[regions.eu-central-1]", "[regions.eu-centrl-1]"),
     "regions.eu-centrl-1", "[regions.eu-centrl-1]", "unknown region 'eu-centrl-1'",
     "did you mean 'eu-central-1'?"),
    ("source-region-as-target", sub('phase = "stand-up-region", region = "eu-central-1"',
                                    'phase = "stand-up-region", region = "us-east-1"'),
     "quarters[2].phases[1].region", 'region = "us-east-1"', "source region",
     "ap-northeast-1, eu-central-1"),
    ("mix-not-one", sub("apac = 0.60", "apac = 0.70"),
     "traffic_mix", "[traffic_mix]", "sum to 1.1", "add up to 1"),
    ("mix-unknown-geography", sub("eu = 0.15\n", "eu = 0.10\nemea = 0.05\n"),
     "traffic_mix.emea", "emea", "unknown geography 'emea'", "known geographies: apac, na, eu"),
    ("two-writers", sub('writer = false\ngeography = "eu"', 'writer = true\ngeography = "eu"'),
     "regions.eu-central-1.writer", None, "more than one writer region",
     "exactly one region holds the writer"),
    ("two-sources", sub('role = "target"\nwriter = false\ngeography = "apac"',
                        'role = "source"\nwriter = false\ngeography = "apac"'),
     "regions.ap-northeast-1.role", None, "more than one source region", "exactly one region"),
    ("duplicate-phase", sub(SHADOW_EU, SHADOW_EU + SHADOW_EU),
     "quarters[3].phases[1]", None, "duplicate entry: shadow-traffic for eu-central-1",
     "each phase runs once per region"),
    ("out-of-dependency-order", swap(STANDUP_AP, ATTACH_AP),
     "quarters[0].phases[0]", 'phase = "attach-secondary", region = "ap-northeast-1"',
     "attach-secondary for ap-northeast-1 comes before stand-up-region",
     "move it after quarters[0].phases[1] (line "),
    ("cutover-before-attach", move(CUTOVER, before=STANDUP_AP),
     "quarters[0].phases[0]", 'phase = "cutover"', "cutover to ap-northeast-1 comes before",
     "caught-up replica"),
    ("cutover-before-its-shift", move(CUTOVER_EU, before=SHIFT_EU),
     "quarters[3].phases[1]", 'phase = "cutover", region = "eu-central-1"',
     "cutover to eu-central-1 comes before shift-traffic for eu-central-1", "served there before"),
    ("cutover-before-expand", move(CUTOVER, before=EXPAND),
     "quarters[1].phases[1]", 'phase = "cutover"', "cutover to ap-northeast-1 comes before expand-schema",
     "the fence"),
    ("contract-before-a-cutover", move(CUTOVER_EU, before="]\n\n# ---"),
     "quarters[3].phases[2]", 'phase = "contract-schema"', "contract-schema comes before cutover to eu-central-1",
     "once every cutover has soaked"),
    ("missing-cutover", sub(CUTOVER_EU, ""),
     "quarters", "[[quarters]]", "lacks cutover for eu-central-1",
     '{phase = "cutover", region = "eu-central-1"}'),
    ("contract-before-expand", move(CONTRACT, before=EXPAND),
     "quarters[1].phases[1]", 'phase = "contract-schema"', "contract-schema comes before expand",
     "move it after quarters[1].phases[2] (line "),
    ("missing-phase", sub(CONTRACT, ""),
     "quarters", "[[quarters]]", "lacks contract-schema", '{phase = "contract-schema"}'),
    ("region-on-global-phase", sub('{ phase = "expand-schema" }',
                                   '{ phase = "expand-schema", region = "ap-northeast-1" }'),
     "quarters[1].phases[1].region", 'phase = "expand-schema"', "global and takes no region",
     "remove region"),
    ("schedule-not-ending-at-100", sub("shift_schedule = [1, 5, 25, 50, 100]",
                                       "shift_schedule = [1, 5, 25, 50]"),
     "shift_schedule[3]", "shift_schedule =", "ends at 50 %, not 100 %", "end shift_schedule with 100"),
    ("schedule-not-increasing", sub("shift_schedule = [1, 5, 25, 50, 100]",
                                    "shift_schedule = [1, 25, 5, 50, 100]"),
     "shift_schedule[2]", "shift_schedule =", "does not rise", "[1, 5, 25, 50, 100]"),
    ("schedule-over-100", sub("shift_schedule = [1, 5, 25, 50, 100]",
                              "shift_schedule = [1, 5, 25, 50, 150]"),
     "shift_schedule[4]", "shift_schedule =", "must be <= 100, got 150", "shift_schedule must be"),
    ("quarters-out-of-order", sub('name = "2027-Q2"', 'name = "2026-Q4"'),
     "quarters[1].name", '"2026-Q4"', "comes after 2027-Q1", "time order"),
    ("bad-quarter-name", sub('name = "2027-Q2"', 'name = "Q2 2027"'),
     "quarters[1].name", '"Q2 2027"', 'invalid value "Q2 2027"', '"2027-Q1"'),
    ("password-in-state-url", sub("postgresql://migrate@", "postgresql://migrate:hunter2@"),
     "environments.aws.state_url", "hunter2", "contains a password", "PGPASSWORD"),
    ("aws-table-on-lab", sub("[environments.aws]\n",
                             '[environments.lab.aws]\nprofile = "p"\naccount_id = "123456789012"\n\n'
                             "[environments.aws]\n"),
     "environments.lab.aws", "[environments.lab.aws]", 'belongs to kind = "aws"',
     "remove [environments.lab.aws]"),
    ("heartbeat-not-below-ttl", sub("heartbeat_seconds = 60", "heartbeat_seconds = 300"),
     "environments.aws.heartbeat_seconds", "heartbeat_seconds = 300", "not less than",
     "lock_ttl_seconds"),
    ("bad-account-id", sub('account_id = "000000000000"', 'account_id = "12345"'),
     "environments.aws.aws.account_id", '"12345"', 'invalid value "12345"', "12-digit"),
    ("writes-mirrored", sub("reads_only = true", "reads_only = false"),
     "shadow.reads_only", "reads_only = false", "not supported", "applied twice"),
    ("shadow-route-not-a-path", sub('[shadow.endpoints."/v1/assets/{name}"]',
                                    '[shadow.endpoints."v1/assets/{name}"]'),
     'shadow.endpoints."v1/assets/{name}"', '[shadow.endpoints."v1/assets/{name}"]',
     "is not a route template", 'starting with "/"'),
    ("shadow-bad-ignore-pattern", sub('ignore_fields = ["age_seconds", "errors"]',
                                      'ignore_fields = ["age..seconds", "errors"]'),
     'shadow.endpoints."/v1/leaderboard/global".ignore_fields[0]', 'ignore_fields = ["age..seconds"',
     "age..seconds", "entries.*.achieved_at"),
    ("shadow-negative-recheck", sub("recheck_seconds = 1.0", "recheck_seconds = -1.0"),
     "shadow.recheck_seconds", "recheck_seconds = -1.0", "must be >= 0", "seconds >= 0"),
    ("lab-shadow-rate-over-one", sub("[environments.lab.shadow]\nsample_rate = 0.5",
                                     "[environments.lab.shadow]\nsample_rate = 5"),
     "environments.lab.shadow.sample_rate", "sample_rate = 5", "must be <= 1", "(0, 1]"),
    ("unknown-kind", sub('kind = "aws"', 'kind = "gcp"'),
     "environments.aws.kind", 'kind = "gcp"', "unknown environment kind 'gcp'", "lab, aws"),
]


def write_variant(tmp_path: Path, edit: Edit) -> tuple[Path, str]:
    text = edit(SHIPPED.read_text())
    path = tmp_path / "migration.toml"
    path.write_text(text)
    return path, text


def assert_one_line(err: SpecError, path: Path) -> None:
    assert "\n" not in err.one_line() and "\n" not in str(err) and "\n" not in err.message
    assert err.one_line().startswith(str(path))
    assert err.where and err.where.startswith(str(path))
    assert err.hint and "\n" not in err.hint
    assert err.code == "SPEC_INVALID"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_spec_is_refused_with_one_line(tmp_path, case):
    _, edit, field, line_text, message, hint = case
    path, text = write_variant(tmp_path, edit)
    with pytest.raises(SpecError) as excinfo:
        load_spec(path)
    err = excinfo.value
    assert_one_line(err, path)
    if field is not None:
        assert err.where.endswith(f": {field}"), err.where
        assert err.details["field"] == field
    if line_text is not None:
        number = next(i for i, ln in enumerate(text.splitlines(), 1) if line_text in ln)
        assert err.where.startswith(f"{path}:{number}"), (err.where, number)
        assert err.details["line"] == number
    assert message in err.message, err.message
    assert hint in err.hint, err.hint
    assert "more problem" not in err.message, err.message  # each case breaks exactly one thing


def test_only_the_first_problem_is_reported_with_a_count(tmp_path):
    edit = sub("players = 1000000", "players = -1")
    path, text = write_variant(tmp_path, lambda t: edit(sub("bake_seconds = 25 ", "bake_seconds = -5 ")(t)))
    with pytest.raises(SpecError) as excinfo:
        load_spec(path)
    err = excinfo.value
    assert_one_line(err, path)
    assert "environments.lab.timings.bake_seconds" in err.where  # the topmost one
    assert err.message.endswith("(and 1 more problem)")
    assert err.details["more"] == 1


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "migration.toml"
    with pytest.raises(SpecError) as excinfo:
        load_spec(path)
    err = excinfo.value
    assert str(path) in err.one_line() and "\n" not in err.one_line()
    assert "run from the repo root or pass --spec" in err.hint


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(SpecError) as excinfo:
        load_spec(tmp_path)
    assert "directory" in excinfo.value.message and excinfo.value.hint


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "migration.toml"
    path.write_bytes(SHIPPED.read_bytes().replace(b'"Tokyo"', b'"T\xf6ky\xf6"'))
    with pytest.raises(SpecError) as excinfo:
        load_spec(path)
    number = SHIPPED.read_text().splitlines().index('display = "Tokyo"') + 1
    assert excinfo.value.where == f"{path}:{number}"


def test_loading_writes_nothing(tmp_path, monkeypatch):
    (tmp_path / "migration.toml").write_bytes(SHIPPED.read_bytes())
    (tmp_path / "broken.toml").write_text("version = \n")
    monkeypatch.chdir(tmp_path)

    def listing() -> dict[str, tuple[int, int]]:
        out = {}
        for folder, dirs, files in os.walk(tmp_path):
            for name in dirs + files:
                full = Path(folder) / name
                stat = full.stat()
                out[str(full.relative_to(tmp_path))] = (stat.st_size, stat.st_mtime_ns)
        return out

    before = listing()
    spec = load_spec(Path("migration.toml"))
    spec.environment("lab")
    with pytest.raises(SpecError):
        load_spec(Path("broken.toml"))
    with pytest.raises(SpecError):
        load_spec(Path("absent.toml"))
    assert listing() == before
    assert not (tmp_path / ".migrate").exists()


# -- locating keys -----------------------------------------------------------------------------

def test_key_lines_follows_tables_arrays_and_inline_tables():
    text = (
        'a = 1\n'
        '[t]\n'
        'b."quoted key" = "x # not a comment"\n'
        's = """multi\n'
        'line ] } """\n'
        '[[q]]\n'
        'n = 1\n'
        '[[q]]\n'
        'items = [\n'
        '  { k = 1 },   # comment\n'
        '  { k = 2, j = [1, 2] },\n'
        ']\n'
        '[q.sub]\n'
        'z = 3\n'
    )
    lines = key_lines(text)
    assert lines[("a",)] == 1
    assert lines[("t", "b", "quoted key")] == 3
    assert lines[("t", "s")] == 4
    assert lines[("q", 0, "n")] == 7
    assert lines[("q", 1)] == 8
    assert lines[("q", 1, "items", 1, "j", 1)] == 11
    assert lines[("q", 1, "sub", "z")] == 14
    assert line_of(lines, ("q", 1, "items", 0, "missing")) == 10
    assert line_of(lines, ("nowhere",)) is None


@pytest.mark.parametrize("state_url", ['"postgresql://migrate:hunter2@db:5432/migrate"',
                                       "postgresql://migrate:hunter2@db:5432/migrate"],
                         ids=["quoted", "unquoted-toml-error"])
def test_a_password_in_the_file_is_never_echoed(tmp_path, state_url):
    old = 'state_url = "postgresql://migrate@migrate-state.internal.example:5432/migrate?sslmode=require"'
    path, _ = write_variant(tmp_path, sub(old, f"state_url = {state_url}"))
    with pytest.raises(SpecError) as excinfo:
        load_spec(path)
    err = excinfo.value
    assert_one_line(err, path)
    assert "hunter2" not in f"{err.one_line()} {err.hint} {err.details}"


def test_empty_file_reports_the_first_missing_key(tmp_path):
    path = tmp_path / "migration.toml"
    path.write_text("# nothing yet\n")
    with pytest.raises(SpecError) as excinfo:
        load_spec(path)
    err = excinfo.value
    assert_one_line(err, path)
    assert err.where == f"{path}: version"
    assert err.message == "missing required key 'version' (and 7 more problems)"
    assert "add version to the top level" in err.hint
