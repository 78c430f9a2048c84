# The region module: everything one target region needs to serve the game API at 0 % traffic,
# with its Aurora secondary joined to the global cluster and its assets replicated from the source.
#
# Two AWS providers:
#   aws         the target region (ap-northeast-1, eu-central-1, ...): almost everything lives here;
#   aws.source  the source region (us-east-1): the replication configuration of the source assets
#               bucket (S3 keeps replication rules on the bucket copied FROM), and the CloudFront web
#               ACL with its log group and key (CloudFront-scoped WAF exists only in us-east-1).
terraform {
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source                = "hashicorp/aws"
      version               = ">= 5.80, < 7.0"
      configuration_aliases = [aws.source]
    }
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_region" "source" {
  provider = aws.source
}

locals {
  region     = data.aws_region.current.id # the region name, in provider 5.x and 6.x alike
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  source_region = data.aws_region.source.id

  # "game-apne1"-style prefix keeps every regional name unique inside the account and short
  # enough for the 32-character limits of ALB and target group names.
  name = "${var.name_prefix}-${var.region_short_name}"

  tags = merge(var.tags, {
    "game:region" = local.region
    "game:module" = "region"
  })

  # Route 53 set identifiers: unique per region AND across record names (moto's DELETE matches on
  # the set identifier alone, so a weighted and a latency record must never share one).
  # Routing is scoped per player geography: the API name answers each geography with its pool name, and
  # the region's records live in its geography's pool (migrate/providers/aws/dns.py, same names).
  pool_record_name        = "${var.geography}.${var.api_record_name}"
  weighted_set_identifier = "${local.region}-${var.geography}-weighted"
  latency_set_identifier  = "${local.region}-${var.geography}-latency"

  # Application secrets and runtime configuration live under one SSM path per region; the task
  # role and the execution role can read that path and nothing else.
  ssm_path = "/${var.name_prefix}/${local.region}/api"
}
