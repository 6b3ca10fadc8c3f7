output "distribution_domain" {
  description = "Point the domain names here (CNAME / alias)."
  value       = aws_cloudfront_distribution.this.domain_name
}

output "distribution_id" {
  description = "For cache invalidation after uploading the site."
  value       = aws_cloudfront_distribution.this.id
}
