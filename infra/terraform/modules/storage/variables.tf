variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the buckets."
  type        = string
}

variable "site_origin" {
  description = "The site's origin (https://…), the only one allowed to POST uploads."
  type        = string
  validation {
    condition     = can(regex("^https://[^/]+$", var.site_origin))
    error_message = "site_origin must look like https://example.com (no path, no trailing slash)."
  }
}

variable "upload_retention_days" {
  description = "Days after which uploaded contact files are deleted (recipients live in Postgres)."
  type        = number
  default     = 30
  validation {
    condition     = var.upload_retention_days >= 1
    error_message = "upload_retention_days must be at least 1."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
