# CloudWatch alarms the migration's gates and the on-call rota watch, published to an encrypted
# SNS topic of the region:
#   aurora-replication-lag  AuroraGlobalDBReplicationLag of this secondary (ms) over the lag budget
#   api-5xx-rate            (ELB 5xx + target 5xx) / requests, in percent
#   api-p95-latency         p95 of TargetResponseTime (server time)
# Missing data leaves an alarm in INSUFFICIENT_DATA ("no data is never a pass").

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = aws_kms_key.ops.arn

  tags = local.tags
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email == "" ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_cloudwatch_metric_alarm" "aurora_replication_lag" {
  alarm_name        = "${local.name}-aurora-replication-lag"
  alarm_description = "Aurora global replication lag of ${aws_rds_cluster.secondary.cluster_identifier} above ${var.aurora_replication_lag_threshold_ms} ms: reads in ${local.region} are stale beyond the budget."

  namespace           = "AWS/RDS"
  metric_name         = "AuroraGlobalDBReplicationLag"
  dimensions          = { DBClusterIdentifier = aws_rds_cluster.secondary.cluster_identifier }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.aurora_replication_lag_threshold_ms
  treat_missing_data  = "missing"

  alarm_actions = [aws_sns_topic.alarms.arn]
  ok_actions    = [aws_sns_topic.alarms.arn]

  tags = local.tags
}

resource "aws_cloudwatch_metric_alarm" "api_5xx_rate" {
  alarm_name        = "${local.name}-api-5xx-rate"
  alarm_description = "More than ${var.alb_5xx_rate_threshold_percent} % of game API requests in ${local.region} answered 5xx (ALB or tasks)."

  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alb_5xx_rate_threshold_percent
  treat_missing_data  = "missing"

  metric_query {
    id          = "rate"
    label       = "5xx share of requests (%)"
    expression  = "IF(requests > 0, 100 * (FILL(elb5xx, 0) + FILL(target5xx, 0)) / requests, 0)"
    return_data = true
  }

  metric_query {
    id = "requests"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = { LoadBalancer = aws_lb.api.arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "elb5xx"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_ELB_5XX_Count"
      dimensions  = { LoadBalancer = aws_lb.api.arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "target5xx"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      dimensions  = { LoadBalancer = aws_lb.api.arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }

  alarm_actions = [aws_sns_topic.alarms.arn]
  ok_actions    = [aws_sns_topic.alarms.arn]

  tags = local.tags
}

resource "aws_cloudwatch_metric_alarm" "api_p95_latency" {
  alarm_name        = "${local.name}-api-p95-latency"
  alarm_description = "p95 target response time of the game API in ${local.region} above ${var.p95_latency_threshold_ms} ms."

  namespace   = "AWS/ApplicationELB"
  metric_name = "TargetResponseTime"
  dimensions = {
    LoadBalancer = aws_lb.api.arn_suffix
    TargetGroup  = aws_lb_target_group.api.arn_suffix
  }
  extended_statistic  = "p95"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.p95_latency_threshold_ms / 1000 # TargetResponseTime is in seconds
  treat_missing_data  = "missing"

  alarm_actions = [aws_sns_topic.alarms.arn]
  ok_actions    = [aws_sns_topic.alarms.arn]

  tags = local.tags
}
