# The region's Redis: sessions, the per-region leaderboard and matchmaking tickets of the players
# homed here. Cluster mode stays off (one shard) so that a ticket claim's multi-key
# compare-and-set runs in one Lua script; replicas in every AZ with automatic failover.
# TLS in transit, KMS at rest, AUTH token from a sensitive variable.

resource "aws_elasticache_subnet_group" "redis" {
  name        = "${local.name}-redis"
  description = "Private subnets of ${local.name} for Redis"
  subnet_ids  = aws_subnet.private[*].id

  tags = local.tags
}

resource "aws_cloudwatch_log_group" "redis_slow_log" {
  name              = "/${var.name_prefix}/${local.region}/redis/slow-log"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = aws_kms_key.ops.arn

  tags = local.tags
}

resource "aws_elasticache_replication_group" "redis" {
  replication_group_id = "${local.name}-redis"
  description          = "Game sessions, leaderboard and matchmaking for players homed in ${local.region}"

  engine               = "redis"
  engine_version       = var.redis_engine_version
  node_type            = var.redis_node_type
  num_cache_clusters   = var.redis_replicas
  parameter_group_name = "default.redis${split(".", var.redis_engine_version)[0]}"
  port                 = 6379

  subnet_group_name           = aws_elasticache_subnet_group.redis.name
  security_group_ids          = [aws_security_group.redis.id]
  preferred_cache_cluster_azs = [for i in range(var.redis_replicas) : local.azs[i % length(local.azs)]]
  automatic_failover_enabled  = true
  multi_az_enabled            = true

  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.cache.arn
  transit_encryption_enabled = true
  auth_token                 = var.redis_auth_token
  auth_token_update_strategy = "ROTATE"

  auto_minor_version_upgrade = true
  maintenance_window         = "sun:19:00-sun:20:00"
  snapshot_window            = "17:00-18:00"
  snapshot_retention_limit   = 7
  apply_immediately          = false

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.redis_slow_log.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }

  tags = local.tags
}
