# Two buckets per region:
#   assets  the replication destination of the source assets bucket (us-east-1), read by
#           CloudFront (origin access control) and by the API (its prefix only)
#   logs    ALB access logs, CloudFront standard logs and the assets bucket's server access logs
#
# Replication is configured on the SOURCE bucket (S3 keeps the rules on the bucket copied from),
# through the aws.source provider. S3 holds one replication configuration per bucket, so the
# configuration written here lists this region AND every peer in var.peer_replicas: applying any
# region's root converges on the same document instead of dropping the other region's rule.

# ---------------------------------------------------------------------------------------------
# Assets bucket
# ---------------------------------------------------------------------------------------------

resource "aws_s3_bucket" "assets" {
  bucket = var.assets_bucket_name

  tags = merge(local.tags, { Name = var.assets_bucket_name })
}

resource "aws_s3_bucket_ownership_controls" "assets" {
  bucket = aws_s3_bucket.assets.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "assets" {
  bucket = aws_s3_bucket.assets.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "assets" {
  bucket = aws_s3_bucket.assets.id

  versioning_configuration {
    status = "Enabled" # required of a replication destination
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "assets" {
  bucket = aws_s3_bucket.assets.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.assets.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "assets" {
  bucket = aws_s3_bucket.assets.id

  rule {
    id     = "expire-old-asset-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 90
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.assets]
}

resource "aws_s3_bucket_logging" "assets" {
  bucket        = aws_s3_bucket.assets.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3/${var.assets_bucket_name}/"
}

# Object events go to EventBridge (cache invalidation and audit rules can subscribe there).
resource "aws_s3_bucket_notification" "assets" {
  bucket      = aws_s3_bucket.assets.id
  eventbridge = true
}

data "aws_iam_policy_document" "assets_bucket" {
  statement {
    sid       = "CloudFrontReadsThroughOriginAccessControl"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.assets.arn}/*"]

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

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.assets.arn, "${aws_s3_bucket.assets.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "assets" {
  bucket = aws_s3_bucket.assets.id
  policy = data.aws_iam_policy_document.assets_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.assets]
}

# ---------------------------------------------------------------------------------------------
# Replication: source bucket (us-east-1) → this region (+ peers), configured on the source
# ---------------------------------------------------------------------------------------------

locals {
  # Every replica region → its bucket and key. Rules are ordered by region name, so both roots
  # render the same rules with the same priorities; the rules' filters overlap on purpose (every
  # object goes to every destination), and S3 needs only that their priorities differ.
  replication_destinations = merge(
    var.peer_replicas,
    { (local.region) = { bucket_arn = aws_s3_bucket.assets.arn, kms_key_arn = aws_kms_key.assets.arn } },
  )
  replication_regions = sort(keys(local.replication_destinations))
}

resource "aws_s3_bucket_replication_configuration" "source" {
  provider = aws.source

  bucket = var.source_bucket_name
  role   = aws_iam_role.replication.arn

  dynamic "rule" {
    for_each = local.replication_regions

    content {
      id       = "assets-to-${rule.value}"
      priority = rule.key
      status   = "Enabled"

      filter {}

      delete_marker_replication {
        status = "Enabled"
      }

      source_selection_criteria {
        sse_kms_encrypted_objects {
          status = "Enabled"
        }
      }

      destination {
        bucket        = local.replication_destinations[rule.value].bucket_arn
        storage_class = "STANDARD"

        encryption_configuration {
          replica_kms_key_id = local.replication_destinations[rule.value].kms_key_arn
        }

        # Replication Time Control: 99.99 % of objects within 15 minutes, with metrics to alarm on.
        replication_time {
          status = "Enabled"
          time {
            minutes = 15
          }
        }

        metrics {
          status = "Enabled"
          event_threshold {
            minutes = 15
          }
        }
      }
    }
  }

  # The destination must be versioned before S3 accepts the rule.
  depends_on = [aws_s3_bucket_versioning.assets, aws_iam_role_policy.replication]
}

# ---------------------------------------------------------------------------------------------
# Log bucket
# ---------------------------------------------------------------------------------------------

data "aws_elb_service_account" "this" {}

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_144:Access logs are regional evidence kept in the region they describe; copying them to another region adds cost and no recovery value.
  #checkov:skip=CKV_AWS_145:ALB access-log delivery only supports SSE-S3 (AES256) on the destination bucket, so this bucket cannot default to a KMS key.
  bucket = var.log_bucket_name

  tags = merge(local.tags, { Name = var.log_bucket_name })
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  #checkov:skip=CKV2_AWS_65:CloudFront standard logging delivers through the awslogsdelivery account's ACL grant, which needs ACLs enabled (BucketOwnerPreferred); the public access block still blocks every public ACL.
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerPreferred"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket = aws_s3_bucket.logs.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "archive-then-expire-logs"
    status = "Enabled"

    filter {}

    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }

    expiration {
      days = 400
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}

resource "aws_s3_bucket_notification" "logs" {
  bucket      = aws_s3_bucket.logs.id
  eventbridge = true
}

data "aws_iam_policy_document" "logs_bucket" {
  statement {
    sid       = "AlbWritesAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/alb/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "AWS"
      identifiers = [data.aws_elb_service_account.this.arn]
    }
  }

  statement {
    sid       = "S3WritesServerAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/s3/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = data.aws_iam_policy_document.logs_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.logs]
}
