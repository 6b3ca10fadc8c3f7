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

variable "domain_name" {
  description = "The API's custom domain (e.g. api-origin.mail.example.com): CloudFront's origin, the only name the API answers on."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain_name))
    error_message = "domain_name must be a lowercase DNS name such as api-origin.mail.example.com."
  }
}

variable "certificate_arn" {
  description = "ACM certificate in the API's region (not CloudFront's us-east-1, unless that is the region) covering domain_name."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]+:certificate/", var.certificate_arn))
    error_message = "certificate_arn must be the ARN of an ACM certificate."
  }
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
