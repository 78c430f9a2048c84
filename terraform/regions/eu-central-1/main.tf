# Root of the eu-central-1 (Frankfurt) region: backend, providers and one call of the region module.
# `migrate phase run stand-up-region --region eu-central-1` drives it with
#   terraform -chdir=terraform/regions/eu-central-1 init | plan | apply
# and reads `terraform output -json` afterwards. Everything else lives in ../../modules/region.

terraform {
  required_version = ">= 1.10.0" # S3 native state locking (use_lockfile)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 7.0"
    }
  }

  # State of this region lives in this region: managing Frankfurt must not depend on us-east-1 being up.
  # Native S3 locking (a .tflock object next to the state) replaces the DynamoDB lock table.
  backend "s3" {
    bucket       = "game-example-tfstate-eu-central-1"
    key          = "regions/eu-central-1/terraform.tfstate"
    region       = "eu-central-1"
    encrypt      = true
    use_lockfile = true
  }
}

locals {
  default_tags = {
    "game:project"    = "game-backend"
    "game:managed-by" = "terraform"
    "game:root"       = "regions/${var.region}"
  }
}

# The target region: everything of the module except what must live in the source region.
provider "aws" {
  region              = var.region
  allowed_account_ids = [var.aws_account_id]

  default_tags {
    tags = local.default_tags
  }
}

# The source region (us-east-1): the source bucket's replication configuration and the CloudFront
# web ACL (CloudFront-scoped WAF resources exist only in us-east-1).
provider "aws" {
  alias               = "source"
  region              = var.source_region
  allowed_account_ids = [var.aws_account_id]

  default_tags {
    tags = local.default_tags
  }
}

module "region" {
  source = "../../modules/region"

  providers = {
    aws        = aws
    aws.source = aws.source
  }

  name_prefix       = var.name_prefix
  region_short_name = var.region_short_name
  tags              = var.tags

  vpc_cidr              = var.vpc_cidr
  availability_zone_ids = var.availability_zone_ids

  api_image                = var.api_image
  api_image_repository_arn = var.api_image_repository_arn
  api_cpu_architecture     = var.api_cpu_architecture
  api_min_tasks            = var.api_min_tasks
  api_max_tasks            = var.api_max_tasks
  certificate_arn          = var.certificate_arn

  global_cluster_identifier = var.global_cluster_identifier
  global_writer_endpoint    = var.global_writer_endpoint
  aurora_engine_version     = var.aurora_engine_version
  aurora_instance_class     = var.aurora_instance_class
  aurora_instance_count     = var.aurora_instance_count

  redis_node_type  = var.redis_node_type
  redis_auth_token = var.redis_auth_token

  assets_bucket_name        = var.assets_bucket_name
  log_bucket_name           = var.log_bucket_name
  source_bucket_name        = var.source_bucket_name
  source_bucket_kms_key_arn = var.source_bucket_kms_key_arn
  peer_replicas             = var.peer_replicas
  assets_domain_name        = var.assets_domain_name
  assets_certificate_arn    = var.assets_certificate_arn

  hosted_zone_id      = var.hosted_zone_id
  api_record_name     = var.api_record_name
  geography           = var.geography
  api_weight          = var.api_weight
  deletion_protection = var.deletion_protection
  alarm_email         = var.alarm_email

  home_shard             = var.home_shard
  home_shard_secondaries = var.home_shard_secondaries
}
