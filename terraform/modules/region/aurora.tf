# The region's Aurora PostgreSQL cluster: a secondary of the existing global cluster. It has no
# master credentials of its own (they come from the primary) and serves reads in the region until
# `cutover` promotes it. Storage is replicated by Aurora, not by PostgreSQL streaming, so the
# secondary must run exactly the primary's engine version (aurora_engine_version).

locals {
  # The names migrate's AWS adapter (attach-secondary) uses for a region's secondary: with them,
  # attach-secondary finds the cluster and reader this module created and keeps them.
  aurora_cluster_identifier = "${var.name_prefix}-${local.region}"
  aurora_major_version      = split(".", var.aurora_engine_version)[0]
}

resource "aws_db_subnet_group" "aurora" {
  name        = "${local.name}-aurora"
  description = "Private subnets of ${local.name} for the Aurora secondary"
  subnet_ids  = aws_subnet.private[*].id

  tags = local.tags
}

resource "aws_rds_cluster_parameter_group" "aurora" {
  name        = "${local.name}-aurora-pg${local.aurora_major_version}"
  family      = "aurora-postgresql${local.aurora_major_version}"
  description = "Game cluster parameters for ${local.name}: TLS only, statement logging for slow queries"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "250"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  # Logical decoding, set ahead of time (a restart-only setting): cutover's reverse stream publishes
  # the home's rows from this cluster once it writes them (DESIGN §9).
  parameter {
    name         = "rds.logical_replication"
    value        = "1"
    apply_method = "pending-reboot"
  }

  tags = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

# Pre-created so the exported PostgreSQL log gets a retention and the region's KMS key (RDS would
# otherwise create it unencrypted with infinite retention).
resource "aws_cloudwatch_log_group" "aurora" {
  name              = "/aws/rds/cluster/${local.aurora_cluster_identifier}/postgresql"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = aws_kms_key.ops.arn

  tags = local.tags
}

resource "aws_rds_cluster" "secondary" {
  cluster_identifier        = local.aurora_cluster_identifier
  global_cluster_identifier = var.global_cluster_identifier
  engine                    = "aurora-postgresql"
  engine_version            = var.aurora_engine_version
  engine_mode               = "provisioned"

  db_subnet_group_name            = aws_db_subnet_group.aurora.name
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.aurora.name
  vpc_security_group_ids          = [aws_security_group.aurora.id]
  port                            = 5432

  # A cross-region secondary must be encrypted with a key of its own region.
  storage_encrypted = true
  kms_key_id        = aws_kms_key.database.arn

  iam_database_authentication_enabled = true
  deletion_protection                 = var.deletion_protection
  backup_retention_period             = 7
  preferred_backup_window             = "17:00-18:00"
  preferred_maintenance_window        = "sun:18:30-sun:19:30"
  copy_tags_to_snapshot               = true
  enabled_cloudwatch_logs_exports     = ["postgresql"]

  # Deleting a secondary loses no data (the global cluster keeps it); the final snapshot is for
  # the day this cluster has become the writer.
  skip_final_snapshot       = false
  final_snapshot_identifier = "${local.aurora_cluster_identifier}-final"

  tags = local.tags

  lifecycle {
    # Set by Aurora when the cluster joins the global cluster, and moved by switchover/cutover:
    # the orchestrator owns those, Terraform must not fight them.
    ignore_changes = [replication_source_identifier, global_cluster_identifier]
  }

  depends_on = [aws_cloudwatch_log_group.aurora]
}

resource "aws_rds_cluster_instance" "secondary" {
  count = var.aurora_instance_count

  identifier         = "${local.aurora_cluster_identifier}-reader-${count.index + 1}"
  cluster_identifier = aws_rds_cluster.secondary.id
  engine             = aws_rds_cluster.secondary.engine
  engine_version     = aws_rds_cluster.secondary.engine_version
  instance_class     = var.aurora_instance_class

  db_subnet_group_name       = aws_db_subnet_group.aurora.name
  publicly_accessible        = false
  auto_minor_version_upgrade = true
  availability_zone          = local.azs[count.index % length(local.azs)]

  monitoring_interval = 30
  monitoring_role_arn = aws_iam_role.rds_monitoring.arn

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.database.arn
  performance_insights_retention_period = 7

  tags = local.tags

  depends_on = [aws_iam_role_policy_attachment.rds_monitoring]
}

# Region-local backups through AWS Backup: after cutover this cluster is the writer, and a restore
# must not depend on another region. The vault is encrypted with the database key.
resource "aws_backup_vault" "aurora" {
  name        = "${local.name}-aurora"
  kms_key_arn = aws_kms_key.database.arn

  tags = local.tags
}

resource "aws_backup_plan" "aurora" {
  name = "${local.name}-aurora"

  rule {
    rule_name         = "daily"
    target_vault_name = aws_backup_vault.aurora.name
    schedule          = "cron(0 18 * * ? *)"
    start_window      = 60
    completion_window = 360

    lifecycle {
      delete_after = 35
    }
  }

  tags = local.tags
}

data "aws_iam_policy_document" "backup_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["backup.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "backup" {
  name                 = "${local.name}-aurora-backup"
  description          = "AWS Backup snapshots the Aurora cluster of ${local.name}"
  assume_role_policy   = data.aws_iam_policy_document.backup_assume.json
  max_session_duration = 3600

  tags = local.tags
}

resource "aws_iam_role_policy_attachment" "backup" {
  role       = aws_iam_role.backup.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"
}

resource "aws_backup_selection" "aurora" {
  name         = "${local.name}-aurora"
  plan_id      = aws_backup_plan.aurora.id
  iam_role_arn = aws_iam_role.backup.arn
  # this region's own cluster and its copies of the other regions' home shards (home_shard.tf): a region
  # restores what it reads without another region
  resources = concat([aws_rds_cluster.secondary.arn], [for cluster in aws_rds_cluster.home_shard_secondary : cluster.arn])
}
