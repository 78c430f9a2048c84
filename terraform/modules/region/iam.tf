# IAM roles, each with only what its one job needs. Role names carry the region because IAM is
# global: the Tokyo and Frankfurt roots create their roles side by side in one account.
#
#   task execution role  pull the API image from its one ECR repository, write the API log group,
#                        read the API's secrets under the region's SSM path (for ECS `secrets`)
#   task role            what the running API may do: read its own prefix of the assets bucket and
#                        its own SSM path (which holds shadow-traffic's switch, <ssm_path>/shadow,
#                        and the home routing map, <ssm_path>/home-routing);
#                        nothing else
#   replication role     S3 copies objects from the source bucket into this region's bucket
#   flow logs role       VPC flow logs write to their log group
#   monitoring role      Aurora enhanced monitoring (AWS-managed policy made for exactly this)

locals {
  ssm_path_arn = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.ssm_path}"
}

# ---------------------------------------------------------------------------------------------
# ECS task execution role
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    # Only tasks of this account, in this region, may assume the roles (confused-deputy guard).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "task_execution" {
  name                 = "${local.name}-api-task-execution"
  description          = "ECS pulls the game API image, writes its logs and injects its secrets (${local.region})"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  max_session_duration = 3600

  tags = local.tags
}

data "aws_iam_policy_document" "task_execution" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions
  }

  statement {
    sid = "PullApiImageOnly"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [var.api_image_repository_arn]
  }

  statement {
    sid       = "WriteApiLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.api.arn}:*"]
  }

  statement {
    sid       = "ReadApiSecrets"
    actions   = ["ssm:GetParameters"]
    resources = ["${local.ssm_path_arn}/*"]
  }

  statement {
    sid       = "DecryptApiSecrets"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.ops.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "task_execution" {
  name   = "pull-image-write-logs-read-secrets"
  role   = aws_iam_role.task_execution.id
  policy = data.aws_iam_policy_document.task_execution.json
}

# ---------------------------------------------------------------------------------------------
# ECS task role (the running API)
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "task" {
  name                 = "${local.name}-api-task"
  description          = "The running game API: reads its assets prefix and its SSM path (${local.region})"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  max_session_duration = 3600

  tags = local.tags
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "ReadOwnAssetsPrefix"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.assets.arn}/${var.assets_api_prefix}*"]
  }

  statement {
    sid       = "ListOwnAssetsPrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.assets.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.assets_api_prefix}*"]
    }
  }

  statement {
    sid       = "DecryptAssetsThroughS3"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.assets.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid = "ReadOwnSsmPath"
    actions = [
      "ssm:GetParameter",
      "ssm:GetParameters",
      "ssm:GetParametersByPath",
    ]
    resources = [local.ssm_path_arn, "${local.ssm_path_arn}/*"]
  }

  statement {
    sid       = "DecryptOwnSsmPath"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.ops.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "read-own-assets-prefix-and-ssm-path"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# ---------------------------------------------------------------------------------------------
# S3 replication role (source bucket in us-east-1 → this region's bucket)
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "s3_replication_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "replication" {
  name                 = "${local.name}-assets-replication"
  description          = "S3 replicates ${var.source_bucket_name} into ${var.assets_bucket_name} (and the peer replicas of the same configuration)"
  assume_role_policy   = data.aws_iam_policy_document.s3_replication_assume.json
  max_session_duration = 3600

  tags = local.tags
}

locals {
  source_bucket_arn = "arn:${local.partition}:s3:::${var.source_bucket_name}"

  # Every destination of the source bucket's (single) replication configuration.
  replica_bucket_arns  = concat([aws_s3_bucket.assets.arn], [for replica in values(var.peer_replicas) : replica.bucket_arn])
  replica_kms_key_arns = concat([aws_kms_key.assets.arn], [for replica in values(var.peer_replicas) : replica.kms_key_arn])
}

data "aws_iam_policy_document" "replication" {
  statement {
    sid       = "ReadSourceReplicationConfiguration"
    actions   = ["s3:GetReplicationConfiguration", "s3:ListBucket"]
    resources = [local.source_bucket_arn]
  }

  statement {
    sid = "ReadSourceObjectVersions"
    actions = [
      "s3:GetObjectVersionForReplication",
      "s3:GetObjectVersionAcl",
      "s3:GetObjectVersionTagging",
    ]
    resources = ["${local.source_bucket_arn}/*"]
  }

  statement {
    sid = "WriteReplicas"
    actions = [
      "s3:ReplicateObject",
      "s3:ReplicateDelete",
      "s3:ReplicateTags",
    ]
    resources = [for arn in local.replica_bucket_arns : "${arn}/*"]
  }

  statement {
    sid       = "DecryptSourceObjectsThroughS3"
    actions   = ["kms:Decrypt"]
    resources = [var.source_bucket_kms_key_arn]

    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["s3.*.amazonaws.com"]
    }
  }

  statement {
    sid       = "EncryptReplicasThroughS3"
    actions   = ["kms:Encrypt", "kms:GenerateDataKey"]
    resources = local.replica_kms_key_arns

    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["s3.*.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "replication" {
  name   = "replicate-source-assets"
  role   = aws_iam_role.replication.id
  policy = data.aws_iam_policy_document.replication.json
}

# ---------------------------------------------------------------------------------------------
# VPC flow logs role
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "flow_logs" {
  name                 = "${local.name}-vpc-flow-logs"
  description          = "VPC flow logs of ${local.name} write to their log group"
  assume_role_policy   = data.aws_iam_policy_document.flow_logs_assume.json
  max_session_duration = 3600

  tags = local.tags
}

data "aws_iam_policy_document" "flow_logs" {
  statement {
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "logs:DescribeLogStreams",
    ]
    resources = ["${aws_cloudwatch_log_group.flow_logs.arn}:*"]
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  name   = "write-flow-logs"
  role   = aws_iam_role.flow_logs.id
  policy = data.aws_iam_policy_document.flow_logs.json
}

# ---------------------------------------------------------------------------------------------
# Aurora enhanced monitoring role
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name                 = "${local.name}-aurora-monitoring"
  description          = "Aurora enhanced monitoring of ${local.name} publishes OS metrics"
  assume_role_policy   = data.aws_iam_policy_document.rds_monitoring_assume.json
  max_session_duration = 3600

  tags = local.tags
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}
