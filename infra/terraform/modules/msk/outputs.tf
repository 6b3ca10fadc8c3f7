output "bootstrap_brokers" {
  description = "SENDPY_KAFKA_BOOTSTRAP (IAM listener)."
  value = var.serverless ? data.aws_msk_bootstrap_brokers.serverless[0].bootstrap_brokers_sasl_iam : data.aws_msk_bootstrap_brokers.provisioned[0].bootstrap_brokers_sasl_iam
}

output "cluster_arn" {
  description = "The cluster, for IAM policies."
  value       = var.serverless ? aws_msk_serverless_cluster.this[0].arn : aws_msk_cluster.this[0].arn
}

output "cluster_name" {
  description = "For CloudWatch metrics."
  value       = "${var.name}-kafka"
}

output "security_group_id" {
  description = "The brokers' security group."
  value       = aws_security_group.msk.id
}
