variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "domain_names" {
  description = "The site's domain names (the certificate must cover them)."
  type        = list(string)
  validation {
    condition     = length(var.domain_names) > 0
    error_message = "Give at least one domain name."
  }
}

variable "certificate_arn" {
  description = "ACM certificate in us-east-1 for the domain names."
  type        = string
  validation {
    condition     = can(regex("^arn:aws:acm:us-east-1:", var.certificate_arn))
    error_message = "CloudFront needs an ACM certificate from us-east-1."
  }
}

variable "web_acl_arn" {
  description = "Optional AWS WAF web ACL (global) to attach."
  type        = string
  default     = null
}

variable "site_bucket" {
  description = "Bucket with the static site."
  type        = string
}

variable "site_bucket_arn" {
  description = "Its ARN."
  type        = string
}

variable "site_bucket_regional_domain" {
  description = "Its regional domain name."
  type        = string
}

variable "api_domain" {
  description = "The HTTP API's custom domain (its execute-api endpoint is disabled): the origin of /api/*, /v1/* and /u/*."
  type        = string
}

variable "upload_origins" {
  description = "Origins the browser posts contact files to (the uploads bucket): added to the Content-Security-Policy's connect-src."
  type        = list(string)
  validation {
    condition     = alltrue([for origin in var.upload_origins : can(regex("^https://[^/ ;']+$", origin))])
    error_message = "Each upload origin must be https://host, without a path."
  }
}

variable "logs_bucket_domain" {
  description = "Bucket for access logs."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
