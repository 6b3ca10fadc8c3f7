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
