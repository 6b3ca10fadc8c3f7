output "platform_kms_key_arn" {
  description = "KMS key for logs, buckets, database, secrets and MSK."
  value       = aws_kms_key.platform.arn
}

output "smtp_kms_key_arn" {
  description = "KMS key for SMTP password envelope encryption (SENDPY_KMS_KEY_ID)."
  value       = aws_kms_key.smtp.arn
}

output "database_security_group_id" {
  description = "The database's security group."
  value       = aws_security_group.database.id
}

output "database_host" {
  description = "Direct endpoint (workers)."
  value       = aws_db_instance.this.address
}

output "proxy_host" {
  description = "RDS Proxy endpoint (Lambda, IAM authentication)."
  value       = aws_db_proxy.this.endpoint
}

output "proxy_resource_id" {
  description = "For rds-db:connect permissions."
  value       = split(":", aws_db_proxy.this.arn)[6]
}

output "master_secret_arn" {
  description = "Secrets Manager secret with the master username and password."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}
