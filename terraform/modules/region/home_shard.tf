# The end state after `migrate phase run cutover --region <this region>` (DESIGN §2, §5, §9): the region's
# cluster writes the players it homes, as the writer of a global cluster of its own — its home shard —
# and keeps, in this region, a secondary of every other region's home shard, so every player is read
# locally.
#
# Cutover creates the home shard on AWS (remove_from_global_cluster, then create_global_cluster with
# SourceDBClusterIdentifier); Terraform adopts it afterwards: set `home_shard = true` and the root's
# import block brings the global cluster into state, so plans describe what runs and never fight the
# cutover (aws_rds_cluster.secondary ignores its global_cluster_identifier for the same reason).
# A region whose home shard another region keeps lists it in that region's `home_shard_secondaries`.

locals {
  home_shard_identifier = "${var.name_prefix}-home-${local.region}"
}

resource "aws_rds_global_cluster" "home" {
  # keyed, not counted: the root's import block addresses it as home["home"] with the same for_each
  for_each = var.home_shard ? toset(["home"]) : toset([])

  global_cluster_identifier    = local.home_shard_identifier
  source_db_cluster_identifier = aws_rds_cluster.secondary.arn
  force_destroy                = false
  deletion_protection          = var.deletion_protection

  lifecycle {
    # the cutover made it from this cluster; its engine follows the cluster's upgrades
    ignore_changes = [source_db_cluster_identifier, engine_version]
  }
}

# This region's copy of every other region's home shard: a headless-until-read secondary cluster with
# the same settings as this region's own (encrypted with this region's key, IAM auth, logs, backups).
resource "aws_rds_cluster" "home_shard_secondary" {
  for_each = var.home_shard_secondaries

  cluster_identifier        = "${var.name_prefix}-home-${each.key}-in-${local.region}"
  global_cluster_identifier = each.value
  engine                    = "aurora-postgresql"
  engine_version            = var.aurora_engine_version
  engine_mode               = "provisioned"

  db_subnet_group_name            = aws_db_subnet_group.aurora.name
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.aurora.name
  vpc_security_group_ids          = [aws_security_group.aurora.id]
  port                            = 5432

  storage_encrypted = true
  kms_key_id        = aws_kms_key.database.arn

  iam_database_authentication_enabled = true
  deletion_protection                 = var.deletion_protection
  backup_retention_period             = 7
  preferred_backup_window             = "17:00-18:00"
  preferred_maintenance_window        = "sun:18:30-sun:19:30"
  copy_tags_to_snapshot               = true
  enabled_cloudwatch_logs_exports     = ["postgresql"]

  # a copy: the shard's writer and its own backups hold the data
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.name_prefix}-home-${each.key}-in-${local.region}-final"

  tags = merge(local.tags, { "game:home-shard" = each.key })

  lifecycle {
    ignore_changes = [replication_source_identifier, global_cluster_identifier]
  }
}

resource "aws_rds_cluster_instance" "home_shard_reader" {
  for_each = var.home_shard_secondaries

  identifier         = "${var.name_prefix}-home-${each.key}-in-${local.region}-reader-1"
  cluster_identifier = aws_rds_cluster.home_shard_secondary[each.key].id
  engine             = aws_rds_cluster.home_shard_secondary[each.key].engine
  engine_version     = aws_rds_cluster.home_shard_secondary[each.key].engine_version
  instance_class     = var.aurora_instance_class

  db_subnet_group_name       = aws_db_subnet_group.aurora.name
  publicly_accessible        = false
  auto_minor_version_upgrade = true
  availability_zone          = local.azs[0]

  monitoring_interval = 30
  monitoring_role_arn = aws_iam_role.rds_monitoring.arn

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.database.arn
  performance_insights_retention_period = 7

  tags = merge(local.tags, { "game:home-shard" = each.key })

  depends_on = [aws_iam_role_policy_attachment.rds_monitoring]
}
