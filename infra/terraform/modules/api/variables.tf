variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the function."
  type        = list(string)
}

variable "package_zip" {
  description = "The deployment package built by `sendpy package-lambda` (build/lambda.zip)."
  type        = string
  validation {
    condition     = endswith(var.package_zip, ".zip")
    error_message = "package_zip must be the path of a .zip file."
  }
}

variable "environment" {
  description = "Environment variables of the app (see shared/settings.py)."
  type        = map(string)
}

variable "app_policy_json" {
  description = "IAM policy with what the app itself calls (KMS, S3, Kafka, RDS)."
  type        = string
}

variable "reserved_concurrency" {
  description = "Upper bound on concurrent invocations (protects Postgres and the account)."
  type        = number
  default     = 50
}

variable "logs_kms_key_arn" {
  description = "KMS key for logs, the environment and the failed-invocation queue."
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
