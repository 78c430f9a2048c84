"""The plan spec: `migration.toml` at the repo root, loaded and validated into a frozen `Spec`.

The file names the environments (lab, aws), the regions and their roles, the player traffic mix,
the whole programme of phases grouped by quarter, the traffic-shift schedule, the SLO gates and the
shadow-traffic settings. `load_spec` reads it with tomllib, validates its shape with pydantic
(extra keys forbidden everywhere, so a typo is an error, not a silently ignored setting) and then
the rules that span fields (one source, one writer, dependency order of the phases …).

Whatever is wrong, the operator gets one SpecError line naming the file, the line and the field,
and a hint with the fix. Loading reads the file and nothing else; it never writes."""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from migrate.errors import SpecError, UnknownRegion
from migrate.names import GEOGRAPHIES, PHASE_CATALOGUE, PHASES, REGIONS, SOURCE_REGION
from migrate.spec_locate import Loc, key_lines, line_of
from migrate.spec_report import (Problem, dotted, pydantic_problems, raise_first, suggest,
                                 syntax_problem)

# -- names (DESIGN §10) ------------------------------------------------------------------------

DEFAULT_SPEC_PATH = Path("migration.toml")
REGIONAL_PHASES = tuple(e.name for e in PHASE_CATALOGUE[:[e.regional for e in PHASE_CATALOGUE].index(False)])
"""The phases every target region goes through, in order, before the schema is expanded (the
catalogue's regional phases ahead of its first global one)."""
GLOBAL_PHASES = tuple(e.name for e in PHASE_CATALOGUE if not e.regional)
"""Phases that act on the one global schema and take no region."""
DEFAULT_LAB_STATE_URL = "sqlite:///.migrate/lab-state.db"
MIX_TOLERANCE = 1e-6


def _choice(noun: str, known: tuple[str, ...], plural: str = "") -> BeforeValidator:
    """Reject an unknown name with 'did you mean' before Literal does it with a bare list."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and value not in known:
            raise PydanticCustomError("spec_unknown", "unknown {noun} '{value}'",
                                      {"noun": noun, "value": value,
                                       "hint": suggest(value, known, plural or noun + "s")})
        return value

    return BeforeValidator(check)


def _env_name(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"[a-z][a-z0-9_-]*", value):
        raise PydanticCustomError("spec_env_name", "invalid environment name '{value}'",
                                  {"value": value, "hint": "environment names are lower-case "
                                   "letters, digits, - and _, e.g. [environments.lab]"})
    return value


RegionName = Annotated[Literal[REGIONS],
                       _choice("region", REGIONS)]
Geography = Annotated[Literal[GEOGRAPHIES], _choice("geography", GEOGRAPHIES, "geographies")]
PhaseName = Annotated[Literal[PHASES],
                      _choice("phase", PHASES)]
Role = Annotated[Literal["source", "target"], _choice("role", ("source", "target"))]
Kind = Annotated[Literal["lab", "aws"], _choice("environment kind", ("lab", "aws"))]
EnvName = Annotated[str, BeforeValidator(_env_name)]
Share = Annotated[float, Field(ge=0, le=1)]
Percent = Annotated[float, Field(gt=0, le=100)]
Millis = Annotated[float, Field(gt=0)]


class _Model(BaseModel):
    # strict: "5" is not 5 and true is not 1 — a wrong type in the file is an error, not a guess.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# -- regions -----------------------------------------------------------------------------------

class RegionBody(_Model):
    """A [regions.NAME] table as written in the file."""

    role: Role = Field(description='"source" (where the game runs today) or "target"')
    writer: bool = Field(False, description="true only on the region holding the database writer "
                                            "before the migration (the source)")
    geography: Geography = Field(description="the player geography this region serves first: "
                                             "apac, na or eu")
    display: str = Field(min_length=1, description='a human name for the region, e.g. "Tokyo"')


class RegionSpec(RegionBody):
    """One region of the migration; `name` is its AWS region name (the table key)."""

    name: RegionName


# -- environments ------------------------------------------------------------------------------

class Timings(_Model):
    """How long things may take and how often to look; short in the lab, real on AWS."""

    poll_interval_seconds: float = Field(gt=0, description="a number of seconds > 0 between "
                                         "progress polls in long steps")
    bake_seconds: float = Field(gt=0, description="a number of seconds > 0: how long each traffic "
                                "weight bakes before its gate is evaluated")
    catch_up_timeout_seconds: float = Field(gt=0, description="a number of seconds > 0: how long a "
                                            "new replica may take to catch up with the writer")
    lag_budget_seconds: float = Field(gt=0, description="a number of seconds > 0: the largest "
                                      "replication lag that still counts as caught up")
    lag_budget_bytes: int = Field(gt=0, description="a whole number of bytes > 0: the largest WAL "
                                  "distance that still counts as caught up")
    verify_chunk_rows: int = Field(gt=0, description="a whole number of rows > 0 per checksum "
                                   "chunk when verifying a replica")
    step_timeout_seconds: float = Field(gt=0, description="a number of seconds > 0: the longest "
                                        "any single step may run")
    soak_seconds: float = Field(604800, gt=0, description="a number of seconds > 0 a cutover runs before "
                                "contract-schema may delete the rows its home writer no longer owns (7 days "
                                "when left out)")


class AwsSettings(_Model):
    """How to reach the AWS account (credentials come from the profile, never from this file)."""

    profile: str = Field(min_length=1, description="the name of an AWS CLI profile "
                         "(~/.aws/config), e.g. \"game-migrate\"")
    account_id: str = Field(pattern=r"^\d{12}$", description="the 12-digit AWS account id, "
                            "checked against the profile's identity before any change")
    endpoint_url: str | None = Field(None, pattern=r"^https?://", description="an http(s):// URL "
                                     "of an AWS-compatible endpoint (a moto server), or left out")
    database_secret_id: str | None = Field(None, min_length=1, description="the Secrets Manager secret "
                                           "(name or ARN, in the writer's region) holding the Aurora "
                                           "credentials as RDS JSON {username, password}; needed by the "
                                           "schema phases and data verification, never printed")
    database_name: str = Field("game", min_length=1, description="the game's database on the Aurora cluster")


class LabSettings(_Model):
    """Where the local three-region lab lives and how big its data set is."""

    lab_dir: str = Field(".lab", min_length=1, description="a directory (relative to the repo "
                         "root) holding every trace of the lab")
    players: int = Field(1_000_000, gt=0, description="a whole number > 0 of synthetic players "
                         "seeded into the lab")

    @property
    def path(self) -> Path:
        return Path(self.lab_dir)


class ShadowSampling(_Model):
    """An [environments.NAME.shadow] table: the environment's own sample and patience, which depend on
    how many players it has (a lab's few dozen fill 200 answers at 5 % only after many minutes)."""

    sample_rate: float | None = Field(None, gt=0, le=1, description="a fraction in (0, 1] of players "
                                      "mirrored in this environment (default: [shadow] sample_rate)")
    min_samples: int | None = Field(None, gt=0, description="a whole number > 0 of compared answers "
                                    "before the gate can pass here (default: [shadow] min_samples)")
    max_observe_bakes: int | None = Field(None, gt=0, description="a whole number > 0 of bakes to "
                                          "wait for min_samples here (default: [shadow] max_observe_bakes)")


class EnvironmentBody(_Model):
    """An [environments.NAME] table as written in the file."""

    kind: Kind = Field(description='"lab" (the local three-region world) or "aws"')
    state_url: str | None = Field(None, min_length=1, description="the journal and lock store: "
                                  "sqlite:///PATH or postgresql://USER@HOST:PORT/DB, without a "
                                  "password (use PGPASSWORD or ~/.pgpass)")
    lock_ttl_seconds: float = Field(gt=0, description="a number of seconds > 0 a lock lease "
                                    "lasts without a heartbeat")
    heartbeat_seconds: float = Field(gt=0, description="a number of seconds > 0 between lease "
                                     "renewals, well under lock_ttl_seconds")
    timings: Timings = Field(description="a [timings] table")
    aws: AwsSettings | None = Field(None, description="an [aws] table (kind = \"aws\" only)")
    lab: LabSettings | None = Field(None, description="a [lab] table (kind = \"lab\" only)")
    shadow: ShadowSampling | None = Field(None, description="a [shadow] table overriding [shadow]'s "
                                          "sample_rate, min_samples or max_observe_bakes here")


class EnvironmentSpec(EnvironmentBody):
    """One environment the programme runs in; `name` is what `--env` takes."""

    name: str
    state_url: str  # filled per kind when the file leaves it out (lab: a SQLite file)


# -- programme ---------------------------------------------------------------------------------

class PhaseItem(_Model):
    """One `{phase = …, region = …}` entry of a quarter as written in the file."""

    phase: PhaseName = Field(description="one of the seven phase names: " + ", ".join(PHASES))
    region: RegionName | None = Field(None, description="a target region; left out for "
                                      "expand-schema and contract-schema")


class QuarterBody(_Model):
    """A [[quarters]] table as written in the file."""

    name: str = Field(pattern=r"^\d{4}-Q[1-4]$", description='a quarter like "2027-Q1"')
    goal: str = Field(min_length=1, description="one sentence: what is true at the end of it")
    phases: list[PhaseItem] = Field(description="an array of {phase = …, region = …} entries")


class PhaseEntry(_Model):
    """One phase of the programme: which, where (None for global phases) and in which quarter."""

    phase: PhaseName
    region: RegionName | None
    quarter: str

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.phase, self.region)

    @property
    def label(self) -> str:
        """`shift-traffic ap-northeast-1`, or just `expand-schema` for a global phase."""
        return self.phase if self.region is None else f"{self.phase} {self.region}"


class QuarterSpec(_Model):
    """A quarter of the programme: its goal and its phases in order."""

    name: str
    goal: str
    phases: list[PhaseEntry]


# -- gates and shadow --------------------------------------------------------------------------

class Gates(_Model):
    """SLO gates evaluated after each traffic weight bakes (Pass / Fail / Inconclusive)."""

    error_rate_max: float = Field(gt=0, lt=1, description="a fraction between 0 and 1 "
                                  "(0.005 = 0.5 % of requests may fail)")
    p95_ms_max: dict[Geography, Millis] = Field(description="a table of p95 ceilings in "
                                                "milliseconds > 0, one per geography: apac, na, eu")
    replication_lag_seconds_max: float = Field(gt=0, description="a number of seconds > 0 of "
                                               "replica lag the gate tolerates")
    min_samples: int = Field(100, gt=0, description="a whole number > 0 of requests a geography "
                             "needs before its gate can pass (fewer is inconclusive)")
    baseline_slack_ms: float = Field(15.0, ge=0, description="a number of milliseconds ≥ 0 a geography's "
                                     "p95 may exceed its recorded baseline (`migrate baseline`) by")


FIELD_PATTERN = r"^[^.\s]+(\.[^.\s]+)*$"
FieldPattern = Annotated[str, Field(pattern=FIELD_PATTERN)]


class ShadowKeyedList(_Model):
    """One keyed list of a route's answers (app/shadow/lists.py says how it is compared)."""

    key: str = Field(min_length=1, description="the entry field naming an entry, e.g. \"player_id\"")
    version: str = Field(min_length=1, description="the entry field saying when its value was set "
                         "(ISO 8601 time or Unix seconds), e.g. \"achieved_at\"")
    order: str = Field("", description="the field the list is ranked by, \"-\" first when "
                       "descending, e.g. \"-sort_key\"")
    rank: str = Field("rank", description="the positional field (1..n), checked within each answer")
    limit_param: str = Field("limit", description="the query parameter capping the list's length")
    default_limit: int = Field(100, ge=1, description="the list's cap when the request names none")


class ShadowEndpoint(_Model):
    """A [shadow.endpoints."ROUTE"] table: how the answers of one route template are compared."""

    diff: bool = Field(True, description="false: mirrored for latency and errors only, answers not "
                       "compared (they differ between regions by design)")
    ignore_fields: list[FieldPattern] = Field(default_factory=list, description="an array of "
                                              "field patterns like \"age_seconds\" or "
                                              "\"entries.*.achieved_at\" this route's diff ignores")
    staleness_seconds: float = Field(0.0, ge=0, description="a number of seconds >= 0: the "
                                     "candidate may answer what the primary answered this recently "
                                     "(the data type's documented bound, e.g. a cache)")
    keyed_lists: dict[str, ShadowKeyedList] = Field(
        default_factory=dict, description="a table of top-level list fields compared per key, not per "
        "index, each entry's lag judged by its version against staleness_seconds, e.g. "
        "{ entries = { key = \"player_id\", version = \"achieved_at\", order = \"-sort_key\" } }")


class Shadow(_Model):
    """Shadow traffic: a sample of a geography's reads mirrored to the candidate region."""

    sample_rate: float = Field(gt=0, le=1, description="a fraction in (0, 1] of players "
                               "(keyed on player id) whose reads are mirrored")
    reads_only: bool = Field(True, description="true: writes are never mirrored")
    ignore_fields: list[FieldPattern] = Field(default_factory=list, description="an array of "
                                              "response field names (or dotted patterns) the diff "
                                              "ignores (timestamps, request ids)")
    max_diff_rate: float = Field(0.001, ge=0, le=1, description="a fraction in [0, 1] of "
                                 "mirrored reads allowed to differ before shift-traffic is refused")
    error_rate_max: float = Field(0.005, ge=0, le=1, description="a fraction in [0, 1] of "
                                  "mirrored requests the candidate may fail (5xx, timeouts)")
    min_samples: int = Field(200, gt=0, description="a whole number > 0 of compared answers "
                             "before the shadow gate can pass (fewer is inconclusive)")
    max_observe_bakes: int = Field(12, gt=0, description="a whole number > 0: observation gives "
                                   "up (inconclusive) after this many of the environment's "
                                   "bake_seconds without min_samples")
    recheck_seconds: float = Field(1.0, ge=0, description="a number of seconds >= 0 after which a "
                                   "differing answer is compared again (0: never)")
    endpoints: dict[str, ShadowEndpoint] = Field(default_factory=dict, description="a table per "
                                                 "route template, e.g. "
                                                 "[shadow.endpoints.\"/v1/leaderboard/global\"]")


# -- the file ----------------------------------------------------------------------------------

class SpecDocument(_Model):
    """migration.toml exactly as written (before cross-field checks and derived values)."""

    version: Literal[1] = Field(description="1 (the version of this file's format)")
    shift_schedule: list[Percent] = Field(description="an array of traffic percentages in "
                                          "(0, 100], strictly increasing, ending at 100")
    traffic_mix: dict[Geography, Share] = Field(description="the share of players in that "
                                                "geography, between 0 and 1; apac, na and eu "
                                                "add up to 1")
    regions: dict[RegionName, RegionBody] = Field(description="a [regions.NAME] table per region")
    environments: dict[EnvName, EnvironmentBody] = Field(description="an [environments.NAME] "
                                                         "table per environment")
    quarters: list[QuarterBody] = Field(description="[[quarters]] tables in time order")
    gates: Gates = Field(description="a [gates] table")
    shadow: Shadow = Field(description="a [shadow] table")


class Spec(BaseModel):
    """The validated plan spec. Frozen: the engine reads it, nothing changes it after load."""

    model_config = ConfigDict(frozen=True)

    path: Path  # the file it was loaded from, as given
    digest: str  # sha256 hex of the file's bytes; plans are stamped with it
    version: int
    source_region: str  # where the game runs today and the writer lives before cutover
    regions: dict[str, RegionSpec]  # in file order
    traffic_mix: dict[str, float]  # geography → share of players; sums to 1
    environments: dict[str, EnvironmentSpec]  # in file order
    quarters: list[QuarterSpec]  # in time order
    phases: list[PhaseEntry]  # the whole programme, in the order it runs
    shift_schedule: list[float]  # percent of a geography on the new region, step by step
    gates: Gates
    shadow: Shadow

    @property
    def programme(self) -> list[PhaseEntry]:
        """The same list as `phases`: every phase of the migration, in order."""
        return self.phases

    @property
    def target_regions(self) -> list[str]:
        """Target region names in the order the programme first reaches them (Tokyo first)."""
        seen = [e.region for e in self.phases if e.region is not None]
        targets = [r for r, spec in self.regions.items() if spec.role == "target"]
        return sorted(targets, key=lambda r: seen.index(r) if r in seen else len(seen))

    @property
    def writer_region(self) -> str:
        """The region holding the database writer before the migration (the source)."""
        return next(r for r, spec in self.regions.items() if spec.writer)

    @property
    def cutover_regions(self) -> list[str]:
        """The regions that become writers of the players they home, in programme order (Tokyo first)."""
        return [e.region for e in self.phases if e.phase == "cutover" and e.region is not None]

    def region(self, name: str) -> RegionSpec:
        """The region called `name`; UnknownRegion with the known names if there is none."""
        if name not in self.regions:
            raise UnknownRegion(f"unknown region '{name}'", where=str(self.path),
                                hint="pass --region " + suggest(name, list(self.regions),
                                                                 "regions"))
        return self.regions[name]

    def region_for_geography(self, geography: str) -> str | None:
        """The region that serves `geography` first (apac → ap-northeast-1), if any."""
        return next((r for r, spec in self.regions.items() if spec.geography == geography), None)

    def environment(self, name: str) -> EnvironmentSpec:
        """The environment called `name`; SpecError naming it and the known ones if there is none."""
        if name not in self.environments:
            known = list(self.environments)
            hint = f"pass --env one of {', '.join(known)}"
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            if close:
                hint = f"did you mean '{close[0]}'? {hint}"
            raise SpecError(f"unknown environment '{name}'", where=str(self.path), hint=hint,
                            details={"environment": name, "known": known})
        return self.environments[name]

    def shadow_in(self, env: EnvironmentSpec) -> Shadow:
        """[shadow] as it applies in `env`: its [environments.NAME.shadow] values win."""
        if env.shadow is None:
            return self.shadow
        return self.shadow.model_copy(update=env.shadow.model_dump(exclude_none=True))

    def phase_entries(self, phase: str | None = None, region: str | None = None) -> list[PhaseEntry]:
        """The programme's entries for `phase` and/or `region` (None = any), in order; may be empty."""
        return [e for e in self.phases
                if (phase is None or e.phase == phase) and (region is None or e.region == region)]


# -- loading -----------------------------------------------------------------------------------

def load_spec(path: Path | str = DEFAULT_SPEC_PATH) -> Spec:
    """Read, parse and validate the spec at `path`; SpecError (one line + hint) if anything is off."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"spec file {path} not found", where=str(path),
                        hint="run from the repo root or pass --spec PATH",
                        details={"file": str(path)}) from None
    except IsADirectoryError:
        raise SpecError(f"{path} is a directory, not a spec file", where=str(path),
                        hint="pass --spec the path of migration.toml itself",
                        details={"file": str(path)}) from None
    except OSError as exc:
        raise SpecError(f"cannot read spec file {path}: {exc.strerror or exc}", where=str(path),
                        hint="check the file's permissions, or pass --spec another file",
                        details={"file": str(path)}) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise_first([Problem((), f"the file is not UTF-8 (byte {exc.start})",
                             "save migration.toml as UTF-8", line)], path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise_first([syntax_problem(exc, text)], path)
    lines = key_lines(text)
    try:
        document = SpecDocument.model_validate(raw)
    except ValidationError as exc:
        raise_first(pydantic_problems(exc, SpecDocument, lines), path)
    problems = [Problem(loc, message, hint, line_of(lines, loc))
                for loc, message, hint in _cross_checks(document, lines)]
    if problems:
        raise_first(problems, path)
    return _build(document, path, hashlib.sha256(data).hexdigest())


def _build(doc: SpecDocument, path: Path, digest: str) -> Spec:
    regions = {name: RegionSpec(name=name, **dict(body)) for name, body in doc.regions.items()}
    environments = {}
    for name, body in doc.environments.items():
        fields = dict(body)
        if fields["state_url"] is None:  # only lab may leave it out (checked before)
            fields["state_url"] = DEFAULT_LAB_STATE_URL
        if body.kind == "lab" and fields["lab"] is None:
            fields["lab"] = LabSettings()
        environments[name] = EnvironmentSpec(name=name, **fields)
    quarters = [QuarterSpec(name=q.name, goal=q.goal,
                            phases=[PhaseEntry(phase=p.phase, region=p.region, quarter=q.name)
                                    for p in q.phases])
                for q in doc.quarters]
    source = next(name for name, r in regions.items() if r.role == "source")
    return Spec(path=path, digest=digest, version=doc.version, source_region=source,
                regions=regions, traffic_mix=dict(doc.traffic_mix), environments=environments,
                quarters=quarters, phases=[e for q in quarters for e in q.phases],
                shift_schedule=list(doc.shift_schedule), gates=doc.gates, shadow=doc.shadow)


# -- rules that span fields --------------------------------------------------------------------

Issue = tuple[Loc, str, str]  # (key path, message, hint)


def _cross_checks(doc: SpecDocument, lines: dict[Loc, int]) -> list[Issue]:
    issues = [*_check_regions(doc), *_check_mix(doc), *_check_schedule(doc),
              *_check_environments(doc), *_check_quarters(doc), *_check_gates(doc)]
    # The programme is checked against the regions' roles: with those wrong, every entry of the
    # misdeclared region would be reported too, burying the one real mistake.
    if not any(loc[0] == "regions" for loc, _, _ in issues):
        issues += _check_programme(doc, lines)
    return issues


def _check_regions(doc: SpecDocument) -> list[Issue]:
    issues: list[Issue] = []
    sources = [n for n, r in doc.regions.items() if r.role == "source"]
    writers = [n for n, r in doc.regions.items() if r.writer]
    if not sources:
        issues.append((("regions",), 'no region has role = "source"',
                       f'set role = "source" on {SOURCE_REGION}, where the game runs today'))
    elif len(sources) > 1:
        issues.append((("regions", sources[1], "role"),
                       f"more than one source region: {', '.join(sources)}",
                       f'exactly one region is the source ({SOURCE_REGION}); '
                       'set role = "target" on the others'))
    elif sources[0] != SOURCE_REGION:
        issues.append((("regions", sources[0], "role"),
                       f"{sources[0]} cannot be the source region",
                       f'the game runs today in {SOURCE_REGION} only: give it role = "source" '
                       f'and {sources[0]} role = "target"'))
    if not writers:
        issues.append((("regions",), "no region has writer = true",
                       f"set writer = true on the source region ({SOURCE_REGION}): it holds the "
                       "database writer until cutover moves it"))
    elif len(writers) > 1:
        issues.append((("regions", writers[1], "writer"),
                       f"more than one writer region: {', '.join(writers)}",
                       "exactly one region holds the writer before the migration (the source); "
                       "set writer = false on the others — cutover moves the writer later"))
    elif sources and writers[0] not in sources:
        issues.append((("regions", writers[0], "writer"),
                       f"writer region {writers[0]} is not the source region {sources[0]}",
                       f"set writer = true on {sources[0]} and false on {writers[0]}: before the "
                       "migration the source holds the writer; cutover moves it"))
    if not any(r.role == "target" for r in doc.regions.values()):
        issues.append((("regions",), "no target region",
                       'add [regions.ap-northeast-1] with role = "target"'))
    served: dict[str, str] = {}
    for name, region in doc.regions.items():
        if region.geography in served:
            issues.append((("regions", name, "geography"),
                           f"geography '{region.geography}' is already served first by "
                           f"{served[region.geography]}",
                           "each region serves one geography first: apac → ap-northeast-1, "
                           "na → us-east-1, eu → eu-central-1"))
        served.setdefault(region.geography, name)
    return issues


def _check_mix(doc: SpecDocument) -> list[Issue]:
    issues: list[Issue] = []
    missing = [g for g in GEOGRAPHIES if g not in doc.traffic_mix]
    if missing:
        issues.append((("traffic_mix",), f"traffic_mix lacks {', '.join(missing)}",
                       "give every geography its share of players: apac, na and eu "
                       "(e.g. 0.60, 0.25, 0.15)"))
    total = math.fsum(doc.traffic_mix.values())
    if abs(total - 1) > MIX_TOLERANCE:
        shares = " + ".join(f"{v:g}" for v in doc.traffic_mix.values())
        issues.append((("traffic_mix",), f"the shares sum to {total:g} ({shares}), not 1",
                       "the shares of apac, na and eu must add up to 1, e.g. 0.60 + 0.25 + 0.15"))
    return issues


def _check_schedule(doc: SpecDocument) -> list[Issue]:
    schedule = doc.shift_schedule
    fix = "weights rise strictly and end at 100, e.g. shift_schedule = [1, 5, 25, 50, 100]"
    if not schedule:
        return [(("shift_schedule",), "shift_schedule is empty", fix)]
    for index in range(1, len(schedule)):
        if schedule[index] <= schedule[index - 1]:
            return [(("shift_schedule", index),
                     f"{schedule[index]:g} % does not rise above the step before "
                     f"({schedule[index - 1]:g} %)", fix)]
    if schedule[-1] != 100:
        return [(("shift_schedule", len(schedule) - 1),
                 f"the schedule ends at {schedule[-1]:g} %, not 100 %",
                 "end shift_schedule with 100: shift-traffic finishes with the whole geography "
                 "on its new region")]
    return []


def _check_environments(doc: SpecDocument) -> list[Issue]:
    issues: list[Issue] = []
    if not doc.environments:
        issues.append((("environments",), "no environment defined",
                       'add [environments.lab] with kind = "lab"'))
    for name, env in doc.environments.items():
        base: Loc = ("environments", name)
        other = "lab" if env.kind == "aws" else "aws"
        if getattr(env, other) is not None:
            issues.append((base + (other,),
                           f'an [{other}] table belongs to kind = "{other}" environments only',
                           f'remove [environments.{name}.{other}] or set kind = "{other}"'))
        if env.kind == "aws" and env.aws is None:
            issues.append((base, 'kind = "aws" needs an [aws] table',
                           f'add [environments.{name}.aws] with profile and account_id'))
        if env.state_url is None and env.kind == "aws":
            issues.append((base, 'kind = "aws" needs a state_url',
                           'add state_url = "postgresql://migrate@HOST:5432/migrate" '
                           "(a store the whole team reaches; password from PGPASSWORD or ~/.pgpass)"))
        if env.state_url is not None:
            issues.extend(_check_state_url(base + ("state_url",), env.state_url))
        if env.heartbeat_seconds >= env.lock_ttl_seconds:
            issues.append((base + ("heartbeat_seconds",),
                           f"heartbeat_seconds ({env.heartbeat_seconds:g}) is not less than "
                           f"lock_ttl_seconds ({env.lock_ttl_seconds:g})",
                           "renew the lease well within its TTL: heartbeat_seconds about a third "
                           "of lock_ttl_seconds or less"))
        t = env.timings
        tbase = base + ("timings",)
        if t.poll_interval_seconds > t.bake_seconds:
            issues.append((tbase + ("poll_interval_seconds",),
                           f"poll_interval_seconds ({t.poll_interval_seconds:g}) is longer than "
                           f"bake_seconds ({t.bake_seconds:g})",
                           "poll at least once per bake: make poll_interval_seconds <= bake_seconds"))
        if t.catch_up_timeout_seconds > t.step_timeout_seconds:
            issues.append((tbase + ("catch_up_timeout_seconds",),
                           f"catch_up_timeout_seconds ({t.catch_up_timeout_seconds:g}) is longer "
                           f"than step_timeout_seconds ({t.step_timeout_seconds:g})",
                           "the catch-up wait runs inside one step: make step_timeout_seconds "
                           ">= catch_up_timeout_seconds"))
    return issues


def _check_state_url(loc: Loc, url: str) -> list[Issue]:
    parts = urlsplit(url)
    if parts.scheme not in ("sqlite", "postgresql", "postgres"):
        return [(loc, f"unsupported state_url scheme '{parts.scheme or url}'",
                 "use sqlite:///PATH (one operator) or postgresql://USER@HOST:PORT/DB (a team)")]
    if parts.scheme == "sqlite" and not url.startswith("sqlite:///"):
        return [(loc, f"state_url {url!r} is not a sqlite:///PATH URL",
                 f"use {DEFAULT_LAB_STATE_URL} (three slashes, then a path)")]
    if parts.password:
        return [(loc, "the URL contains a password",
                 "remove it: secrets never go in migration.toml; set PGPASSWORD or use ~/.pgpass")]
    return []


def _check_quarters(doc: SpecDocument) -> list[Issue]:
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    previous = None
    for index, quarter in enumerate(doc.quarters):
        loc: Loc = ("quarters", index, "name")
        if quarter.name in seen:
            issues.append((loc, f"quarter {quarter.name} appears twice",
                           f"merge it into quarters[{seen[quarter.name]}]: one [[quarters]] "
                           "block per quarter"))
        elif previous is not None and quarter.name < previous:
            issues.append((loc, f"quarter {quarter.name} comes after {previous}",
                           "list [[quarters]] in time order"))
        seen.setdefault(quarter.name, index)
        previous = max(previous or quarter.name, quarter.name)
    return issues


def _check_programme(doc: SpecDocument, lines: dict[Loc, int]) -> list[Issue]:
    issues: list[Issue] = []
    targets = [n for n, r in doc.regions.items() if r.role == "target"]
    target_text = ", ".join(targets) or "none declared"
    flat = [(("quarters", qi, "phases", pi), item)
            for qi, quarter in enumerate(doc.quarters) for pi, item in enumerate(quarter.phases)]
    position: dict[tuple[str, str | None], int] = {}
    where: dict[tuple[str, str | None], Loc] = {}
    by_phase: dict[str, list[int]] = {}

    def at(key: tuple[str, str | None]) -> str:
        line = line_of(lines, where[key])
        return dotted(where[key]) + (f" (line {line})" if line else "")

    def label(phase: str, region: str | None) -> str:
        return phase if region is None else f"{phase} for {region}"

    for index, (loc, item) in enumerate(flat):
        phase, region = item.phase, item.region
        if phase in GLOBAL_PHASES:
            if region is not None:
                issues.append((loc + ("region",), f"{phase} is global and takes no region",
                               f"remove region = \"{region}\" from this entry: the schema is one "
                               "for all regions"))
                region = None
        elif region is None:
            issues.append((loc, f"{phase} needs a region",
                           f'add region = "{targets[0] if targets else "ap-northeast-1"}" '
                           f"(target regions: {target_text})"))
            continue
        elif region not in doc.regions:
            issues.append((loc + ("region",), f"region '{region}' is not declared under [regions]",
                           f"use one of the target regions ({target_text}) or add "
                           f"[regions.{region}]"))
        elif doc.regions[region].role != "target":
            issues.append((loc + ("region",), f"{phase} cannot run on the source region {region}",
                           f"phases run on target regions: {target_text}"))
        key = (phase, region)
        if key in position:
            issues.append((loc, f"duplicate entry: {label(*key)} is already at {at(key)}",
                           "remove one of them: each phase runs once per region"))
            continue
        position[key], where[key] = index, loc
        by_phase.setdefault(phase, []).append(index)

    for phase in GLOBAL_PHASES:
        if len(by_phase.get(phase, [])) > 1:
            first, second = by_phase[phase][:2]
            issues.append((flat[second][0], f"{phase} appears more than once "
                           f"(also at {dotted(flat[first][0])}, line {line_of(lines, flat[first][0])})",
                           "it runs once for the whole migration"))

    if issues:  # a wrong entry would also show up as a missing phase or a wrong order: stop here
        return issues
    # Every target region ends as the writer of the players it homes (DESIGN §2): each has its cutover.
    missing = [(p, t) for t in targets for p in (*REGIONAL_PHASES, "cutover") if (p, t) not in position]
    missing += [(p, None) for p in GLOBAL_PHASES if p not in by_phase]
    for phase, region in missing:
        example = f'{{phase = "{phase}"' + (f', region = "{region}"}}' if region else "}")
        issues.append((("quarters",), f"the programme lacks {label(phase, region)}",
                       f"add {example} to a quarter: every target region goes through "
                       f"{', '.join(REGIONAL_PHASES)} and cutover; expand-schema and "
                       "contract-schema run once"))

    for region in targets:
        for later_index, later in enumerate(REGIONAL_PHASES):
            for earlier in REGIONAL_PHASES[:later_index]:
                a, b = (earlier, region), (later, region)
                if a in position and b in position and position[b] < position[a]:
                    issues.append((where[b], f"{later} for {region} comes before {earlier}",
                                   f"move it after {at(a)}: a region goes "
                                   + " → ".join(REGIONAL_PHASES)))
    expand, contract = ("expand-schema", None), ("contract-schema", None)
    if expand in position and contract in position and position[contract] < position[expand]:
        issues.append((where[contract], "contract-schema comes before expand-schema",
                       f"move it after {at(expand)}: contract removes what expand made redundant, "
                       "and it is the point of no return"))
    contract_first = contract in position and expand in position and position[contract] < position[expand]
    for cutover in sorted((k for k in position if k[0] == "cutover"), key=position.get):
        region = cutover[1]
        needs = [(("attach-secondary", region), "the writer can only move to a region that holds a "
                  "caught-up replica"),
                 (("shift-traffic", region), f"{region}'s own players must be served there before its "
                  "writes move (their writes would cross the ocean twice)"),
                 (expand, "the fence, the home epoch and the replica identity the cutover relies on "
                  "come from expand-schema")]
        for before, why in needs:
            if before in position and position[cutover] < position[before]:
                issues.append((where[cutover], f"cutover to {region} comes before {label(*before)}",
                               f"move it after {at(before)}: {why}"))
                break
        if contract in position and position[contract] < position[cutover] and not contract_first:
            issues.append((where[contract], f"contract-schema comes before cutover to {region}",
                           f"move it after {at(cutover)}: contract deletes the rows each shard no "
                           "longer owns, once every cutover has soaked"))
    return issues


def _check_gates(doc: SpecDocument) -> list[Issue]:
    issues: list[Issue] = []
    missing = [g for g in GEOGRAPHIES if g not in doc.gates.p95_ms_max]
    if missing:
        issues.append((("gates", "p95_ms_max"), f"p95_ms_max lacks {', '.join(missing)}",
                       "give every geography a p95 ceiling in ms: apac, na and eu"))
    for route in doc.shadow.endpoints:
        if not route.startswith("/"):
            issues.append((("shadow", "endpoints", route), f"'{route}' is not a route template",
                           'name the route as the app declares it, starting with "/", e.g. '
                           '[shadow.endpoints."/v1/players/{player_id}"]'))
    if not doc.shadow.reads_only:
        issues.append((("shadow", "reads_only"), "reads_only = false is not supported",
                       "set reads_only = true: a mirrored write would be applied twice "
                       "to a live game"))
    return issues
