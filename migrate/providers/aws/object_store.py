"""The ObjectStore Protocol on S3: a region's assets bucket and its rule in the source bucket's replication.

One code path for AWS and the lab (DESIGN §3): the lab's S3 is a moto server on loopback. Names are data:
- lab (and the phase's plan text): buckets "game-assets-<region>", rules "to-<region>";
- AWS: what terraform/regions/<region> declares: buckets "game-example-assets-<region>", rules
  "assets-to-<region>" (modules/region/s3.tf), so the adapter finds Terraform's bucket and rule instead of
  adding a second rule to the same destination.

S3 keeps ONE replication configuration per bucket, holding every destination's rule: changes here read
it, edit only this region's rule and write the whole document back, so other regions' rules survive.
Replication needs versioning on both buckets; the configuration's role is kept when one exists (it is
shared by all rules), else the role ARN given to the constructor is used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from migrate.errors import ProviderError
from migrate.providers.aws.clients import AwsClients, ClientFactory, call, error_code
from migrate.providers.aws.clients import AccountGuard, env_clients, lab_clients

log = logging.getLogger(__name__)

NO_BUCKET = frozenset({"404", "NoSuchBucket", "NotFound"})
NO_REPLICATION = frozenset({"ReplicationConfigurationNotFoundError"})
_REGION_RE = r"[a-z]{2}(?:-gov)?-[a-z]+-\d+"
_DELETE_BATCH = 1000  # DeleteObjects' limit


def _template_regex(template: str) -> re.Pattern[str]:
    if "{region}" not in template:
        raise ProviderError(f"name template {template!r} lacks {{region}}", where="aws")
    head, _, tail = template.partition("{region}")
    return re.compile(f"^{re.escape(head)}(?P<region>{_REGION_RE}){re.escape(tail)}$")


class S3ObjectStore:
    """ObjectStore on S3 (AWS) or on the lab's moto server (see the module docstring)."""

    def __init__(
        self,
        clients: ClientFactory | None = None,
        *,
        endpoint_url: str | None = None,
        bucket_name: str = "game-assets-{region}",
        rule_id: str = "to-{region}",
        replication_role_arn: str | None = None,
        replica_kms_keys: Mapping[str, str] | None = None,
        partition: str = "aws",
        copy_existing_objects: bool = False,
        expected_account_id: str | None = None,
    ) -> None:
        """
        clients: (service, region) -> boto3 client (an AwsClients); None = AwsClients(endpoint_url=endpoint_url).
        endpoint_url: the moto server (lab, tests); None on AWS.
        bucket_name / rule_id: "{region}" templates of a region's bucket and of its rule in the source bucket.
        replication_role_arn: the IAM role S3 replicates with, used when the source bucket has no configuration
            yet (in moto any well-formed ARN).
        replica_kms_keys: region -> KMS key ARN of its bucket; a rule to such a region replicates SSE-KMS objects
            and encrypts replicas with that key (Terraform's buckets are KMS-encrypted).
        copy_existing_objects: copy the source's current objects into the region's bucket when its rule is added
            (the lab: moto replicates nothing, and S3 replicates only new writes; on AWS use S3 Batch Replication).
        expected_account_id: when set, changes first check (once) that the credentials belong to it.
        """
        self._clients = clients or AwsClients(endpoint_url=endpoint_url)
        self.endpoint_url = endpoint_url
        self._bucket = bucket_name
        self._bucket_re = _template_regex(bucket_name)
        self._rule = rule_id
        self._rule_re = _template_regex(rule_id)
        self.replication_role_arn = replication_role_arn
        self._kms = dict(replica_kms_keys or {})
        self.partition = partition
        self.copy_existing_objects = copy_existing_objects
        self._guard = AccountGuard(self._clients, expected_account_id)

    @classmethod
    def for_lab(cls, moto_endpoint: str, **overrides: Any) -> S3ObjectStore:
        """The adapter bound to a lab's moto server, with the lab's bucket names (migrate/lab/aws_world.py)."""
        from migrate.lab import aws_world

        settings: dict[str, Any] = {
            "clients": lab_clients(moto_endpoint), "endpoint_url": moto_endpoint,
            "bucket_name": aws_world.bucket_name("{region}"), "rule_id": "to-{region}",
            "replication_role_arn": "arn:aws:iam::123456789012:role/lab-s3-replication",
            "copy_existing_objects": True}
        settings.update(overrides)
        return cls(**settings)

    # ----------------------------------------------------------------- names

    def bucket_name(self, region: str) -> str:
        return self._bucket.format(region=region)

    def rule_id(self, region: str) -> str:
        """ID of `region`'s rule in the source bucket's replication configuration (pure)."""
        return self._rule.format(region=region)

    def bucket_arn(self, region: str) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket_name(region)}"

    # ------------------------------------------------------------ read-only

    def bucket_exists(self, region: str) -> bool:
        """True also when the name is taken by a bucket these credentials may not read (403): it is not free."""
        bucket = self.bucket_name(region)
        try:
            answer = call(self._s3(region), "head_bucket", region, absent=NO_BUCKET, Bucket=bucket)
        except ProviderError as exc:
            if error_code(exc) in {"403", "AccessDenied", "Forbidden"}:
                return True
            raise
        return answer is not None

    def replication_regions(self, source_region: str) -> list[str]:
        config = self._replication(source_region)
        regions = {self._rule_region(rule) for rule in (config or {}).get("Rules", [])
                   if rule.get("Status") == "Enabled"}
        return sorted(r for r in regions if r)

    def replication_rules(self, source_region: str) -> list[dict]:
        """The source bucket's replication rules as S3 returns them ([] without a configuration); read-only."""
        return list((self._replication(source_region) or {}).get("Rules", []))

    # ------------------------------------------------------------ changes

    def ensure_bucket(self, region: str) -> dict:
        """Create the bucket when absent, then (idempotently) block public access and enable versioning."""
        self._guard.check()
        bucket = self.bucket_name(region)
        created = False
        if not self.bucket_exists(region):
            params: dict[str, Any] = {"Bucket": bucket}
            if region != "us-east-1":  # us-east-1 refuses its own name as a LocationConstraint
                params["CreateBucketConfiguration"] = {"LocationConstraint": region}
            created = call(self._s3(region), "create_bucket", region, absent={"BucketAlreadyOwnedByYou"},
                           **params) is not None
            if created:
                log.info("created bucket %s in %s", bucket, region)
        call(self._s3(region), "put_public_access_block", region, Bucket=bucket,
             PublicAccessBlockConfiguration={"BlockPublicAcls": True, "IgnorePublicAcls": True,
                                             "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
        self._enable_versioning(region)
        return {"bucket": bucket, "bucket_region": region, "versioning": "Enabled", "created": created}

    def ensure_replication(self, source_region: str, region: str) -> dict:
        """Add `region`'s rule to the source bucket's configuration unless an enabled rule already replicates to
        its bucket (e.g. Terraform's); other rules are written back unchanged."""
        self._guard.check()
        source, target = self.bucket_name(source_region), self.bucket_name(region)
        if not self.bucket_exists(region):
            raise ProviderError(f"bucket {target} does not exist: replication into it is impossible", where="aws",
                                hint="create the region's bucket first (assets-bucket step)")
        if not self.bucket_exists(source_region):
            raise ProviderError(f"source bucket {source} does not exist in {source_region}", where="aws")
        # S3 refuses a replication rule unless both ends keep versions.
        self._enable_versioning(source_region)
        self._enable_versioning(region)
        config = self._replication(source_region)
        rules = [_as_v2(rule) for rule in (config or {}).get("Rules", [])]
        present = next((r for r in rules if r.get("Status") == "Enabled" and self._rule_region(r) == region), None)
        outputs = {"source_bucket": source, "replica_bucket": target}
        if present is not None:
            return {**outputs, "replication_rule": present.get("ID", "")}
        role = (config or {}).get("Role") or self.replication_role_arn
        if not role:
            raise ProviderError(f"no IAM role to replicate {source} with", where="aws",
                                hint="give the adapter replication_role_arn (Terraform's replication role)")
        rule_id = self.rule_id(region)
        rules = [r for r in rules if r.get("ID") != rule_id]
        rules.append(self._new_rule(region, priority=max((int(r.get("Priority", 0)) for r in rules), default=0) + 1))
        call(self._s3(source_region), "put_bucket_replication", source_region, Bucket=source,
             ReplicationConfiguration={"Role": role, "Rules": rules})
        log.info("source bucket %s now replicates to %s (rule %s)", source, target, rule_id)
        if self.copy_existing_objects:
            outputs["objects_copied"] = self._copy_existing(source_region, region)
        return {**outputs, "replication_rule": rule_id}

    def remove_replication(self, source_region: str, region: str) -> None:
        """Drop this adapter's rule for `region` and any rule into its bucket; delete the whole configuration
        when no rule is left. A no-op when there is nothing to drop."""
        config = self._replication(source_region)
        if not config:
            return
        rules = [_as_v2(rule) for rule in config.get("Rules", [])]
        keep = [r for r in rules if r.get("ID") != self.rule_id(region) and self._rule_region(r) != region]
        if len(keep) == len(rules):
            return
        self._guard.check()
        source = self.bucket_name(source_region)
        if keep:
            call(self._s3(source_region), "put_bucket_replication", source_region, Bucket=source,
                 ReplicationConfiguration={"Role": config["Role"], "Rules": keep})
        else:
            call(self._s3(source_region), "delete_bucket_replication", source_region, absent=NO_BUCKET, Bucket=source)
        log.info("source bucket %s no longer replicates to %s", source, self.bucket_name(region))

    def delete_bucket(self, region: str) -> None:
        """Delete every object version, delete marker and unfinished upload, then the bucket."""
        if not self.bucket_exists(region):
            return
        self._guard.check()
        bucket, s3 = self.bucket_name(region), self._s3(region)
        self._abort_uploads(region, bucket)
        params: dict[str, Any] = {"Bucket": bucket}
        while True:
            page = call(s3, "list_object_versions", region, absent=NO_BUCKET, **params)
            if page is None:
                return
            keys = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            for start in range(0, len(keys), _DELETE_BATCH):
                answer = call(s3, "delete_objects", region, Bucket=bucket,
                              Delete={"Objects": keys[start:start + _DELETE_BATCH], "Quiet": True}) or {}
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise ProviderError(f"could not empty {bucket}: {len(answer['Errors'])} object version(s) refused, "
                                        f"e.g. {first.get('Key')}: {first.get('Code')}", where="aws")
            if not page.get("IsTruncated"):
                break
            params = {"Bucket": bucket, "KeyMarker": page.get("NextKeyMarker", "")}
            if page.get("NextVersionIdMarker"):
                params["VersionIdMarker"] = page["NextVersionIdMarker"]
        call(s3, "delete_bucket", region, absent=NO_BUCKET, Bucket=bucket)
        log.info("deleted bucket %s", bucket)

    # ------------------------------------------------------------- helpers

    def _s3(self, region: str) -> Any:
        return self._clients("s3", region)

    def _replication(self, source_region: str) -> dict | None:
        answer = call(self._s3(source_region), "get_bucket_replication", source_region,
                      absent=NO_REPLICATION | NO_BUCKET, Bucket=self.bucket_name(source_region))
        return (answer or {}).get("ReplicationConfiguration")

    def _enable_versioning(self, region: str) -> None:
        bucket = self.bucket_name(region)
        state = call(self._s3(region), "get_bucket_versioning", region, Bucket=bucket) or {}
        if state.get("Status") != "Enabled":
            call(self._s3(region), "put_bucket_versioning", region, Bucket=bucket,
                 VersioningConfiguration={"Status": "Enabled"})

    def _rule_region(self, rule: dict) -> str | None:
        """The region a rule replicates to: by its destination bucket, else by its ID."""
        bucket = str(rule.get("Destination", {}).get("Bucket", "")).rsplit(":", 1)[-1]
        match = self._bucket_re.match(bucket) or self._rule_re.match(str(rule.get("ID", "")))
        return match.group("region") if match else None

    def _new_rule(self, region: str, priority: int) -> dict:
        rule: dict[str, Any] = {
            "ID": self.rule_id(region), "Priority": priority, "Status": "Enabled",
            "Filter": {"Prefix": ""},  # every object goes to every region
            "DeleteMarkerReplication": {"Status": "Enabled"},
            "Destination": {"Bucket": self.bucket_arn(region), "StorageClass": "STANDARD"},
        }
        key = self._kms.get(region)
        if key:
            rule["SourceSelectionCriteria"] = {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
            rule["Destination"]["EncryptionConfiguration"] = {"ReplicaKmsKeyID": key}
        return rule

    def _copy_existing(self, source_region: str, region: str) -> int:
        """Copy the source's current objects the region's bucket lacks; how many were copied."""
        source, target, s3 = self.bucket_name(source_region), self.bucket_name(region), self._s3(region)
        present: set[str] = set()
        for page in self._pages(region, "list_objects_v2", Bucket=target):
            present.update(o["Key"] for o in page.get("Contents", []))
        copied = 0
        for page in self._pages(source_region, "list_objects_v2", Bucket=source):
            for item in page.get("Contents", []):
                if item["Key"] not in present:
                    call(s3, "copy_object", region, Bucket=target, Key=item["Key"],
                         CopySource={"Bucket": source, "Key": item["Key"]})
                    copied += 1
        return copied

    def _pages(self, region: str, method: str, **params: Any):
        while True:
            page = call(self._s3(region), method, region, **params) or {}
            yield page
            if not page.get("IsTruncated") or not page.get("NextContinuationToken"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]

    def _abort_uploads(self, region: str, bucket: str) -> None:
        answer = call(self._s3(region), "list_multipart_uploads", region, absent=NO_BUCKET, Bucket=bucket) or {}
        for upload in answer.get("Uploads", []):
            call(self._s3(region), "abort_multipart_upload", region, absent={"NoSuchUpload"}, Bucket=bucket,
                 Key=upload["Key"], UploadId=upload["UploadId"])


def _as_v2(rule: dict) -> dict:
    """A rule in the current schema (Filter + Priority + DeleteMarkerReplication), so that it can share a
    configuration with rules that have more than one destination. A legacy rule's top-level Prefix becomes its
    filter and it keeps replicating delete markers, as legacy rules did."""
    if "Filter" in rule:
        return dict(rule)
    rule = dict(rule)
    prefix = rule.pop("Prefix", "")
    rule["Filter"] = {"Prefix": prefix}
    rule.setdefault("DeleteMarkerReplication", {"Status": "Enabled"})
    rule.setdefault("Priority", 0)
    return rule


def from_spec(spec: Any, env: Any, repo_root: Any = None, *, topology: Any = None,
              clients: ClientFactory | None = None, **overrides: Any) -> S3ObjectStore:
    """The ObjectStore adapter of an environment. lab: the moto server of `topology` ("game-assets-<region>",
    rules "to-<region>"); aws: the spec's profile and Terraform's names ("game-example-assets-<region>",
    rules "assets-to-<region>"), replication role from MIGRATE_AWS_REPLICATION_ROLE_ARN when set."""
    import os

    if env.kind == "lab":
        if topology is None:
            env_clients(env)  # raises the explanation
        if clients is not None:
            overrides["clients"] = clients
        return S3ObjectStore.for_lab(topology.moto_endpoint, **overrides)
    made, endpoint_url = (clients, getattr(env.aws, "endpoint_url", None)) if clients else env_clients(env)
    settings: dict[str, Any] = {
        "clients": made, "endpoint_url": endpoint_url, "bucket_name": "game-example-assets-{region}",
        "rule_id": "assets-to-{region}", "replication_role_arn": os.environ.get("MIGRATE_AWS_REPLICATION_ROLE_ARN"),
        "expected_account_id": getattr(env.aws, "account_id", None)}
    settings.update(overrides)
    return S3ObjectStore(**settings)
