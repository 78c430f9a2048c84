# Route 53 for the region (hosted zone game.example):
#
#   <geography>.api.game.example   weighted alias → this region's ALB, set "<region>-<geography>-weighted",
#                                  weight var.api_weight (0 at stand-up; stepped by shift-traffic)
#   assets_domain_name             A and AAAA aliases → this region's CloudFront distribution
#
# Routing is scoped per player geography: api.game.example holds one geolocation alias per geography
# ("geo-<geography>") answering with that geography's pool name, so shift-traffic moves one geography
# at a time. The front and each pool's source-region record are the source's (made once, see
# runbooks/shift-traffic.md); this module adds the region's weight-0 record to its geography's pool.
# shift-traffic's end state swaps the pool's weighted records for latency records
# ("<region>-<geography>-latency", with this health check) in one change batch — the phase owns the
# pool's routing from then on. After that swap, do not re-apply this root with the weighted record
# in it (Route 53 refuses a second routing policy on the pool name): the runbook says how.

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
  name           = local.pool_record_name
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
