# Outputs `migrate` reads with `terraform -chdir=terraform/regions/eu-central-1 output -json`.
# Thin pass-through of the region module's outputs; no secret is ever an output.

output "region" {
  description = "Region this root manages."
  value       = module.region.region
}

output "alb_dns_name" {
  description = "DNS name of the region's API load balancer."
  value       = module.region.alb_dns_name
}

output "alb_arn_suffix" {
  description = "CloudWatch LoadBalancer dimension of the API load balancer (gate metrics)."
  value       = module.region.alb_arn_suffix
}

output "target_group_arn_suffix" {
  description = "CloudWatch TargetGroup dimension of the API target group (gate metrics)."
  value       = module.region.target_group_arn_suffix
}

output "ecs_cluster_name" {
  description = "Name of the region's ECS cluster."
  value       = module.region.ecs_cluster_name
}

output "api_service_name" {
  description = "Name of the game API's ECS service."
  value       = module.region.api_service_name
}

output "aurora_cluster_id" {
  description = "Cluster identifier of the region's Aurora secondary."
  value       = module.region.aurora_cluster_id
}

output "aurora_cluster_arn" {
  description = "ARN of the region's Aurora secondary (switchover target at cutover)."
  value       = module.region.aurora_cluster_arn
}

output "aurora_cluster_endpoint" {
  description = "Cluster endpoint of the region's Aurora cluster (writer after cutover)."
  value       = module.region.aurora_cluster_endpoint
}

output "aurora_reader_endpoint" {
  description = "Reader endpoint of the region's Aurora cluster (the API's local reads)."
  value       = module.region.aurora_reader_endpoint
}

output "redis_replication_group_id" {
  description = "ID of the region's Redis replication group."
  value       = module.region.redis_replication_group_id
}

output "redis_primary_endpoint" {
  description = "Primary endpoint address of the region's Redis."
  value       = module.region.redis_primary_endpoint
}

output "assets_bucket_name" {
  description = "Name of the region's assets bucket."
  value       = module.region.assets_bucket_name
}

output "assets_bucket_arn" {
  description = "ARN of the region's assets bucket (the other target region's peer_replicas entry)."
  value       = module.region.assets_bucket_arn
}

output "assets_kms_key_arn" {
  description = "KMS key ARN of the region's assets bucket (the other target region's peer_replicas entry)."
  value       = module.region.assets_kms_key_arn
}

output "replication_rule_ids" {
  description = "Rule IDs of the source bucket's replication configuration as written by this root."
  value       = module.region.replication_rule_ids
}

output "cloudfront_distribution_id" {
  description = "ID of the region's assets CloudFront distribution."
  value       = module.region.cloudfront_distribution_id
}

output "cloudfront_domain_name" {
  description = "*.cloudfront.net domain of the region's assets distribution."
  value       = module.region.cloudfront_domain_name
}

output "health_check_id" {
  description = "ID of the Route 53 health check on the region's API."
  value       = module.region.health_check_id
}

output "api_record_name" {
  description = "Name of the weighted API record set."
  value       = module.region.api_record_name
}

output "weighted_set_identifier" {
  description = "Set identifier of the region's weighted API record."
  value       = module.region.weighted_set_identifier
}

output "api_weight" {
  description = "Weight of the region's weighted API record after this apply."
  value       = module.region.api_weight
}

output "pool_record_name" {
  description = "Name of the geography pool holding the region's record."
  value       = module.region.pool_record_name
}

output "latency_set_identifier" {
  description = "Set identifier of the region's latency record."
  value       = module.region.latency_set_identifier
}

output "ssm_path" {
  description = "SSM path of the API's secrets in the region."
  value       = module.region.ssm_path
}

output "alarm_topic_arn" {
  description = "ARN of the region's alarm topic."
  value       = module.region.alarm_topic_arn
}

output "alarm_names" {
  description = "Names of the region's CloudWatch alarms by purpose."
  value       = module.region.alarm_names
}
