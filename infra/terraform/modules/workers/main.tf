# The workers: an ECR repository for worker_image/, an ECS Fargate cluster running the fan-out
# (one task) and the senders (scaled on consumer lag by a scheduled function, between a minimum
# and the partition count).

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 5.80" }
  }
}

data "aws_region" "current" {}

resource "aws_ecr_repository" "worker" {
  name                 = "${var.name}-worker"
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
  tags = var.tags
}

resource "aws_ecs_cluster" "this" {
  name = "${var.name}-workers"
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "workers" {
  name              = "/sendpy/${var.name}/workers"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_security_group" "workers" {
  name        = "${var.name}-workers"
  description = "Workers: outbound to Postgres, Kafka, AWS endpoints and the SMTP servers of users"
  vpc_id      = var.vpc_id
  egress {
    description = "SMTP and IMAP servers on the internet (25, 465, 587, 993 and others), Postgres, Kafka, AWS endpoints"
    from_port   = 0
    to_port     = 65535
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  tags = var.tags
}

data "aws_iam_policy_document" "ecs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-worker-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "PullImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    resources = [aws_ecr_repository.worker.arn]
  }
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.workers.arn}:*"]
  }
  statement {
    sid       = "DatabasePassword"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.database_secret_arn]
  }
  statement {
    sid       = "SigningKey"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.signing_key_secret_arn]
  }
  statement {
    sid       = "DecryptSecretAndImage"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "execution" {
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-worker-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "task" {
  name   = "app"
  role   = aws_iam_role.task.id
  policy = var.app_policy_json
}

locals {
  image = "${aws_ecr_repository.worker.repository_url}:${var.image_tag}"
  kinds = {
    # Duplicate detection keeps ~127 bytes per distinct address: a 200 MB file (the upload limit,
    # ~14 million rows) needs ~1.8 GB; 1 GB was measured exceeded by three 40 MB files. The
    # fan-out reads two such files at once (SENDPY_FILE_READERS, one per user), so that one user's
    # files never keep another's waiting: 2 × 1.8 GB and the rest.
    fanout = { cpu = 1024, memory = 6144 }
    sender = { cpu = 1024, memory = 2048 }
    # Reads the senders' INBOXes for bounces (IMAP, port 993): Postgres only, no Kafka.
    bounce = { cpu = 256, memory = 512 }
  }
}

resource "aws_ecs_task_definition" "worker" {
  for_each                 = local.kinds
  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  volume {
    name = "tmp"
  }
  container_definitions = jsonencode([{
    name                   = each.key
    image                  = local.image
    command                = [each.key]
    essential              = true
    readonlyRootFilesystem = true
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    environment            = [for key, value in var.environment : { name = key, value = value }]
    secrets = [
      { name = "PGPASSWORD", valueFrom = "${var.database_secret_arn}:password::" },
      { name = "SENDPY_SIGNING_KEY", valueFrom = var.signing_key_secret_arn },
    ]
    stopTimeout = 120 # let the record in hand finish and its outcome be written
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.workers.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = each.key
      }
    }
    healthCheck = {
      command     = ["CMD", "python", "-c", "import os,sys,time; sys.exit(time.time()-os.path.getmtime('/tmp/sendpy-heartbeat')>120)"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 60
    }
  }])
  tags = var.tags
}

resource "aws_ecs_service" "worker" {
  for_each        = local.kinds
  name            = "${var.name}-${each.key}"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.worker[each.key].arn
  desired_count   = each.key == "sender" ? var.min_senders : 1
  launch_type     = "FARGATE"
  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.workers.id]
    assign_public_ip = false
  }
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  lifecycle {
    ignore_changes = [desired_count] # the lag function owns the senders' count
  }
  tags = var.tags
}

# Scaling on lag: a small scheduled function reads the sender group's lag from the brokers,
# publishes Sendpy/DeliveryLag and sets the sender service's desired count
# (functions/lag_publisher.py → shared/scaling.py: cooldowns, missing data held, capped at the
# partition count, down to the minimum when idle).

resource "aws_cloudwatch_log_group" "lag" {
  name              = "/aws/lambda/${var.name}-lag"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lag" {
  name               = "${var.name}-lag"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "lag" {
  #checkov:skip=CKV_AWS_111:"*" only for ENI actions and cloudwatch:PutMetricData (limited to the Sendpy namespace), which lack resource-level permissions.
  #checkov:skip=CKV_AWS_356:Same as above.
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lag.arn}:*"]
  }
  statement {
    sid       = "ScaleSenders"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = [aws_ecs_service.worker["sender"].id]
  }
  statement {
    sid       = "PublishLag"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"] # PutMetricData has no resource-level permissions; limited by namespace
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["Sendpy"]
    }
  }
  statement {
    sid = "ReadLag"
    actions = [
      "kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:DescribeTopic",
      "kafka-cluster:DescribeGroup", "kafka-cluster:ReadData",
    ]
    resources = var.kafka_resource_arns
  }
  statement {
    sid = "VpcNetworking"
    actions = [
      "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
      "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
    ]
    resources = ["*"] # ENI actions do not support resource-level permissions
  }
  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.lag_failed.arn]
  }
}

resource "aws_iam_role_policy" "lag" {
  role   = aws_iam_role.lag.id
  policy = data.aws_iam_policy_document.lag.json
}

resource "aws_sqs_queue" "lag_failed" {
  name              = "${var.name}-lag-failed"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "lag" {
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile the operator owns; the package is built and deployed by the same pipeline.
  function_name                  = "${var.name}-lag"
  role                           = aws_iam_role.lag.arn
  filename                       = var.package_zip
  source_code_hash               = filebase64sha256(var.package_zip)
  handler                        = "functions.lag_publisher.handler"
  runtime                        = "python3.11"
  timeout                        = 50
  memory_size                    = 256
  reserved_concurrent_executions = 1
  kms_key_arn                    = var.kms_key_arn
  environment {
    variables = merge(var.environment, {
      SENDPY_ECS_CLUSTER = aws_ecs_cluster.this.name
      SENDPY_ECS_SERVICE = aws_ecs_service.worker["sender"].name
      SENDPY_SCALE_MIN   = tostring(var.min_senders)
      SENDPY_SCALE_MAX   = tostring(var.max_senders)
    })
  }
  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.workers.id]
  }
  dead_letter_config {
    target_arn = aws_sqs_queue.lag_failed.arn
  }
  tracing_config {
    mode = "Active"
  }
  depends_on = [aws_cloudwatch_log_group.lag]
  tags       = var.tags
}

resource "aws_cloudwatch_event_rule" "every_minute" {
  name                = "${var.name}-lag"
  schedule_expression = "rate(1 minute)"
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "lag" {
  rule = aws_cloudwatch_event_rule.every_minute.name
  arn  = aws_lambda_function.lag.arn
}

resource "aws_lambda_permission" "lag" {
  statement_id  = "AllowSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.lag.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.every_minute.arn
}
