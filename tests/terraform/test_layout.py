"""What the rest of the project relies on in the Terraform: the roots' backend, providers and
outputs (read by `migrate`), the module's naming contract (Route 53 set identifiers) and its
handling of secrets. Structural checks on the parsed HCL; no provider or network needed."""

from __future__ import annotations

import hcl2
import pytest

from tests.terraform.conftest import MODULE, REGION_ROOTS, refcheck

OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)

# Outputs the orchestrator consumes after `terraform apply` (terraform output -json).
CONSUMED_OUTPUTS = {
    "alb_dns_name", "api_service_name", "ecs_cluster_name",
    "aurora_cluster_id", "aurora_cluster_arn", "aurora_cluster_endpoint", "aurora_reader_endpoint",
    "redis_replication_group_id", "redis_primary_endpoint",
    "assets_bucket_name", "cloudfront_domain_name", "cloudfront_distribution_id",
    "health_check_id", "api_record_name", "weighted_set_identifier", "pool_record_name",
    "latency_set_identifier", "alarm_names",
}

MODULE_FILES = {"network.tf", "alb.tf", "ecs.tf", "aurora.tf", "redis.tf", "s3.tf", "cloudfront.tf", "kms.tf",
                "iam.tf", "security_groups.tf", "alarms.tf", "dns.tf", "variables.tf", "outputs.tf",
                "versions.tf"}


def _load(path) -> dict:
    return hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=OPTIONS)


def _blocks(document: dict, kind: str) -> list[tuple[str, dict]]:
    return [(name, body) for entry in document.get(kind, []) for name, body in entry.items()]


def _module_blocks(kind: str) -> dict[str, dict]:
    """{label: body} of every `kind` block (variable, output, ...) across the module's files."""
    found = {}
    for path in MODULE.glob("*.tf"):
        found.update(dict(_blocks(_load(path), kind)))
    return found


def test_module_is_split_into_the_agreed_files():
    assert MODULE_FILES <= {p.name for p in MODULE.glob("*.tf")}


@pytest.mark.parametrize("region", sorted(REGION_ROOTS))
def test_root_backend_is_s3_with_native_locking_per_region(region):
    terraform = _load(REGION_ROOTS[region] / "main.tf")["terraform"][0]
    backend = dict(_blocks(terraform, "backend"))["s3"]
    assert backend["use_lockfile"] is True
    assert backend["encrypt"] is True
    assert region in backend["key"] and region in backend["bucket"]
    assert backend["region"] == region
    assert "dynamodb_table" not in backend


@pytest.mark.parametrize("region", sorted(REGION_ROOTS))
def test_root_has_default_and_source_providers_and_passes_both(region):
    main = _load(REGION_ROOTS[region] / "main.tf")
    providers = _blocks(main, "provider")
    aliases = sorted(body.get("alias", "(default)") for name, body in providers if name == "aws")
    assert aliases == ["(default)", "source"]
    calls = dict(_blocks(main, "module"))
    assert list(calls) == ["region"], "a root is one module call, nothing else"
    assert calls["region"]["source"] == "../../modules/region"
    assert set(calls["region"]["providers"]) == {"aws", "${aws.source}"}
    assert not main.get("resource") and not main.get("data"), "keep the roots thin"


@pytest.mark.parametrize("region", sorted(REGION_ROOTS))
def test_root_outputs_cover_what_migrate_consumes(region):
    outputs = refcheck.load_module(REGION_ROOTS[region]).outputs
    assert CONSUMED_OUTPUTS <= set(outputs), f"missing: {sorted(CONSUMED_OUTPUTS - set(outputs))}"


def test_roots_differ_only_in_values():
    tokyo, frankfurt = (refcheck.load_module(REGION_ROOTS[r]) for r in ("ap-northeast-1", "eu-central-1"))
    assert set(tokyo.variables) == set(frankfurt.variables)
    assert set(tokyo.outputs) == set(frankfurt.outputs)


@pytest.mark.parametrize("region", sorted(REGION_ROOTS))
def test_root_variable_defaults_belong_to_the_region(region):
    variables = dict(_blocks(_load(REGION_ROOTS[region] / "variables.tf"), "variable"))
    assert variables["region"]["default"] == region
    assert variables["api_weight"]["default"] == 0
    short = variables["region_short_name"]["default"]
    assert all(zone.startswith(f"{short}-az") for zone in variables["availability_zone_ids"]["default"])
    for name in ("assets_bucket_name", "log_bucket_name"):
        assert variables[name]["default"].endswith(region)


@pytest.mark.parametrize("name", ["api_weight", "vpc_cidr", "aurora_engine_version", "region", "source_region",
                                  "availability_zone_ids", "peer_replicas"])
@pytest.mark.parametrize("region", sorted(REGION_ROOTS))
def test_root_variables_that_matter_are_validated(region, name):
    variables = dict(_blocks(_load(REGION_ROOTS[region] / "variables.tf"), "variable"))
    assert variables[name].get("validation"), f"variable {name} of {region} has no validation block"


def _module_resources(kind: str) -> dict[str, dict]:
    """{name: body} of every resource of type `kind` across the module's files."""
    found = {}
    for path in MODULE.glob("*.tf"):
        for entry in _load(path).get("resource", []):
            found.update(entry.get(kind, {}))
    return found


def test_route53_weighted_record_lives_in_its_geography_pool_with_unique_set_identifiers():
    locals_ = {}
    for path in MODULE.glob("*.tf"):
        for entry in _load(path).get("locals", []):
            locals_.update(entry)
    # the same names migrate/providers/aws/dns.py uses, unique zone-wide (moto deletes by identifier alone)
    assert locals_["pool_record_name"] == "${var.geography}.${var.api_record_name}"
    assert locals_["weighted_set_identifier"] == "${local.region}-${var.geography}-weighted"
    assert locals_["latency_set_identifier"] == "${local.region}-${var.geography}-latency"

    records = _module_resources("aws_route53_record")
    weighted = records["api_weighted"]
    assert "api_latency" not in records  # the pool's latency records are shift-traffic's end state, not Terraform's
    assert weighted["name"] == "${local.pool_record_name}"
    assert weighted["set_identifier"] == "${local.weighted_set_identifier}"
    assert weighted["weighted_routing_policy"][0]["weight"] == "${var.api_weight}"
    assert weighted["health_check_id"] == "${aws_route53_health_check.api.id}"
    assert weighted["alias"][0]["evaluate_target_health"] is True


def test_weighted_record_weight_defaults_to_zero_in_the_module():
    variables = _module_blocks("variable")
    assert variables["api_weight"]["default"] == 0


@pytest.mark.parametrize("root", [MODULE, *REGION_ROOTS.values()], ids=["module", *REGION_ROOTS])
def test_redis_auth_token_is_a_sensitive_variable_without_default(root):
    variables = {}
    for path in root.glob("*.tf"):
        variables.update(dict(_blocks(_load(path), "variable")))
    token = variables["redis_auth_token"]
    assert token.get("sensitive") is True
    assert "default" not in token


def test_no_secret_is_ever_an_output():
    for root in (MODULE, *REGION_ROOTS.values()):
        outputs = refcheck.load_module(root).outputs
        assert not [name for name in outputs if any(w in name for w in ("token", "password", "secret"))]


def test_aurora_secondary_joins_the_global_cluster_with_the_pinned_version():
    secondary = _module_resources("aws_rds_cluster")["secondary"]
    assert secondary["global_cluster_identifier"] == "${var.global_cluster_identifier}"
    assert secondary["engine_version"] == "${var.aurora_engine_version}"
    assert secondary["engine"] == "aurora-postgresql"
    assert secondary["storage_encrypted"] is True


def test_source_bucket_replication_uses_the_source_provider():
    replication = _module_resources("aws_s3_bucket_replication_configuration")["source"]
    assert replication["provider"] == "${aws.source}"
    assert replication["bucket"] == "${var.source_bucket_name}"
    assert replication["role"] == "${aws_iam_role.replication.arn}"


def test_security_groups_open_only_what_the_api_needs():
    ingress = _module_resources("aws_vpc_security_group_ingress_rule")
    opened = sorted((body["security_group_id"], body["from_port"], body.get("cidr_ipv4") or
                     body.get("referenced_security_group_id")) for body in ingress.values())
    assert opened == [
        ("${aws_security_group.alb.id}", 443, "0.0.0.0/0"),
        ("${aws_security_group.aurora.id}", 5432, "${aws_security_group.tasks.id}"),
        ("${aws_security_group.redis.id}", 6379, "${aws_security_group.tasks.id}"),
        ("${aws_security_group.tasks.id}", "${var.api_container_port}", "${aws_security_group.alb.id}"),
    ]
    assert not _module_resources("aws_security_group_rule"), "rules live in the dedicated rule resources"


def test_alarms_watch_replication_lag_5xx_rate_and_p95():
    alarms = _module_resources("aws_cloudwatch_metric_alarm")
    assert alarms["aurora_replication_lag"]["metric_name"] == "AuroraGlobalDBReplicationLag"
    assert alarms["api_p95_latency"]["extended_statistic"] == "p95"
    queries = {q["id"]: q for q in alarms["api_5xx_rate"]["metric_query"]}
    assert {"requests", "elb5xx", "target5xx", "rate"} <= set(queries)


def _resources() -> dict[tuple[str, str], dict]:
    """(type, name) → body of every resource of the module, across its files."""
    found = {}
    for path in MODULE.glob("*.tf"):
        for kind, named in _blocks(_load(path), "resource"):
            found.update({(kind, name): body for name, body in named.items()})
    return found


def test_every_future_shard_writer_has_logical_decoding_set_ahead_of_its_cutover():
    group = _resources()[("aws_rds_cluster_parameter_group", "aurora")]
    parameters = {p["name"]: p for p in group["parameter"]}
    assert parameters["rds.logical_replication"]["value"] == "1"
    assert parameters["rds.logical_replication"]["apply_method"] == "pending-reboot"  # restart-only


def test_the_home_shard_end_state_is_described_and_adopted_from_the_cutover_by_an_import_block():
    resources = _resources()
    home = resources[("aws_rds_global_cluster", "home")]
    assert home["source_db_cluster_identifier"] == "${aws_rds_cluster.secondary.arn}"
    secondaries = resources[("aws_rds_cluster", "home_shard_secondary")]
    assert secondaries["for_each"] == "${var.home_shard_secondaries}" and secondaries["storage_encrypted"] is True
    # the region's own cluster never fights the cutover that moves it to a global cluster of its own
    assert "global_cluster_identifier" in str(resources[("aws_rds_cluster", "secondary")]["lifecycle"])
    for region, root in REGION_ROOTS.items():
        imports = _load(root / "home_shard.tf")["import"]
        assert len(imports) == 1 and imports[0]["to"] == "${module.region.aws_rds_global_cluster.home[each.key]}"
        assert imports[0]["for_each"] == home["for_each"]  # the same key the module's resource uses
        main = dict(_blocks(_load(root / "main.tf"), "module"))["region"]
        assert main["home_shard"] == "${var.home_shard}"
        assert main["home_shard_secondaries"] == "${var.home_shard_secondaries}"


def test_tasks_poll_the_home_writers_map_each_second_with_parameter_stores_higher_throughput():
    resources = _resources()
    environment = str(resources[("aws_ecs_task_definition", "api")]) + str(_module_blocks("locals"))
    assert "WRITERS_PARAMETER" in environment and "/home-writers" in environment
    assert "WRITERS_POLL_SECONDS" in environment
    setting = resources[("aws_ssm_service_setting", "parameter_store_high_throughput")]
    assert setting["setting_id"].endswith("servicesetting/ssm/parameter-store/high-throughput-enabled")
    assert setting["setting_value"] == "true"
