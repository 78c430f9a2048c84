# What `migrate` (stand-up-region, attach-secondary, shift-traffic, cutover) reads after an apply:
# `terraform -chdir=terraform/regions/<region> output -json` exposes these through the root.

output "region" {
  description = "Region this module instance was applied to (from the provider, not from a variable)."
  value       = local.region
}

output "vpc_id" {
  description = "ID of the region's VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "IDs of the three private subnets (API tasks, Aurora, Redis)."
  value       = aws_subnet.private[*].id
}

output "alb_dns_name" {
  description = "DNS name of the API load balancer (target of the region's Route 53 records and health check)."
  value       = aws_lb.api.dns_name
}

output "alb_zone_id" {
  description = "Route 53 zone ID of the API load balancer, for alias records."
  value       = aws_lb.api.zone_id
}

output "alb_arn_suffix" {
  description = "ARN suffix of the API load balancer: the LoadBalancer dimension of its CloudWatch metrics (the gates' error rate and p95)."
  value       = aws_lb.api.arn_suffix
}

output "target_group_arn_suffix" {
  description = "ARN suffix of the API target group: the TargetGroup dimension of its CloudWatch metrics."
  value       = aws_lb_target_group.api.arn_suffix
}

output "ecs_cluster_name" {
  description = "Name of the region's ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "api_service_name" {
  description = "Name of the game API's ECS service (deploy-api step and rollbacks address it by cluster + service)."
  value       = aws_ecs_service.api.name
}

output "aurora_cluster_id" {
  description = "Cluster identifier of the region's Aurora secondary (attach-secondary and cutover address it)."
  value       = aws_rds_cluster.secondary.cluster_identifier
}

output "aurora_cluster_arn" {
  description = "ARN of the region's Aurora secondary cluster (the DbClusterIdentifier that switchover_global_cluster takes)."
  value       = aws_rds_cluster.secondary.arn
}

output "aurora_cluster_endpoint" {
  description = "Cluster (writer) endpoint of the region's Aurora cluster; it accepts writes only after cutover promotes this region."
  value       = aws_rds_cluster.secondary.endpoint
}

output "aurora_reader_endpoint" {
  description = "Reader endpoint of the region's Aurora cluster: the API's READER_DSN host."
  value       = aws_rds_cluster.secondary.reader_endpoint
}

output "aurora_instance_ids" {
  description = "Identifiers of the Aurora instances of the region's cluster."
  value       = aws_rds_cluster_instance.secondary[*].identifier
}

output "redis_replication_group_id" {
  description = "ID of the region's ElastiCache replication group."
  value       = aws_elasticache_replication_group.redis.replication_group_id
}

output "redis_primary_endpoint" {
  description = "Primary endpoint address of the region's Redis (TLS, port 6379; AUTH token in SSM, never in outputs)."
  value       = aws_elasticache_replication_group.redis.primary_endpoint_address
}

output "redis_reader_endpoint" {
  description = "Reader endpoint address of the region's Redis replicas."
  value       = aws_elasticache_replication_group.redis.reader_endpoint_address
}

output "assets_bucket_name" {
  description = "Name of the region's assets bucket (replication destination)."
  value       = aws_s3_bucket.assets.id
}

output "assets_bucket_arn" {
  description = "ARN of the region's assets bucket: the other region's root lists it in peer_replicas."
  value       = aws_s3_bucket.assets.arn
}

output "assets_kms_key_arn" {
  description = "ARN of the KMS key of the region's assets bucket: the other region's root lists it in peer_replicas."
  value       = aws_kms_key.assets.arn
}

output "replication_rule_ids" {
  description = "IDs of the rules of the source bucket's replication configuration as this root writes it (one per replica region)."
  value       = [for region in local.replication_regions : "assets-to-${region}"]
}

output "cloudfront_distribution_id" {
  description = "ID of the region's assets CloudFront distribution (for invalidations)."
  value       = aws_cloudfront_distribution.assets.id
}

output "cloudfront_domain_name" {
  description = "*.cloudfront.net domain name of the region's assets distribution."
  value       = aws_cloudfront_distribution.assets.domain_name
}

output "assets_domain_name" {
  description = "Host name players fetch the region's assets from."
  value       = var.assets_domain_name
}

output "health_check_id" {
  description = "ID of the Route 53 health check of the region's API (the health-check step waits for it to pass)."
  value       = aws_route53_health_check.api.id
}

output "api_record_name" {
  description = "Name of the weighted API record set."
  value       = var.api_record_name
}

output "weighted_set_identifier" {
  description = "Set identifier of the region's weighted record in pool_record_name (shift-traffic steps its weight)."
  value       = local.weighted_set_identifier
}

output "api_weight" {
  description = "Weight this apply gave the region's weighted record."
  value       = var.api_weight
}

output "pool_record_name" {
  description = "Name of the geography pool holding the region's weighted record (later its latency record)."
  value       = local.pool_record_name
}

output "latency_set_identifier" {
  description = "Set identifier shift-traffic gives the region's latency record in pool_record_name."
  value       = local.latency_set_identifier
}

output "ssm_path" {
  description = "SSM path of the API's secrets and runtime configuration (db-password is expected there)."
  value       = local.ssm_path
}

output "alarm_topic_arn" {
  description = "ARN of the region's alarm SNS topic."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_names" {
  description = "Names of the region's CloudWatch alarms, keyed by what they watch (the gates read their state)."
  value = {
    aurora_replication_lag = aws_cloudwatch_metric_alarm.aurora_replication_lag.alarm_name
    api_5xx_rate           = aws_cloudwatch_metric_alarm.api_5xx_rate.alarm_name
    api_p95_latency        = aws_cloudwatch_metric_alarm.api_p95_latency.alarm_name
  }
}

output "home_shard_global_cluster_id" {
  description = "The global cluster this region writes as its home shard (after cutover), or null before."
  value       = var.home_shard ? aws_rds_global_cluster.home["home"].id : null
}

output "home_shard_secondary_reader_endpoints" {
  description = "Home region → the reader endpoint of this region's secondary of that region's home shard."
  value       = { for home, cluster in aws_rds_cluster.home_shard_secondary : home => cluster.reader_endpoint }
}
