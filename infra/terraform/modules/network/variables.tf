variable "name" {
  description = "Prefix for every resource name, e.g. sendpy-prod."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "cidr_block" {
  description = "The VPC's address range."
  type        = string
  default     = "10.40.0.0/16"
  validation {
    condition     = can(cidrnetmask(var.cidr_block))
    error_message = "cidr_block must be an IPv4 CIDR block."
  }
}

variable "availability_zones" {
  description = "Two or three availability zone names to spread the subnets over, e.g. [\"eu-central-1a\", \"eu-central-1b\"]."
  type        = list(string)
  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3
    error_message = "Give two or three availability zones."
  }
}

variable "nat_per_az" {
  description = "One NAT gateway per availability zone (resilient) instead of one in total (cheaper)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "How long to keep VPC flow logs."
  type        = number
  default     = 365
}

variable "logs_kms_key_arn" {
  description = "KMS key that encrypts CloudWatch log groups."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
