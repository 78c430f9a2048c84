# The stateless game API on ECS Fargate: one service behind the ALB, in the private subnets of all
# three AZs, scaled on CPU and on requests per task. It reads through the region's Aurora reader
# endpoint, writes through the global writer endpoint, and keeps sessions, leaderboards and
# matchmaking in the region's Redis. Secrets arrive as ECS secrets from the region's SSM path.

resource "aws_ecs_cluster" "this" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = local.tags
}

resource "aws_cloudwatch_log_group" "api" {
  name              = "/${var.name_prefix}/${local.region}/api"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = aws_kms_key.ops.arn

  tags = local.tags
}

# The Redis URL carries the AUTH token, so the whole URL is a secret. Terraform state holds it as
# it holds auth_token itself: keep the state bucket encrypted and access-controlled.
resource "aws_ssm_parameter" "redis_url" {
  name        = "${local.ssm_path}/redis-url"
  description = "rediss:// URL (with AUTH token) of ${aws_elasticache_replication_group.redis.replication_group_id}"
  type        = "SecureString"
  key_id      = aws_kms_key.ops.arn
  value       = "rediss://:${urlencode(var.redis_auth_token)}@${aws_elasticache_replication_group.redis.primary_endpoint_address}:6379/0"

  tags = local.tags
}

locals {
  # Created by the operators of the global database (the API role's password), not by Terraform:
  # a password in Terraform state would be readable by everyone who can plan.
  db_password_parameter_arn = "${local.ssm_path_arn}/db-password"

  # rds.force_ssl=1 refuses plaintext; `require` encrypts without shipping the RDS CA bundle in
  # the image (verify-full would need it).
  api_environment = merge(var.api_environment, {
    REGION         = local.region
    WRITER_DSN     = "host=${var.global_writer_endpoint} port=5432 dbname=${var.db_name} user=${var.db_user} sslmode=require"
    READER_DSN     = "host=${aws_rds_cluster.secondary.reader_endpoint} port=5432 dbname=${var.db_name} user=${var.db_user} sslmode=require"
    ASSET_BUCKET   = aws_s3_bucket.assets.id
    ASSET_PREFIX   = var.assets_api_prefix
    ASSET_BASE_URL = "https://${var.assets_domain_name}"
    SSM_PATH       = local.ssm_path
    # shadow-traffic's switch: written by `migrate` (never by Terraform), polled by every task; the
    # task role's ReadOwnSsmPath covers it. The mirror's figures leave as EMF lines on stdout, which
    # awslogs ships and CloudWatch turns into Game/Shadow metrics: no CloudWatch permission needed.
    SHADOW_PARAMETER = "${local.ssm_path}/shadow"
    SHADOW_METRICS   = "emf"
    # the home routing map (which region serves each home, and its epoch): written by `migrate` in every
    # region at a cutover or a region loss (never by Terraform), read by every task before its first
    # request and then polled; ReadOwnSsmPath covers it
    HOME_ROUTING_PARAMETER = "${local.ssm_path}/home-routing"
    # the home writers map (each cut-over home's writer, as host and port; the task completes it from
    # WRITER_DSN and PGPASSWORD): written by `migrate` at a cutover, read before the first request and
    # then polled; ReadOwnSsmPath covers it
    WRITERS_PARAMETER = "${local.ssm_path}/home-writers"
    # held writes wait one poll once routing flips: well under WRITE_HOLD_SECONDS (3 s). Every task polls
    # it each second, which needs Parameter Store's higher throughput (ssm.tf)
    WRITERS_POLL_SECONDS = "1"
    # /metrics and /internal/* answer only here, bound to 127.0.0.1 (app/internal.py): no port mapping,
    # so neither the ALB nor anything in the VPC reaches them; a sidecar in the task can.
    INTERNAL_PORT = tostring(var.api_internal_port)
  })
}

# Every task reads WRITERS_PARAMETER each second (a cutover's held writes wait one poll) and the home
# routing map every few: Parameter Store's standard throughput (40 GetParameter/s per account and
# region) would throttle a fleet, so the region runs with its higher throughput.
resource "aws_ssm_service_setting" "parameter_store_high_throughput" {
  setting_id    = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:servicesetting/ssm/parameter-store/high-throughput-enabled"
  setting_value = "true"
}

resource "aws_ecs_task_definition" "api" {
  family                   = "${local.name}-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.api_cpu
  memory                   = var.api_memory
  execution_role_arn       = aws_iam_role.task_execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.api_cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name                   = "api"
      image                  = var.api_image
      essential              = true
      readonlyRootFilesystem = true
      privileged             = false
      user                   = "10001"

      portMappings = [{
        containerPort = var.api_container_port
        protocol      = "tcp"
      }]

      environment = [for key in sort(keys(local.api_environment)) : {
        name  = key
        value = local.api_environment[key]
      }]

      secrets = [
        { name = "REDIS_URL", valueFrom = aws_ssm_parameter.redis_url.arn },
        { name = "PGPASSWORD", valueFrom = local.db_password_parameter_arn },
      ]

      # uvicorn needs a writable /tmp with a read-only root file system.
      mountPoints = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]

      healthCheck = {
        command     = ["CMD-SHELL", "python -c \"import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:${var.api_container_port}${var.api_health_check_path}', timeout=2)\" || exit 1"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 30
      }

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.api.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "api"
        }
      }
    }
  ])

  volume {
    name = "tmp"
  }

  tags = local.tags
}

resource "aws_ecs_service" "api" {
  name            = "${local.name}-api"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.api.arn
  launch_type     = "FARGATE"
  desired_count   = var.api_min_tasks

  platform_version                  = "LATEST"
  health_check_grace_period_seconds = 60
  enable_execute_command            = false
  propagate_tags                    = "SERVICE"
  enable_ecs_managed_tags           = true

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = "api"
    container_port   = var.api_container_port
  }

  tags = local.tags

  lifecycle {
    # Autoscaling owns the running count once the service exists.
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.https]
}

resource "aws_appautoscaling_target" "api" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.api.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.api_min_tasks
  max_capacity       = var.api_max_tasks

  tags = local.tags
}

resource "aws_appautoscaling_policy" "api_cpu" {
  name               = "${local.name}-api-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.api.service_namespace
  resource_id        = aws_appautoscaling_target.api.resource_id
  scalable_dimension = aws_appautoscaling_target.api.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.api_cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "api_requests" {
  name               = "${local.name}-api-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.api.service_namespace
  resource_id        = aws_appautoscaling_target.api.resource_id
  scalable_dimension = aws_appautoscaling_target.api.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.api_requests_per_task_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.api.arn_suffix}/${aws_lb_target_group.api.arn_suffix}"
    }
  }
}
