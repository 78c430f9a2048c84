"""Phase stand-up-region: the region's foundation, Redis, assets bucket, API at zero traffic, a
Route 53 health check and a weight-0 record — everything a region needs before it meets players.

On AWS the foundation is the Terraform root `terraform/regions/<region>`; in the lab, processes.
S3 and Route 53 go through the same boto3 adapter in both (the lab's peer is a moto server)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from migrate.phasekit.checks import geography_routing
from migrate.phasekit.model import Check, CheckResult, Phase, StepContext, Target
from migrate.phasekit.players_gate import WatchPlayers
from migrate.errors import VerifyFailed
from migrate.providers.terraform_commands import destroy_command, terraform_commands


def _p(target: Target):
    return target.providers


def _geography(target: Target) -> str:
    return target.spec.regions[target.region].geography


def _pool(target: Target):
    """The Route 53 adapter bound to the region's geography pool (its players' name; see aws/dns.py)."""
    return _p(target).dns.pool(_geography(target))


def _per_env(target: Target, lab: str, aws: str) -> str:
    return aws if target.env.kind == "aws" else lab


@dataclass(frozen=True)
class RegionInfra:
    id: str = "region-infra"
    title: str = "Apply the region's foundation"

    def describe(self, target: Target) -> list[str]:
        if target.env.kind == "aws":
            return [" ".join(shlex.quote(a) for a in cmd) for cmd in terraform_commands(target.region, False)]
        return [f"prepare {target.region}'s folders and ports in the lab"]

    def describe_undo(self, target: Target) -> list[str]:
        if target.env.kind == "aws":
            return [" ".join(destroy_command(target.region))]
        return [f"remove {target.region}'s lab folders"]

    def rehearse(self, target: Target) -> list[str]:
        return _p(target).infrastructure.rehearse(target.region, lambda: None)

    def apply(self, ctx: StepContext) -> dict:
        out = _p(ctx.target).infrastructure.apply(ctx.target.region, ctx.progress, ctx.checkpoint)
        ctx.checkpoint()  # applied but not journaled: a real crash point
        return out

    def verify(self, ctx: StepContext) -> None:
        pass  # apply fails unless terraform/the lab reported success

    def undo(self, ctx: StepContext) -> None:
        _p(ctx.target).infrastructure.destroy(ctx.target.region, ctx.checkpoint)


@dataclass(frozen=True)
class Cache:
    id: str = "cache"
    title: str = "Start the region's Redis"

    def describe(self, target: Target) -> list[str]:
        return [_per_env(target, f"start a Redis server for {target.region}",
                         f"ensure the region's ElastiCache replication group (from the Terraform root) is available")]

    def describe_undo(self, target: Target) -> list[str]:
        return [_per_env(target, "stop it and remove its data", "delete the replication group")]

    def apply(self, ctx: StepContext) -> dict:
        out = _p(ctx.target).runtime.ensure_cache(ctx.target.region)
        ctx.checkpoint()
        return out

    def verify(self, ctx: StepContext) -> None:
        if not _p(ctx.target).runtime.cache_ready(ctx.target.region):
            raise VerifyFailed(f"{ctx.target.region}'s Redis does not answer")

    def undo(self, ctx: StepContext) -> None:
        _p(ctx.target).runtime.remove_cache(ctx.target.region)


@dataclass(frozen=True)
class AssetsBucket:
    id: str = "assets-bucket"
    title: str = "Create the assets bucket, replicated from the source bucket"

    def describe(self, target: Target) -> list[str]:
        return [f"s3:CreateBucket the {target.region} assets bucket if absent (versioned, private)",
                f"s3:PutBucketReplication on the {target.spec.source_region} assets bucket: merge in the rule "
                f"replicating to {target.region} (other regions' rules kept)"]

    def describe_undo(self, target: Target) -> list[str]:
        return [f"remove the {target.region} rule from the source bucket's replication",
                f"empty (every version) and delete the {target.region} assets bucket"]

    def apply(self, ctx: StepContext) -> dict:
        store, region = _p(ctx.target).object_store, ctx.target.region
        out = dict(store.ensure_bucket(region))
        ctx.checkpoint()
        out.update(store.ensure_replication(ctx.target.spec.source_region, region))
        return out

    def verify(self, ctx: StepContext) -> None:
        store, region = _p(ctx.target).object_store, ctx.target.region
        if not store.bucket_exists(region):
            raise VerifyFailed(f"bucket {store.bucket_name(region)} missing")
        if region not in store.replication_regions(ctx.target.spec.source_region):
            raise VerifyFailed(f"the source bucket does not replicate to {region}")

    def undo(self, ctx: StepContext) -> None:
        store, region = _p(ctx.target).object_store, ctx.target.region
        store.remove_replication(ctx.target.spec.source_region, region)
        store.delete_bucket(region)


@dataclass(frozen=True)
class DeployApi:
    id: str = "deploy-api"
    title: str = "Deploy the API at zero traffic"

    def describe(self, target: Target) -> list[str]:
        return [_per_env(target,
                         f"start the app for {target.region} (reads through the WAN from the writer until its "
                         f"secondary is attached; writes to the writer)",
                         f"ecs:CreateService/UpdateService of the region's API service (task definition from "
                         f"the Terraform root), wait until stable; no DNS weight yet")]

    def describe_undo(self, target: Target) -> list[str]:
        return [_per_env(target, "stop the app", "ecs:DeleteService of the region's API service")]

    def apply(self, ctx: StepContext) -> dict:
        ep = _p(ctx.target).runtime.deploy_api(ctx.target.region)
        ctx.checkpoint()
        return {"host": ep.host, "port": ep.port, "url": ep.url}

    def verify(self, ctx: StepContext) -> None:
        health = _p(ctx.target).runtime.api_health(ctx.target.region)
        if not health.ok:
            raise VerifyFailed(f"{ctx.target.region}'s API is not healthy: {health.detail}")

    def undo(self, ctx: StepContext) -> None:
        _p(ctx.target).runtime.remove_api(ctx.target.region)


@dataclass(frozen=True)
class HealthCheck:
    id: str = "health-check"
    title: str = "Create the Route 53 health check"

    def describe(self, target: Target) -> list[str]:
        return [f"route53:CreateHealthCheck on {target.region}'s API /health "
                + _per_env(target, "(HTTP, the app's port)", "(HTTPS on the ALB)")]

    def describe_undo(self, target: Target) -> list[str]:
        return ["route53:DeleteHealthCheck"]

    def apply(self, ctx: StepContext) -> dict:
        ep = _p(ctx.target).runtime.api_endpoint(ctx.target.region)
        if ep is None:
            raise VerifyFailed(f"{ctx.target.region}'s API is not deployed")
        health_check_id = _p(ctx.target).dns.ensure_health_check(ctx.target.region, ep)
        ctx.checkpoint()
        return {"health_check_id": health_check_id}

    def verify(self, ctx: StepContext) -> None:
        if _p(ctx.target).dns.health_check_id(ctx.target.region) is None:
            raise VerifyFailed(f"no health check for {ctx.target.region}")

    def undo(self, ctx: StepContext) -> None:
        _p(ctx.target).dns.delete_health_check(ctx.target.region)


@dataclass(frozen=True)
class GeographyRouting:
    id: str = "geography-routing"
    title: str = "Route api.game.example per player geography (once; no player changes region)"

    def describe(self, target: Target) -> list[str]:
        source = target.spec.source_region
        return [("when api.game.example is not yet scoped by geography: for each geography a pool "
                 f"<geography>.api.game.example with {source}-<geography>-weighted weight 100 (the target the "
                 "flat record has), then ONE route53:ChangeResourceRecordSets batch that deletes the flat records "
                 "and creates the geolocation records geo-apac (AS), geo-eu (EU), geo-na (default *); wait INSYNC"),
                f"every pool answers with {source}, so no player changes region; already scoped: nothing to do"]

    def describe_undo(self, target: Target) -> list[str]:
        return ["nothing: the geography routing stays (every pool without this region routes as the flat record did)"]

    def apply(self, ctx: StepContext) -> dict:
        t = ctx.target
        source = t.spec.source_region
        endpoint = _p(t).runtime.api_endpoint(source)
        homes = {name: region.geography for name, region in t.spec.regions.items()}
        out = _p(t).dns.ensure_geography_front(source, homes, {source: endpoint} if endpoint else {})
        ctx.checkpoint()
        return out

    def verify(self, ctx: StepContext) -> None:
        check = geography_routing(ctx.target)
        if not check.ok:
            raise VerifyFailed(check.detail)

    def undo(self, ctx: StepContext) -> None:
        ctx.checkpoint()  # the front stays on purpose (see describe_undo); nothing to take back


@dataclass(frozen=True)
class DnsWeightZero:
    id: str = "dns-weight-0"
    title: str = "Add the region's weight-0 record to its geography's pool of api.game.example"

    def describe(self, target: Target) -> list[str]:
        geo = _geography(target)
        return [f"route53:ChangeResourceRecordSets UPSERT {geo}.api.game.example (the {geo} players' pool) weighted "
                + _per_env(target, f"CNAME {target.region}.lb.game.example", "ALIAS to the region's ALB")
                + f", SetIdentifier {target.region}-{geo}-weighted, weight 0, with its health check; wait INSYNC"]

    def describe_undo(self, target: Target) -> list[str]:
        return [f"DELETE the {target.region}-{_geography(target)}-weighted record"]

    def apply(self, ctx: StepContext) -> dict:
        ep = _p(ctx.target).runtime.api_endpoint(ctx.target.region)
        out = _pool(ctx.target).set_weight(ctx.target.region, 0, ep)
        ctx.checkpoint()
        return out

    def verify(self, ctx: StepContext) -> None:
        weights = _pool(ctx.target).weights()
        if weights.get(ctx.target.region) != 0:
            raise VerifyFailed(f"{ctx.target.region}'s weighted record is {weights.get(ctx.target.region)}, expected 0")

    def undo(self, ctx: StepContext) -> None:
        _pool(ctx.target).delete_weighted(ctx.target.region)


# --- checks -------------------------------------------------------------------------------------
def _source_healthy(t: Target) -> CheckResult:
    h = _p(t).runtime.api_health(t.spec.source_region)
    return CheckResult("source-healthy", h.ok, f"{t.spec.source_region} API: {h.detail}",
                       "fix the source region first: never stand up a region while the game is unhealthy")


def _image(t: Target) -> CheckResult:
    ok, detail = _p(t).runtime.image_available()
    return CheckResult("api-image-exists", ok, detail, "build and push the API image first")


def _infra_checks(t: Target) -> list[CheckResult]:
    return [CheckResult(name, ok, detail, "see the detail") for name, ok, detail in
            _p(t).infrastructure.preflight(t.region)]


def _infra(t: Target) -> CheckResult:
    failed = [r for r in _infra_checks(t) if not r.ok]
    if failed:
        return CheckResult("foundation-ready", False, f"{failed[0].check_id}: {failed[0].detail}",
                           "install what is missing (e.g. terraform on PATH) or free the names")
    return CheckResult("foundation-ready", True, "tools present, names free")


def _names_free(t: Target) -> CheckResult:
    store = _p(t).object_store
    ours = t.state.step("assets-bucket").touched
    exists = store.bucket_exists(t.region)
    return CheckResult("names-free", not exists or ours,
                       f"bucket {store.bucket_name(t.region)} "
                       + ("absent" if not exists else "made by this phase" if ours else "already exists"),
                       "the bucket belongs to something else: pick other names or remove it")


def _healthy_through_wan(t: Target) -> CheckResult:
    h = _p(t).runtime.api_health(t.region, through_geography=_geography(t))
    return CheckResult("api-healthy-through-wan", h.ok,
                       f"{t.region} /health from {_geography(t)} players: {h.detail}", "see the app's log")


def _weight_zero(t: Target) -> CheckResult:
    w = _pool(t).weights().get(t.region)
    return CheckResult("weight-zero", w == 0, f"{t.region} weight {w} in the {_geography(t)} pool", "re-run the phase")


def _replicated(t: Target) -> CheckResult:
    regions = _p(t).object_store.replication_regions(t.spec.source_region)
    return CheckResult("assets-replicated", t.region in regions,
                       f"source bucket replicates to {', '.join(regions) or 'nothing'}", "re-run")


class StandUpRegion:
    """stand-up-region: everything the region needs, at zero traffic."""

    name = "stand-up-region"
    summary = "Stand up the region's foundation, Redis, assets bucket, API at 0 traffic, health check, weight-0 record"
    built = True
    regional = True
    point_of_no_return = None
    runbook = "runbooks/stand-up-region.md"

    def preflight(self, target: Target) -> list[Check]:
        return [
            Check("source-healthy", "the source region's API is healthy", "fix the source first", _source_healthy),
            Check("api-image-exists", "the API build to deploy exists", "build it", _image),
            Check("foundation-ready", "tools present (terraform on AWS), quotas and CIDR free",
                  "install / free", _infra),
            Check("names-free", "the region's bucket name is free", "remove or rename", _names_free),
        ]

    def steps(self, target: Target):
        return [RegionInfra(), Cache(), AssetsBucket(), DeployApi(), HealthCheck(), GeographyRouting(),
                DnsWeightZero(), WatchPlayers(lag=False)]

    def verify(self, target: Target) -> list[Check]:
        return [
            Check("api-healthy-through-wan", "the API answers /health through the players' link",
                  "see the app log", _healthy_through_wan),
            Check("weight-zero", "the weighted record exists with weight 0", "re-run", _weight_zero),
            Check("assets-replicated", "the source bucket replicates to the region", "re-run", _replicated),
        ]

    def rollback_summary(self, target: Target) -> list[str]:
        return ["delete the weighted record", "delete the health check", "remove the API",
                "remove the replication rule and the bucket", "remove Redis", "destroy the foundation"]


PHASE: Phase = StandUpRegion()
