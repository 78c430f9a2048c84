"""S3ObjectStore against a real moto server: buckets, the merge of replication rules into the source bucket's
single configuration, and deleting a versioned bucket."""

from __future__ import annotations

import pytest

from migrate.errors import ProviderError
from migrate.providers.aws.object_store import S3ObjectStore, _as_v2, from_spec
from migrate.providers.protocols import ObjectStore

from .conftest import SOURCE, TOKYO, StubbedClients

FRANKFURT = "eu-central-1"
ROLE = "arn:aws:iam::123456789012:role/s3-replication"


@pytest.fixture
def store(moto, moto_clients):
    return S3ObjectStore(moto_clients, endpoint_url=moto, replication_role_arn=ROLE)


@pytest.fixture
def source_bucket(aws):
    """The source world's bucket, as `lab up` makes it: unversioned, with an object."""
    aws("s3").create_bucket(Bucket="game-assets-us-east-1")
    aws("s3").put_object(Bucket="game-assets-us-east-1", Key="manifest.json", Body=b"{}")
    return "game-assets-us-east-1"


def rules(aws, bucket="game-assets-us-east-1"):
    return aws("s3").get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]["Rules"]


def test_adapter_satisfies_the_protocol(store):
    s: ObjectStore = store
    assert s.bucket_name(TOKYO) == "game-assets-ap-northeast-1"


def test_ensure_bucket_is_idempotent_versioned_and_private(store, aws):
    assert not store.bucket_exists(TOKYO)
    out = store.ensure_bucket(TOKYO)
    assert out["bucket"] == "game-assets-ap-northeast-1" and out["created"]
    assert store.ensure_bucket(TOKYO)["created"] is False
    assert store.bucket_exists(TOKYO)
    s3 = aws("s3", TOKYO)
    assert s3.get_bucket_location(Bucket=out["bucket"])["LocationConstraint"] == TOKYO
    assert s3.get_bucket_versioning(Bucket=out["bucket"])["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=out["bucket"])["PublicAccessBlockConfiguration"]
    assert all(block.values())


def test_replication_merges_and_keeps_other_regions_rules(store, source_bucket, aws):
    store.ensure_bucket(TOKYO)
    store.ensure_bucket(FRANKFURT)
    out = store.ensure_replication(SOURCE, TOKYO)
    assert out["replication_rule"] == "to-ap-northeast-1"
    # Replication needs versioning on the source too.
    assert aws("s3").get_bucket_versioning(Bucket=source_bucket)["Status"] == "Enabled"
    store.ensure_replication(SOURCE, FRANKFURT)
    store.ensure_replication(SOURCE, TOKYO)  # idempotent: no duplicate rule
    assert store.replication_regions(SOURCE) == [TOKYO, FRANKFURT]
    got = rules(aws)
    assert sorted(r["ID"] for r in got) == ["to-ap-northeast-1", "to-eu-central-1"]
    assert len({r["Priority"] for r in got}) == 2  # overlapping filters need distinct priorities
    assert {r["Destination"]["Bucket"] for r in got} == {
        "arn:aws:s3:::game-assets-ap-northeast-1", "arn:aws:s3:::game-assets-eu-central-1"}

    store.remove_replication(SOURCE, TOKYO)
    store.remove_replication(SOURCE, TOKYO)  # a no-op the second time
    assert store.replication_regions(SOURCE) == [FRANKFURT]
    assert [r["ID"] for r in rules(aws)] == ["to-eu-central-1"]

    store.remove_replication(SOURCE, FRANKFURT)  # the last rule: the whole configuration goes
    assert store.replication_regions(SOURCE) == []
    with pytest.raises(Exception, match="ReplicationConfigurationNotFoundError"):
        aws("s3").get_bucket_replication(Bucket=source_bucket)


def test_a_foreign_rule_into_the_region_is_recognised(store, source_bucket, aws):
    """A rule someone else wrote (Terraform's "assets-to-<region>") to the region's bucket counts as replicating;
    the role of an existing configuration is kept."""
    store.ensure_bucket(TOKYO)
    s3 = aws("s3")
    s3.put_bucket_versioning(Bucket=source_bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_replication(Bucket=source_bucket, ReplicationConfiguration={
        "Role": "arn:aws:iam::123456789012:role/terraform-replication",
        "Rules": [{"ID": "assets-to-ap-northeast-1", "Priority": 0, "Status": "Enabled", "Filter": {"Prefix": ""},
                   "DeleteMarkerReplication": {"Status": "Enabled"},
                   "Destination": {"Bucket": "arn:aws:s3:::game-assets-ap-northeast-1"}}]})
    assert store.replication_regions(SOURCE) == [TOKYO]
    assert store.ensure_replication(SOURCE, TOKYO)["replication_rule"] == "assets-to-ap-northeast-1"
    store.ensure_bucket(FRANKFURT)
    store.ensure_replication(SOURCE, FRANKFURT)
    config = s3.get_bucket_replication(Bucket=source_bucket)["ReplicationConfiguration"]
    assert config["Role"].endswith("terraform-replication")
    assert sorted(r["ID"] for r in config["Rules"]) == ["assets-to-ap-northeast-1", "to-eu-central-1"]


def test_replication_into_a_missing_bucket_is_refused(store, source_bucket):
    with pytest.raises(ProviderError, match="game-assets-ap-northeast-1 does not exist"):
        store.ensure_replication(SOURCE, TOKYO)


def test_without_a_role_the_first_rule_is_refused(moto, moto_clients, source_bucket):
    store = S3ObjectStore(moto_clients, endpoint_url=moto)
    store.ensure_bucket(TOKYO)
    with pytest.raises(ProviderError, match="no IAM role"):
        store.ensure_replication(SOURCE, TOKYO)


def test_delete_bucket_removes_every_version(store, aws):
    store.ensure_bucket(TOKYO)
    s3 = aws("s3", TOKYO)
    bucket = store.bucket_name(TOKYO)
    for body in (b"v1", b"v2", b"v3"):
        s3.put_object(Bucket=bucket, Key="maps/arena-1.json", Body=body)
    s3.put_object(Bucket=bucket, Key="ui/logo.svg", Body=b"<svg/>")
    s3.delete_object(Bucket=bucket, Key="ui/logo.svg")  # leaves a delete marker
    s3.create_multipart_upload(Bucket=bucket, Key="big.bin")
    versions = s3.list_object_versions(Bucket=bucket)
    assert len(versions["Versions"]) == 4 and len(versions["DeleteMarkers"]) == 1

    store.delete_bucket(TOKYO)
    assert not store.bucket_exists(TOKYO)
    store.delete_bucket(TOKYO)  # a no-op when absent


def test_legacy_rules_are_rewritten_in_the_current_schema():
    legacy = {"ID": "old", "Prefix": "maps/", "Status": "Enabled", "Destination": {"Bucket": "arn:aws:s3:::b"}}
    assert _as_v2(legacy) == {"ID": "old", "Status": "Enabled", "Destination": {"Bucket": "arn:aws:s3:::b"},
                              "Filter": {"Prefix": "maps/"}, "DeleteMarkerReplication": {"Status": "Enabled"},
                              "Priority": 0}


def test_a_bucket_name_taken_elsewhere_is_not_free():
    clients = StubbedClients()
    clients.stub("s3", TOKYO).add_client_error("head_bucket", "403", http_status_code=403)
    assert S3ObjectStore(clients).bucket_exists(TOKYO)
    clients.assert_done()


def test_from_spec_names(moto, moto_clients):
    lab = from_spec(None, type("Env", (), {"kind": "lab"})(), None,
                    topology=type("T", (), {"moto_endpoint": moto})())
    assert (lab.bucket_name(TOKYO), lab.rule_id(TOKYO)) == ("game-assets-ap-northeast-1", "to-ap-northeast-1")
    aws_env = type("Env", (), {"kind": "aws", "aws": type("A", (), {"endpoint_url": moto, "account_id": None,
                                                                    "profile": "x"})()})()
    store = from_spec(None, aws_env, None, clients=moto_clients)
    # Terraform's names (terraform/regions/<region>/variables.tf, modules/region/s3.tf).
    assert store.bucket_name(TOKYO) == "game-example-assets-ap-northeast-1"
    assert store.rule_id(TOKYO) == "assets-to-ap-northeast-1"


def test_the_lab_seeds_a_new_replica_with_the_sources_objects(moto, moto_clients, source_bucket, aws):
    """moto replicates nothing (and S3 only new writes): the lab adapter copies what the source holds once."""
    store = S3ObjectStore.for_lab(moto, clients=moto_clients)
    store.ensure_bucket(TOKYO)
    assert store.ensure_replication(SOURCE, TOKYO)["objects_copied"] == 1
    body = aws("s3", TOKYO).get_object(Bucket="game-assets-ap-northeast-1", Key="manifest.json")["Body"].read()
    assert body == b"{}"
    assert "objects_copied" not in store.ensure_replication(SOURCE, TOKYO)  # the rule exists: nothing to do
