output "repository_url" {
  description = "Push worker_image/ here."
  value       = aws_ecr_repository.worker.repository_url
}

output "security_group_id" {
  description = "The workers' security group."
  value       = aws_security_group.workers.id
}

output "cluster_name" {
  description = "ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "log_group" {
  description = "Worker logs."
  value       = aws_cloudwatch_log_group.workers.name
}
