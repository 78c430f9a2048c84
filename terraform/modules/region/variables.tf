# Inputs of the region module. The roots (terraform/regions/<region>) validate what an operator
# types; the module validates what it relies on, so a wrong value fails at plan, not half-way
# through an apply.

# ---------------------------------------------------------------------------------------------
# Naming and tagging
# ---------------------------------------------------------------------------------------------

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (lowercase, e.g. \"game\"); IAM role and bucket names add the region to it."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix must be 2-15 characters: lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region_short_name" {
  type        = string
  description = "Short code of the target region used inside names that have tight length limits (e.g. \"apne1\" for ap-northeast-1)."

  validation {
    condition     = can(regex("^[a-z]{2,4}[0-9]$", var.region_short_name))
    error_message = "region_short_name must look like apne1 or euc1: 2-4 lowercase letters then one digit."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the module (on top of the provider's default_tags)."
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR of the region's VPC (/16 to /20); must not overlap the other regions' VPCs, so that they can be peered later."

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR block between /16 and /20, e.g. 10.20.0.0/16."
  }
}

variable "availability_zone_ids" {
  type        = list(string)
  description = "The three availability zone IDs (e.g. apne1-az1, apne1-az2, apne1-az4) the region's subnets, Aurora instances and Redis nodes spread over."

  validation {
    condition     = length(var.availability_zone_ids) == 3 && length(distinct(var.availability_zone_ids)) == 3
    error_message = "availability_zone_ids must list exactly three distinct zone IDs."
  }

  validation {
    condition     = alltrue([for id in var.availability_zone_ids : can(regex("^${var.region_short_name}-az[0-9]+$", id))])
    error_message = "Every availability zone ID must belong to the region: <region_short_name>-az<N>, e.g. apne1-az1."
  }
}

variable "flow_log_retention_days" {
  type        = number
  description = "Days to keep VPC flow logs, API logs and other CloudWatch log groups of the region (at least a year for incident forensics)."
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be a CloudWatch Logs retention value of at least 365 days (365, 400, 545, 731, 1096, ...)."
  }
}

# ---------------------------------------------------------------------------------------------
# Game API (ALB + ECS Fargate)
# ---------------------------------------------------------------------------------------------

variable "api_image" {
  type        = string
  description = "Container image of the game API, pinned by digest or immutable tag (e.g. 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/game-api@sha256:...)."

  validation {
    condition     = can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[a-f0-9]{64})$", var.api_image))
    error_message = "api_image must be an ECR image reference with a tag or a sha256 digest."
  }
}

variable "api_image_repository_arn" {
  type        = string
  description = "ARN of the ECR repository holding api_image; the task execution role may pull from this repository only."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$", var.api_image_repository_arn))
    error_message = "api_image_repository_arn must be an ECR repository ARN."
  }
}

variable "api_container_port" {
  type        = number
  description = "TCP port the API container listens on (uvicorn); the ALB forwards to it and only the ALB may reach it."
  default     = 8000

  validation {
    condition     = var.api_container_port >= 1024 && var.api_container_port <= 65535
    error_message = "api_container_port must be an unprivileged port (1024-65535)."
  }
}

variable "api_internal_port" {
  type        = number
  description = "Port of the API's internal listener (/metrics, /internal/*), bound to 127.0.0.1 inside the task and never mapped."
  default     = 9100

  validation {
    condition     = var.api_internal_port >= 1024 && var.api_internal_port <= 65535
    error_message = "api_internal_port must be an unprivileged port (1024-65535)."
  }
}

variable "api_health_check_path" {
  type        = string
  description = "HTTP path of the API's health endpoint, used by the ALB target group and the Route 53 health check."
  default     = "/health"

  validation {
    condition     = startswith(var.api_health_check_path, "/")
    error_message = "api_health_check_path must start with /."
  }
}

variable "api_cpu_architecture" {
  type        = string
  description = "CPU architecture the API image is built for (Fargate runtime platform)."
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.api_cpu_architecture)
    error_message = "api_cpu_architecture must be X86_64 or ARM64."
  }
}

variable "api_cpu" {
  type        = number
  description = "Fargate task CPU units for one API task (256 = 0.25 vCPU)."
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.api_cpu)
    error_message = "api_cpu must be a Fargate CPU size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "api_memory" {
  type        = number
  description = "Fargate task memory in MiB for one API task (must be valid for api_cpu)."
  default     = 2048

  validation {
    condition     = var.api_memory >= 512 && var.api_memory <= 122880
    error_message = "api_memory must be between 512 and 122880 MiB."
  }
}

variable "api_min_tasks" {
  type        = number
  description = "Fewest API tasks autoscaling keeps running (at least one per AZ, so an AZ loss never empties the region)."
  default     = 3

  validation {
    condition     = var.api_min_tasks >= 3
    error_message = "api_min_tasks must be at least 3 (one per availability zone)."
  }
}

variable "api_max_tasks" {
  type        = number
  description = "Most API tasks autoscaling may run in the region (sized for 100 % of the geography's traffic)."
  default     = 60

  validation {
    condition     = var.api_max_tasks >= 3 && var.api_max_tasks <= 1000
    error_message = "api_max_tasks must be between 3 and 1000."
  }
}

variable "api_cpu_target_percent" {
  type        = number
  description = "Average CPU utilisation of the API service that target-tracking autoscaling holds."
  default     = 60

  validation {
    condition     = var.api_cpu_target_percent >= 20 && var.api_cpu_target_percent <= 90
    error_message = "api_cpu_target_percent must be between 20 and 90."
  }
}

variable "api_requests_per_task_target" {
  type        = number
  description = "ALB requests per target per minute that target-tracking autoscaling holds (second scaling signal, reacts before CPU does)."
  default     = 6000

  validation {
    condition     = var.api_requests_per_task_target >= 100
    error_message = "api_requests_per_task_target must be at least 100."
  }
}

variable "api_environment" {
  type        = map(string)
  description = "Extra non-secret environment variables of the API container (e.g. SESSION_EPOCH); secrets go through SSM, never here."
  default     = {}
}

variable "certificate_arn" {
  type        = string
  description = "ARN of the ACM certificate for the API name (api.game.example), issued in the target region; the ALB's HTTPS listener serves it."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "alb_ssl_policy" {
  type        = string
  description = "TLS policy of the ALB's HTTPS listener (TLS 1.2+ only)."
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  validation {
    condition     = startswith(var.alb_ssl_policy, "ELBSecurityPolicy-TLS13-1-2") || startswith(var.alb_ssl_policy, "ELBSecurityPolicy-TLS13-1-3")
    error_message = "alb_ssl_policy must be one of the ELBSecurityPolicy-TLS13-1-2* or -1-3* policies."
  }
}

variable "waf_rate_limit_per_ip" {
  type        = number
  description = "Requests per IP per 5 minutes above which the WAF blocks the client (protects the API from a single abusive client)."
  default     = 3000

  validation {
    condition     = var.waf_rate_limit_per_ip >= 100
    error_message = "waf_rate_limit_per_ip must be at least 100 (AWS WAF's minimum rate limit)."
  }
}

# ---------------------------------------------------------------------------------------------
# Aurora PostgreSQL secondary
# ---------------------------------------------------------------------------------------------

variable "global_cluster_identifier" {
  type        = string
  description = "Identifier of the existing Aurora global cluster whose primary runs in the source region; this region's cluster joins it as a secondary."

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,62}$", var.global_cluster_identifier))
    error_message = "global_cluster_identifier must start with a letter and contain only letters, digits and hyphens (max 63)."
  }
}

variable "aurora_engine_version" {
  type        = string
  description = "Aurora PostgreSQL engine version, pinned to exactly the primary cluster's version (a secondary must run the same version as the primary)."

  validation {
    condition     = can(regex("^[0-9]{2}\\.[0-9]{1,2}$", var.aurora_engine_version))
    error_message = "aurora_engine_version must be MAJOR.MINOR as Aurora PostgreSQL spells it, e.g. 15.4."
  }
}

variable "aurora_instance_class" {
  type        = string
  description = "Instance class of the region's Aurora reader instances (global databases need a memory-optimised class)."
  default     = "db.r6g.large"

  validation {
    condition     = can(regex("^db\\.(r[5-8][a-z]*|x2g)\\.[0-9]*x?large$", var.aurora_instance_class))
    error_message = "aurora_instance_class must be a db.r5/r6/r7/r8 or db.x2g class; Aurora global databases do not support burstable classes."
  }
}

variable "aurora_instance_count" {
  type        = number
  description = "Number of Aurora instances in the secondary cluster (2+ so the region keeps a reader through an instance failure and can be promoted with a standby)."
  default     = 2

  validation {
    condition     = var.aurora_instance_count >= 1 && var.aurora_instance_count <= 15
    error_message = "aurora_instance_count must be between 1 and 15."
  }
}

variable "aurora_replication_lag_threshold_ms" {
  type        = number
  description = "AuroraGlobalDBReplicationLag (milliseconds) above which the replication-lag alarm fires; matches the migration's lag budget."
  default     = 1000

  validation {
    condition     = var.aurora_replication_lag_threshold_ms > 0
    error_message = "aurora_replication_lag_threshold_ms must be positive."
  }
}

variable "db_name" {
  type        = string
  description = "Name of the game database inside the global cluster (the API's DSN names it)."
  default     = "game"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must be a lowercase PostgreSQL identifier."
  }
}

variable "db_user" {
  type        = string
  description = "Database role the API connects as; its password is read from SSM at <ssm path>/db-password (created by the source region's operators, never by this module)."
  default     = "game_api"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_user))
    error_message = "db_user must be a lowercase PostgreSQL identifier."
  }
}

variable "global_writer_endpoint" {
  type        = string
  description = "Global writer endpoint of the Aurora global cluster (follows the writer through switchover); the API sends its writes there."

  validation {
    condition     = can(regex("^[a-z0-9.-]+\\.amazonaws\\.com$", var.global_writer_endpoint))
    error_message = "global_writer_endpoint must be an Aurora endpoint host name (*.amazonaws.com)."
  }
}

# ---------------------------------------------------------------------------------------------
# Redis (ElastiCache)
# ---------------------------------------------------------------------------------------------

variable "redis_engine_version" {
  type        = string
  description = "Redis OSS engine version of the region's replication group."
  default     = "7.1"

  validation {
    condition     = can(regex("^[6-7]\\.[0-9]+$", var.redis_engine_version))
    error_message = "redis_engine_version must be a Redis 6.x or 7.x version such as 7.1."
  }
}

variable "redis_node_type" {
  type        = string
  description = "ElastiCache node type of the region's Redis (sessions, leaderboards, matchmaking tickets)."
  default     = "cache.r7g.large"

  validation {
    condition     = startswith(var.redis_node_type, "cache.")
    error_message = "redis_node_type must be an ElastiCache node type (cache.*)."
  }
}

variable "redis_replicas" {
  type        = number
  description = "Number of Redis nodes in the replication group: one primary plus replicas spread over the AZs (2+ for automatic failover)."
  default     = 3

  validation {
    condition     = var.redis_replicas >= 2 && var.redis_replicas <= 6
    error_message = "redis_replicas must be between 2 and 6 (automatic failover needs a replica)."
  }
}

variable "redis_auth_token" {
  type        = string
  description = "Redis AUTH token (16-128 printable characters, no spaces, quotes or @). Pass it through TF_VAR_redis_auth_token or a secrets manager; never commit it."
  sensitive   = true

  validation {
    condition     = length(var.redis_auth_token) >= 16 && length(var.redis_auth_token) <= 128 && can(regex("^[!#$%&*()+,\\-./0-9:;<=>?A-Z\\[\\]^_`a-z{|}~]+$", var.redis_auth_token))
    error_message = "redis_auth_token must be 16-128 printable ASCII characters without spaces, quotes, / or @."
  }
}

# ---------------------------------------------------------------------------------------------
# Assets (S3 + CloudFront) and replication from the source bucket
# ---------------------------------------------------------------------------------------------

variable "assets_bucket_name" {
  type        = string
  description = "Name of the region's assets bucket (the replication destination); globally unique."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.assets_bucket_name))
    error_message = "assets_bucket_name must be a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)."
  }
}

variable "log_bucket_name" {
  type        = string
  description = "Name of the region's log bucket (ALB, CloudFront and S3 access logs); globally unique."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.log_bucket_name))
    error_message = "log_bucket_name must be a valid S3 bucket name."
  }
}

variable "assets_api_prefix" {
  type        = string
  description = "Key prefix inside the assets bucket that the API may read (and nothing else of the bucket)."
  default     = "game/"

  validation {
    condition     = can(regex("^[a-zA-Z0-9!_.*'()-]+(/[a-zA-Z0-9!_.*'()-]+)*/$", var.assets_api_prefix))
    error_message = "assets_api_prefix must be a relative key prefix ending with /, e.g. game/."
  }
}

variable "source_bucket_name" {
  type        = string
  description = "Name of the existing assets bucket in the source region (versioned); its replication configuration is written through the aws.source provider."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.source_bucket_name))
    error_message = "source_bucket_name must be a valid S3 bucket name."
  }
}

variable "source_bucket_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key that encrypts the source bucket's objects; the replication role may decrypt with it, through S3 only."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.source_bucket_kms_key_arn))
    error_message = "source_bucket_kms_key_arn must be a KMS key ARN (not an alias)."
  }
}

variable "peer_replicas" {
  type = map(object({
    bucket_arn  = string
    kms_key_arn = string
  }))
  description = "Other target regions' assets buckets that the source bucket already replicates to, keyed by region. S3 keeps ONE replication configuration per bucket, so every root writes the whole set: this region's rule plus these."
  default     = {}

  validation {
    condition = alltrue([for region, replica in var.peer_replicas :
      can(regex("^[a-z]{2}-[a-z]+-[0-9]$", region)) &&
      can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", replica.bucket_arn)) &&
    can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", replica.kms_key_arn))])
    error_message = "peer_replicas must be keyed by region name, with an S3 bucket ARN and a KMS key ARN for each."
  }
}

variable "assets_domain_name" {
  type        = string
  description = "Host name players fetch this region's assets from through CloudFront (e.g. assets-apne1.game.example)."

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.assets_domain_name))
    error_message = "assets_domain_name must be a lowercase DNS name."
  }
}

variable "assets_certificate_arn" {
  type        = string
  description = "ARN of the ACM certificate for assets_domain_name, issued in us-east-1 (CloudFront only accepts certificates from us-east-1)."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/[0-9a-f-]+$", var.assets_certificate_arn))
    error_message = "assets_certificate_arn must be an ACM certificate ARN in us-east-1."
  }
}

variable "cloudfront_price_class" {
  type        = string
  description = "CloudFront price class of the assets distribution (PriceClass_All serves APAC players from APAC edges)."
  default     = "PriceClass_All"

  validation {
    condition     = contains(["PriceClass_All", "PriceClass_200", "PriceClass_100"], var.cloudfront_price_class)
    error_message = "cloudfront_price_class must be PriceClass_All, PriceClass_200 or PriceClass_100."
  }
}

# ---------------------------------------------------------------------------------------------
# DNS, health check and alarms
# ---------------------------------------------------------------------------------------------

variable "hosted_zone_id" {
  type        = string
  description = "ID of the public Route 53 hosted zone game.example."

  validation {
    condition     = can(regex("^Z[A-Z0-9]{1,31}$", var.hosted_zone_id))
    error_message = "hosted_zone_id must be a Route 53 hosted zone ID (Z...)."
  }
}

variable "api_record_name" {
  type        = string
  description = "DNS name players resolve for the API (geolocation front); this region adds a weighted alias record to its geography's pool under it."
  default     = "api.game.example"

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.api_record_name))
    error_message = "api_record_name must be a lowercase DNS name."
  }
}

variable "geography" {
  type        = string
  description = "Player geography this region serves (apac, na, eu): its weighted record lives in that geography's pool <geography>.<api_record_name>."

  validation {
    condition     = contains(["apac", "na", "eu"], var.geography)
    error_message = "geography must be one of apac, na, eu."
  }
}

variable "api_weight" {
  type        = number
  description = "Route 53 weight of this region's weighted record for api_record_name: 0 at stand-up (no player traffic), stepped by shift-traffic."
  default     = 0

  validation {
    condition     = var.api_weight >= 0 && var.api_weight <= 255 && floor(var.api_weight) == var.api_weight
    error_message = "api_weight must be an integer from 0 to 255."
  }
}

variable "health_check_failure_threshold" {
  type        = number
  description = "Consecutive failed Route 53 health checks before the region's records are taken out of DNS answers."
  default     = 3

  validation {
    condition     = var.health_check_failure_threshold >= 1 && var.health_check_failure_threshold <= 10
    error_message = "health_check_failure_threshold must be between 1 and 10."
  }
}

variable "alb_5xx_rate_threshold_percent" {
  type        = number
  description = "Share of API requests answered with a 5xx (ALB or target) above which the 5xx alarm fires, in percent."
  default     = 1

  validation {
    condition     = var.alb_5xx_rate_threshold_percent > 0 && var.alb_5xx_rate_threshold_percent <= 100
    error_message = "alb_5xx_rate_threshold_percent must be in (0, 100]."
  }
}

variable "p95_latency_threshold_ms" {
  type        = number
  description = "p95 of the ALB's TargetResponseTime above which the latency alarm fires, in milliseconds (server time only; the player-facing goal is p95 < 80 ms including the network)."
  default     = 50

  validation {
    condition     = var.p95_latency_threshold_ms > 0
    error_message = "p95_latency_threshold_ms must be positive."
  }
}

variable "alarm_email" {
  type        = string
  description = "Optional e-mail address subscribed to the region's alarm topic (empty: subscribe on-call tooling to the topic instead)."
  default     = ""

  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be empty or an e-mail address."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the ALB and the Aurora secondary from deletion. Rolling back stand-up-region (terraform destroy) needs an apply with false first; the runbook says when that is safe."
  default     = true
}

variable "home_shard" {
  type        = bool
  description = "True once `migrate phase run cutover` made this region the writer of the players it homes: its cluster then writes a global cluster of its own (the home shard), which Terraform adopts (the root's import block) and keeps."
  default     = false
}

variable "home_shard_secondaries" {
  type        = map(string)
  description = "Other regions' home shards this region keeps a secondary of, so their players are read here: home region → the shard's global cluster identifier (\"<name_prefix>-home-<region>\"). Empty until those regions are cut over."
  default     = {}

  validation {
    condition     = alltrue([for home, id in var.home_shard_secondaries : can(regex("^[a-z]{2}-[a-z]+-[0-9]$", home)) && can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,62}$", id))])
    error_message = "home_shard_secondaries maps a region name (e.g. eu-central-1) to a global cluster identifier (a letter, then letters, digits and hyphens; max 63)."
  }
}
