output "site_url" {
  description = "Where the app answers once DNS points at the distribution."
  value       = local.site_origin
}

output "cloudfront_domain" {
  description = "CNAME/alias target for domain_name."
  value       = module.cdn.distribution_domain
}

output "api_origin_target" {
  description = "CNAME target for api_origin_domain (created already when route53_zone_id is set)."
  value       = module.api.domain_target
}

output "site_bucket" {
  description = "Upload web/ here (aws s3 sync web s3://…)."
  value       = module.storage.site_bucket
}

output "cloudfront_distribution_id" {
  description = "Invalidate after uploading the site."
  value       = module.cdn.distribution_id
}

output "worker_repository" {
  description = "Push the worker image here."
  value       = module.workers.repository_url
}
