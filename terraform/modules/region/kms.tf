# Customer-managed KMS keys, one per kind of data so that a grant on one never opens another:
#   ops      CloudWatch log groups, the alarm topic, SSM parameters (secrets of the API)
#   assets   the assets bucket (replicas written by S3 replication, read through CloudFront)
#   database Aurora storage and Performance Insights
#   cache    ElastiCache Redis at rest
# All rotate yearly. Every key policy keeps the account root statement (so that IAM policies,
# not the key policy, grant day-to-day use) and adds only the service principals that cannot use
# IAM: CloudWatch Logs, CloudWatch alarms (to publish to the encrypted topic) and CloudFront.

locals {
  kms_deletion_window_days = 30
}

data "aws_iam_policy_document" "kms_account_root" {
  #checkov:skip=CKV_AWS_109:This document is a KMS key policy, not an IAM policy: the account-root statement is AWS's default key policy and only delegates the key's administration to IAM policies of this account.
  #checkov:skip=CKV_AWS_111:This document is a KMS key policy: kms:* for the account root lets IAM policies (not the key policy) decide who uses the key, as AWS's default key policy does.
  #checkov:skip=CKV_AWS_356:This document is a KMS key policy: Resource "*" in a key policy means the key the policy is attached to, nothing else.
  statement {
    sid       = "AccountAdministersKeyThroughIam"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy "*" means this key only

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

data "aws_iam_policy_document" "kms_ops" {
  source_policy_documents = [data.aws_iam_policy_document.kms_account_root.json]

  statement {
    sid    = "CloudWatchLogsEncryptsThisRegionsLogGroups"
    effect = "Allow"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:DescribeKey",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "kms_assets" {
  source_policy_documents = [data.aws_iam_policy_document.kms_account_root.json]

  statement {
    sid       = "CloudFrontReadsAssetsThroughOriginAccessControl"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.assets.arn]
    }
  }
}

resource "aws_kms_key" "ops" {
  description             = "${local.name}: CloudWatch logs, alarm topic and API secrets in SSM"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = local.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_ops.json

  tags = local.tags
}

resource "aws_kms_alias" "ops" {
  name          = "alias/${local.name}-ops"
  target_key_id = aws_kms_key.ops.key_id
}

resource "aws_kms_key" "assets" {
  description             = "${local.name}: assets bucket (S3 replication destination, CloudFront origin)"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = local.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_assets.json

  tags = local.tags
}

resource "aws_kms_alias" "assets" {
  name          = "alias/${local.name}-assets"
  target_key_id = aws_kms_key.assets.key_id
}

resource "aws_kms_key" "database" {
  description             = "${local.name}: Aurora secondary cluster storage and Performance Insights"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = local.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_account_root.json

  tags = local.tags
}

resource "aws_kms_alias" "database" {
  name          = "alias/${local.name}-database"
  target_key_id = aws_kms_key.database.key_id
}

resource "aws_kms_key" "cache" {
  description             = "${local.name}: ElastiCache Redis data at rest"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = local.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_account_root.json

  tags = local.tags
}

resource "aws_kms_alias" "cache" {
  name          = "alias/${local.name}-cache"
  target_key_id = aws_kms_key.cache.key_id
}
