variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "serverless" {
  description = "MSK Serverless (true) or a provisioned cluster (false)."
  type        = bool
  default     = true
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (one broker per subnet when provisioned)."
  type        = list(string)
}

variable "client_security_groups" {
  description = "Security groups allowed to reach the brokers, by a name fixed in the configuration: { api = sg-id, workers = sg-id }. A map, because for_each needs keys known at plan time and the ids are only known after apply."
  type        = map(string)
}

variable "kafka_version" {
  description = "Kafka version for a provisioned cluster."
  type        = string
  default     = "3.6.0"
}

variable "broker_instance_type" {
  description = "Broker size for a provisioned cluster."
  type        = string
  default     = "kafka.t3.small"
}

variable "kms_key_arn" {
  description = "KMS key for data at rest and broker logs."
  type        = string
}

variable "log_retention_days" {
  description = "How long to keep broker logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
