variable "name" {
  description = "Name of this deployment; prefixes every resource (e.g. sendpy-prod)."
  type        = string
  default     = "sendpy"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "region" {
  description = "AWS region to deploy to."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like eu-central-1."
  }
}

variable "domain_name" {
  description = "The site's domain (e.g. mail.example.com); CloudFront serves the site and the API there."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate (us-east-1) covering domain_name."
  type        = string
}

variable "api_origin_domain" {
  description = "The API's own name (e.g. api-origin.mail.example.com), distinct from domain_name: CloudFront's origin for the API, whose execute-api endpoint is disabled. Point it at output api_origin_target (or give route53_zone_id)."
  type        = string
}

variable "api_certificate_arn" {
  description = "ACM certificate in `region` covering api_origin_domain (API Gateway needs one in its own region; in us-east-1 certificate_arn may serve if it covers the name)."
  type        = string
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone of api_origin_domain, to create its alias record here; null to create the CNAME yourself."
  type        = string
  default     = null
}

variable "lambda_package" {
  description = "Path of the deployment package built by `sendpy package-lambda`."
  type        = string
  default     = "../../../../build/lambda.zip"
}

variable "worker_image_tag" {
  description = "Tag of the worker image pushed to the ECR repository (-var worker_image_tag=..., a new tag for every image)."
  type        = string
}

variable "msk_serverless" {
  description = "MSK Serverless (true) or a provisioned cluster (false)."
  type        = bool
  default     = true
}

variable "delivery_partitions" {
  description = "Partitions of the deliveries topic: the most sender workers that can share the work."
  type        = number
  default     = 6
  validation {
    condition     = var.delivery_partitions >= 1 && var.delivery_partitions <= 100
    error_message = "delivery_partitions must be between 1 and 100."
  }
}

variable "max_senders" {
  description = "Most sender tasks (capped at delivery_partitions)."
  type        = number
  default     = 6
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.small"
}

variable "alarm_emails" {
  description = "Addresses that receive alarms."
  type        = list(string)
  default     = []
}
