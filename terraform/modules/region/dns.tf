# Route 53 for the region (hosted zone game.example):
#
#   api.game.example            weighted alias → this region's ALB, set "<region>-weighted",
#                               weight var.api_weight (0 at stand-up; stepped by shift-traffic)
#   latency.api.game.example    latency alias  → this region's ALB, set "<region>-latency"
#   assets_domain_name          A and AAAA aliases → this region's CloudFront distribution
#
# Route 53 refuses two routing policies on one name and type, so the latency set lives on its own
# name. The end state of shift-traffic follows AWS's "transitioning to latency-based routing"
# pattern: one more weighted alias on api.game.example points at latency.api.game.example and
# takes the whole weight, while the per-region weighted records drop to 0. Both records of the
# region answer only while its health check passes.

resource "aws_route53_health_check" "api" {
  fqdn              = aws_lb.api.dns_name
  port              = 443
  type              = "HTTPS"
  resource_path     = var.api_health_check_path
  failure_threshold = var.health_check_failure_threshold
  request_interval  = 10
  measure_latency   = true
  enable_sni        = true

  tags = merge(local.tags, { Name = "${local.name}-api" })
}

resource "aws_route53_record" "api_weighted" {
  zone_id        = var.hosted_zone_id
  name           = var.api_record_name
  type           = "A"
  set_identifier = local.weighted_set_identifier

  weighted_routing_policy {
    weight = var.api_weight
  }

  alias {
    name                   = aws_lb.api.dns_name
    zone_id                = aws_lb.api.zone_id
    evaluate_target_health = true
  }

  health_check_id = aws_route53_health_check.api.id

  # After creation the weight belongs to `migrate phase run shift-traffic`, which moves it step by
  # step with gates; a later `terraform apply` must not snap it back to var.api_weight.
  lifecycle {
    ignore_changes = [weighted_routing_policy]
  }
}

resource "aws_route53_record" "api_latency" {
  zone_id        = var.hosted_zone_id
  name           = var.latency_record_name
  type           = "A"
  set_identifier = local.latency_set_identifier

  latency_routing_policy {
    region = local.region
  }

  alias {
    name                   = aws_lb.api.dns_name
    zone_id                = aws_lb.api.zone_id
    evaluate_target_health = true
  }

  health_check_id = aws_route53_health_check.api.id
}

resource "aws_route53_record" "assets" {
  zone_id = var.hosted_zone_id
  name    = var.assets_domain_name
  type    = "A"

  alias {
    name                   = aws_cloudfront_distribution.assets.domain_name
    zone_id                = aws_cloudfront_distribution.assets.hosted_zone_id
    evaluate_target_health = false
  }
}

resource "aws_route53_record" "assets_ipv6" {
  zone_id = var.hosted_zone_id
  name    = var.assets_domain_name
  type    = "AAAA"

  alias {
    name                   = aws_cloudfront_distribution.assets.domain_name
    zone_id                = aws_cloudfront_distribution.assets.hosted_zone_id
    evaluate_target_health = false
  }
}
