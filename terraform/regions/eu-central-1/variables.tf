# Inputs of the eu-central-1 root. Values without a default come from the operator or from
# `migrate` (-var / TF_VAR_*); redis_auth_token only ever through TF_VAR_redis_auth_token.

variable "region" {
  type        = string
  description = "Target region of this root; fixed to eu-central-1 (Frankfurt) because the backend and names are per region."
  default     = "eu-central-1"

  validation {
    condition     = var.region == "eu-central-1"
    error_message = "This root manages eu-central-1 only; use terraform/regions/<region> for another region."
  }
}

variable "source_region" {
  type        = string
  description = "Region of the source world (the source assets bucket and the Aurora global writer today)."
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.source_region)) && var.source_region != var.region
    error_message = "source_region must be an AWS region name (e.g. us-east-1) different from region."
  }
}

variable "region_short_name" {
  type        = string
  description = "Short code of the region used in resource names with tight length limits."
  default     = "euc1"

  validation {
    condition     = can(regex("^[a-z]{2,4}[0-9]$", var.region_short_name))
    error_message = "region_short_name must look like euc1: 2-4 lowercase letters then one digit."
  }
}

variable "aws_account_id" {
  type        = string
  description = "ID of the production AWS account; both providers refuse to act on any other account."

  validation {
    condition     = can(regex("^[0-9]{12}$", var.aws_account_id))
    error_message = "aws_account_id must be 12 digits."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name."
  default     = "game"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix must be 2-15 characters: lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource of the region (cost centre, owner)."
  default     = {}
}

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR of the region's VPC; distinct from us-east-1 (10.0.0.0/16) and ap-northeast-1 (10.1.0.0/16)."
  default     = "10.2.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR block between /16 and /20."
  }
}

variable "availability_zone_ids" {
  type        = list(string)
  description = "The three availability zone IDs of the region the subnets, Aurora instances and Redis nodes spread over."
  default     = ["euc1-az1", "euc1-az2", "euc1-az3"]

  validation {
    condition     = length(var.availability_zone_ids) == 3 && length(distinct(var.availability_zone_ids)) == 3 && alltrue([for id in var.availability_zone_ids : can(regex("^${var.region_short_name}-az[0-9]+$", id))])
    error_message = "availability_zone_ids must be three distinct zone IDs of the region, e.g. euc1-az1."
  }
}

variable "api_image" {
  type        = string
  description = "ECR image of the game API (tag or sha256 digest), replicated to this region's registry."

  validation {
    condition     = can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[a-f0-9]{64})$", var.api_image))
    error_message = "api_image must be an ECR image reference with a tag or a sha256 digest."
  }
}

variable "api_image_repository_arn" {
  type        = string
  description = "ARN of the ECR repository of api_image."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$", var.api_image_repository_arn))
    error_message = "api_image_repository_arn must be an ECR repository ARN."
  }
}

variable "api_cpu_architecture" {
  type        = string
  description = "CPU architecture api_image is built for."
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.api_cpu_architecture)
    error_message = "api_cpu_architecture must be X86_64 or ARM64."
  }
}

variable "api_min_tasks" {
  type        = number
  description = "Fewest API tasks in the region (at least one per AZ)."
  default     = 3

  validation {
    condition     = var.api_min_tasks >= 3
    error_message = "api_min_tasks must be at least 3."
  }
}

variable "api_max_tasks" {
  type        = number
  description = "Most API tasks in the region; Frankfurt serves 15 % of the players once shifted."
  default     = 40

  validation {
    condition     = var.api_max_tasks >= var.api_min_tasks && var.api_max_tasks <= 1000
    error_message = "api_max_tasks must be at least api_min_tasks and at most 1000."
  }
}

variable "certificate_arn" {
  type        = string
  description = "ACM certificate (in eu-central-1) for api.game.example, served by the ALB."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:eu-central-1:[0-9]{12}:certificate/[0-9a-f-]+$", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN in eu-central-1."
  }
}

variable "global_cluster_identifier" {
  type        = string
  description = "Identifier of the Aurora global cluster the region's secondary joins."
  default     = "game-global"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,62}$", var.global_cluster_identifier))
    error_message = "global_cluster_identifier must start with a letter and contain only letters, digits and hyphens."
  }
}

variable "global_writer_endpoint" {
  type        = string
  description = "Global writer endpoint of the Aurora global cluster (the API's WRITER_DSN host)."

  validation {
    condition     = can(regex("^[a-z0-9.-]+\\.amazonaws\\.com$", var.global_writer_endpoint))
    error_message = "global_writer_endpoint must be an Aurora endpoint host name."
  }
}

variable "aurora_engine_version" {
  type        = string
  description = "Aurora PostgreSQL version of the global cluster's primary (MAJOR.MINOR); the secondary must run exactly this version."

  validation {
    condition     = can(regex("^[0-9]{2}\\.[0-9]{1,2}$", var.aurora_engine_version))
    error_message = "aurora_engine_version must be MAJOR.MINOR, e.g. 15.4."
  }
}

variable "aurora_instance_class" {
  type        = string
  description = "Instance class of the region's Aurora instances."
  default     = "db.r6g.large"

  validation {
    condition     = can(regex("^db\\.(r[5-8][a-z]*|x2g)\\.[0-9]*x?large$", var.aurora_instance_class))
    error_message = "aurora_instance_class must be a memory-optimised class supported by Aurora global databases."
  }
}

variable "aurora_instance_count" {
  type        = number
  description = "Number of Aurora instances in the region's secondary cluster."
  default     = 2

  validation {
    condition     = var.aurora_instance_count >= 1 && var.aurora_instance_count <= 15
    error_message = "aurora_instance_count must be between 1 and 15."
  }
}

variable "redis_node_type" {
  type        = string
  description = "ElastiCache node type of the region's Redis."
  default     = "cache.r7g.large"

  validation {
    condition     = startswith(var.redis_node_type, "cache.")
    error_message = "redis_node_type must be an ElastiCache node type (cache.*)."
  }
}

variable "redis_auth_token" {
  type        = string
  description = "Redis AUTH token of the region (16-128 characters); set TF_VAR_redis_auth_token from the secrets store, never a file in the repository."
  sensitive   = true

  validation {
    condition     = length(var.redis_auth_token) >= 16 && length(var.redis_auth_token) <= 128
    error_message = "redis_auth_token must be 16-128 characters long."
  }
}

variable "assets_bucket_name" {
  type        = string
  description = "Name of the region's assets bucket (replication destination)."
  default     = "game-example-assets-eu-central-1"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.assets_bucket_name))
    error_message = "assets_bucket_name must be a valid S3 bucket name."
  }
}

variable "log_bucket_name" {
  type        = string
  description = "Name of the region's log bucket."
  default     = "game-example-logs-eu-central-1"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.log_bucket_name))
    error_message = "log_bucket_name must be a valid S3 bucket name."
  }
}

variable "source_bucket_name" {
  type        = string
  description = "Name of the existing, versioned assets bucket in the source region."
  default     = "game-example-assets-us-east-1"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.source_bucket_name))
    error_message = "source_bucket_name must be a valid S3 bucket name."
  }
}

variable "source_bucket_kms_key_arn" {
  type        = string
  description = "KMS key ARN of the source assets bucket's objects."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.source_bucket_kms_key_arn))
    error_message = "source_bucket_kms_key_arn must be a KMS key ARN."
  }
}

variable "peer_replicas" {
  type = map(object({
    bucket_arn  = string
    kms_key_arn = string
  }))
  description = "Other target regions the source bucket already replicates to (from their roots' assets_bucket_arn and assets_kms_key_arn outputs), keyed by region; S3 keeps one replication configuration per bucket, so it must list them all."
  default     = {}

  validation {
    condition     = alltrue([for region in keys(var.peer_replicas) : can(regex("^[a-z]{2}-[a-z]+-[0-9]$", region)) && region != var.region && region != var.source_region])
    error_message = "peer_replicas must be keyed by other target regions' names (not this region, not the source region)."
  }
}

variable "assets_domain_name" {
  type        = string
  description = "Host name of the region's assets CDN."
  default     = "assets-euc1.game.example"

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.assets_domain_name))
    error_message = "assets_domain_name must be a lowercase DNS name."
  }
}

variable "assets_certificate_arn" {
  type        = string
  description = "ACM certificate in us-east-1 for assets_domain_name (CloudFront)."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/[0-9a-f-]+$", var.assets_certificate_arn))
    error_message = "assets_certificate_arn must be an ACM certificate ARN in us-east-1."
  }
}

variable "hosted_zone_id" {
  type        = string
  description = "ID of the public hosted zone game.example."

  validation {
    condition     = can(regex("^Z[A-Z0-9]{1,31}$", var.hosted_zone_id))
    error_message = "hosted_zone_id must be a Route 53 hosted zone ID."
  }
}

variable "api_record_name" {
  type        = string
  description = "API name players resolve."
  default     = "api.game.example"

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.api_record_name))
    error_message = "api_record_name must be a lowercase DNS name."
  }
}

variable "geography" {
  type        = string
  description = "Player geography this region serves first: its weighted record goes into that geography's pool."
  default     = "eu"

  validation {
    condition     = contains(["apac", "na", "eu"], var.geography)
    error_message = "geography must be one of apac, na, eu."
  }
}

variable "api_weight" {
  type        = number
  description = "Route 53 weight of the region's weighted API record: 0 at stand-up, stepped by shift-traffic (0-255)."
  default     = 0

  validation {
    condition     = var.api_weight >= 0 && var.api_weight <= 255 && floor(var.api_weight) == var.api_weight
    error_message = "api_weight must be an integer from 0 to 255."
  }
}

variable "alarm_email" {
  type        = string
  description = "Optional e-mail address for the region's alarms (empty: none)."
  default     = ""

  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be empty or an e-mail address."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the ALB and the Aurora secondary from deletion; set false (and apply) only to roll the region back."
  default     = true
}

variable "home_shard" {
  type        = bool
  description = "Set true once this region's cutover has run: Terraform adopts the home shard (global cluster) the cutover created (home_shard.tf's import block) and keeps it."
  default     = false
}

variable "home_shard_secondaries" {
  type        = map(string)
  description = "Other regions' home shards this region keeps a secondary of: home region → global cluster identifier (\"game-home-<region>\"); add one after that region's cutover."
  default     = {}
}
