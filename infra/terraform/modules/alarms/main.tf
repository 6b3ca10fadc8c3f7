# Alarms: dead-lettered messages, worker errors, and a backlog that is old or growing.

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 5.80" }
  }
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# The consume loop logs "dead-lettered" at ERROR for every record it gives up on.
resource "aws_cloudwatch_log_metric_filter" "dead_letters" {
  name           = "${var.name}-dead-letters"
  log_group_name = var.worker_log_group
  pattern        = "{ $.message = \"dead-lettered\" }"
  metric_transformation {
    name      = "DeadLetters"
    namespace = "Sendpy"
    value     = "1"
  }
}

resource "aws_cloudwatch_log_metric_filter" "errors" {
  name           = "${var.name}-worker-errors"
  log_group_name = var.worker_log_group
  pattern        = "{ $.level = \"ERROR\" }"
  metric_transformation {
    name      = "WorkerErrors"
    namespace = "Sendpy"
    value     = "1"
  }
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${var.name}-dead-letters"
  alarm_description   = "A Kafka record went to sendpy.dead-letters: look at its error header."
  namespace           = "Sendpy"
  metric_name         = "DeadLetters"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "worker_errors" {
  alarm_name          = "${var.name}-worker-errors"
  alarm_description   = "Workers logged errors repeatedly."
  namespace           = "Sendpy"
  metric_name         = "WorkerErrors"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 2
  threshold           = 10
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}

# Published by the lag function; missing data means the lag could not be read — that itself
# deserves a look, so it counts as breaching after a while.
resource "aws_cloudwatch_metric_alarm" "lag" {
  alarm_name          = "${var.name}-delivery-lag"
  alarm_description   = "Deliveries have been piling up for 30 minutes: workers stuck, or too few."
  namespace           = "Sendpy"
  metric_name         = "DeliveryLag"
  dimensions          = { Service = var.sender_service }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 6
  threshold           = var.lag_alarm_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}

# On MSK Serverless the brokers also report how old the oldest unconsumed delivery is. The
# metric disappears during rebalances, so missing data is not an alarm here (the backlog alarm
# above covers a lag that cannot be read at all).
resource "aws_cloudwatch_metric_alarm" "lag_age" {
  count               = var.msk_serverless ? 1 : 0
  alarm_name          = "${var.name}-delivery-lag-age"
  alarm_description   = "The oldest waiting delivery batch is older than the threshold."
  namespace           = "AWS/Kafka"
  metric_name         = "MaxEstimatedTimeLag"
  dimensions          = { "Cluster Name" = var.kafka_cluster_name, "Consumer Group" = var.sender_group, "Topic" = var.deliveries_topic }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  threshold           = var.lag_age_alarm_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}
