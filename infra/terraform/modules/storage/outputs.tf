output "uploads_bucket" {
  description = "Bucket name for SENDPY_S3_BUCKET_UPLOADS."
  value       = aws_s3_bucket.uploads.id
}

output "uploads_bucket_arn" {
  description = "Uploads bucket ARN."
  value       = aws_s3_bucket.uploads.arn
}

output "site_bucket" {
  description = "Bucket the static site is uploaded to."
  value       = aws_s3_bucket.site.id
}

output "site_bucket_arn" {
  description = "Site bucket ARN."
  value       = aws_s3_bucket.site.arn
}

output "site_bucket_regional_domain" {
  description = "For the CloudFront origin."
  value       = aws_s3_bucket.site.bucket_regional_domain_name
}

output "logs_bucket_domain" {
  description = "Bucket for CloudFront access logs (ACLs enabled before this is known)."
  value       = aws_s3_bucket.logs.bucket_domain_name
  depends_on  = [aws_s3_bucket_ownership_controls.logs]
}
