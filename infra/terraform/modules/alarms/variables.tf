variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "worker_log_group" {
  description = "The workers' log group."
  type        = string
}

variable "sender_service" {
  description = "The sender ECS service's name (dimension of Sendpy/DeliveryLag)."
  type        = string
}

variable "lag_alarm_threshold" {
  description = "Delivery batches of lag that, sustained for 30 minutes, raise the alarm."
  type        = number
  default     = 500
}

variable "alarm_emails" {
  description = "Addresses that receive alarms."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "KMS key for the alarm topic."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "msk_serverless" {
  description = "Whether MSK is Serverless (it reports MaxEstimatedTimeLag)."
  type        = bool
  default     = true
}

variable "kafka_cluster_name" {
  description = "MSK cluster name (a dimension of the AWS/Kafka metrics)."
  type        = string
}

variable "sender_group" {
  description = "The sender workers' consumer group (SENDPY_GROUP_SENDER)."
  type        = string
  default     = "sendpy-sender"
}

variable "deliveries_topic" {
  description = "The deliveries topic (SENDPY_TOPIC_DELIVERIES)."
  type        = string
  default     = "sendpy.deliveries"
}

variable "lag_age_alarm_seconds" {
  description = "Alarm when the oldest waiting delivery is older than this (rate-limited senders legitimately wait)."
  type        = number
  default     = 3600
  validation {
    condition     = var.lag_age_alarm_seconds >= 60
    error_message = "lag_age_alarm_seconds must be at least 60."
  }
}
