# The region's assets behind CloudFront. The bucket stays private: CloudFront signs its origin
# requests (origin access control, SigV4) and the bucket policy admits this distribution only.
# Players fetch assets from assets_domain_name over TLS 1.2+ with the us-east-1 certificate.

locals {
  assets_origin_id = "assets-${local.region}"
}

# AWS managed CloudFront policies, looked up by name rather than hard-coded IDs.
data "aws_cloudfront_cache_policy" "caching_optimized" {
  name = "Managed-CachingOptimized"
}

data "aws_cloudfront_response_headers_policy" "security_headers" {
  name = "Managed-SecurityHeadersPolicy"
}

resource "aws_cloudfront_origin_access_control" "assets" {
  name                              = "${local.name}-assets"
  description                       = "CloudFront signs requests to ${var.assets_bucket_name}"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

resource "aws_cloudfront_distribution" "assets" {
  #checkov:skip=CKV_AWS_374:Players of the game are worldwide by design; no country is to be refused the game's assets.
  #checkov:skip=CKV2_AWS_47:AWSManagedRulesAnonymousIpList would refuse players behind VPNs and cloud-gaming hosts; the Log4j protection itself (Log4JRCE rules) comes from AWSManagedRulesKnownBadInputsRuleSet, which the web ACL has.
  #checkov:skip=CKV_AWS_310:The only origin is this region's bucket; the other regions' buckets hold the same replicated objects behind their own distributions and Route 53 chooses between regions, so an origin group here would only add a cross-region hop.
  comment             = "Game assets of ${local.region} (${var.assets_bucket_name})"
  enabled             = true
  is_ipv6_enabled     = true
  http_version        = "http2and3"
  price_class         = var.cloudfront_price_class
  aliases             = [var.assets_domain_name]
  web_acl_id          = aws_wafv2_web_acl.assets.arn
  default_root_object = "index.html"

  origin {
    origin_id                = local.assets_origin_id
    domain_name              = aws_s3_bucket.assets.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.assets.id
  }

  default_cache_behavior {
    target_origin_id           = local.assets_origin_id
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    viewer_protocol_policy     = "redirect-to-https"
    compress                   = true
    cache_policy_id            = data.aws_cloudfront_cache_policy.caching_optimized.id
    response_headers_policy_id = data.aws_cloudfront_response_headers_policy.security_headers.id
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    acm_certificate_arn      = var.assets_certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }

  logging_config {
    bucket          = aws_s3_bucket.logs.bucket_domain_name
    prefix          = "cloudfront/"
    include_cookies = false
  }

  tags = local.tags

  depends_on = [aws_s3_bucket_ownership_controls.logs]
}

# CloudFront web ACLs live in us-east-1 (scope CLOUDFRONT), hence the source-region provider.
resource "aws_wafv2_web_acl" "assets" {
  provider = aws.source

  name        = "${local.name}-assets"
  description = "Game assets of ${local.region}: AWS managed protections and a per-IP rate limit"
  scope       = "CLOUDFRONT"

  default_action {
    allow {}
  }

  rule {
    name     = "aws-known-bad-inputs"
    priority = 10

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.name}-assets-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "per-ip-rate-limit"
    priority = 20

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit              = var.waf_rate_limit_per_ip * 10
        aggregate_key_type = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.name}-assets-rate-limit"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${local.name}-assets"
    sampled_requests_enabled   = true
  }

  tags = local.tags
}

# Logs of the CloudFront web ACL: like the ACL, they live in us-east-1, encrypted with a key of
# that region (KMS keys never leave their region).
data "aws_iam_policy_document" "kms_edge" {
  source_policy_documents = [data.aws_iam_policy_document.kms_account_root.json]

  statement {
    sid    = "CloudWatchLogsEncryptsEdgeLogGroups"
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
      identifiers = ["logs.${local.source_region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.source_region}:${local.account_id}:log-group:*"]
    }
  }
}

resource "aws_kms_key" "edge" {
  provider = aws.source

  description             = "${local.name}: logs of the assets CloudFront web ACL (us-east-1)"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = local.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_edge.json

  tags = local.tags
}

resource "aws_cloudwatch_log_group" "waf_assets" {
  provider = aws.source

  name              = "aws-waf-logs-${local.name}-assets"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = aws_kms_key.edge.arn

  tags = local.tags
}

data "aws_iam_policy_document" "waf_assets_logs_delivery" {
  statement {
    sid       = "WafDeliversLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.waf_assets.arn}:*"]

    principals {
      type        = "Service"
      identifiers = ["delivery.logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:logs:${local.source_region}:${local.account_id}:*"]
    }
  }
}

resource "aws_cloudwatch_log_resource_policy" "waf_assets" {
  provider = aws.source

  policy_name     = "${local.name}-waf-assets-logs-delivery"
  policy_document = data.aws_iam_policy_document.waf_assets_logs_delivery.json
}

resource "aws_wafv2_web_acl_logging_configuration" "assets" {
  provider = aws.source

  resource_arn            = aws_wafv2_web_acl.assets.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf_assets.arn]

  depends_on = [aws_cloudwatch_log_resource_policy.waf_assets]
}
