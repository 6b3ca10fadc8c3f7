variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the database and its proxy."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "RDS needs subnets in at least two availability zones."
  }
}

variable "client_security_groups" {
  description = "Security groups allowed to reach Postgres, by a name fixed in the configuration: { api = sg-id, workers = sg-id }. A map, because for_each needs keys known at plan time and the ids are only known after apply."
  type        = map(string)
}

variable "instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.small"
}

variable "storage_gb" {
  description = "Initial storage; it grows automatically up to four times this."
  type        = number
  default     = 20
  validation {
    condition     = var.storage_gb >= 20
    error_message = "storage_gb must be at least 20."
  }
}

variable "multi_az" {
  description = "A standby in a second availability zone."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Refuse to delete the database (turn off only to tear a test environment down)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
