variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the tasks."
  type        = list(string)
}

variable "image_tag" {
  description = "Tag of the worker image pushed to the ECR repository (immutable tags)."
  type        = string
  validation {
    condition     = var.image_tag != "latest" && length(var.image_tag) > 0
    error_message = "Use an immutable tag such as the git commit, not 'latest'."
  }
}

variable "package_zip" {
  description = "The Lambda package (for the lag function)."
  type        = string
}

variable "environment" {
  description = "Environment variables of the app (see shared/settings.py)."
  type        = map(string)
}

variable "app_policy_json" {
  description = "IAM policy with what the app itself calls (KMS, S3, Kafka)."
  type        = string
}

variable "database_secret_arn" {
  description = "Secret whose 'password' key becomes PGPASSWORD."
  type        = string
}

variable "signing_key_secret_arn" {
  description = "Secret whose value becomes SENDPY_SIGNING_KEY (signs unsubscribe links)."
  type        = string
}

variable "kafka_resource_arns" {
  description = "Cluster, topic and group ARNs the lag function reads."
  type        = list(string)
}

variable "min_senders" {
  description = "Sender tasks when idle."
  type        = number
  default     = 1
  validation {
    condition     = var.min_senders >= 0
    error_message = "min_senders cannot be negative."
  }
}

variable "max_senders" {
  description = "Most sender tasks (more than the deliveries topic's partitions would idle)."
  type        = number
  default     = 6
}

variable "kms_key_arn" {
  description = "KMS key for logs, the image repository and queues."
  type        = string
}

variable "log_retention_days" {
  description = "How long to keep logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
