# One CloudFront distribution: the static site from its private bucket (origin access control)
# and the API under /api/*, /v1/* and /u/* — one origin, so session cookies and CSRF just work.
# The API is reached on its custom domain (its execute-api endpoint is disabled).
#
# Security headers: the same as the app sends itself (functions/security_headers.py; the tests
# check the policies below equal it). /preview.html, the frame the campaign preview is drawn in,
# has a policy of its own: the email's inline CSS and remote images, no scripts.

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 5.80" }
  }
}

resource "aws_cloudfront_origin_access_control" "site" {
  name                              = "${var.name}-site"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

data "aws_cloudfront_cache_policy" "optimized" {
  name = "Managed-CachingOptimized"
}

data "aws_cloudfront_cache_policy" "disabled" {
  name = "Managed-CachingDisabled"
}

data "aws_cloudfront_origin_request_policy" "all_but_host" {
  name = "Managed-AllViewerExceptHostHeader"
}

locals {
  # = functions/security_headers.py content_security_policy(upload_origins) (tests/test_infra.py).
  content_security_policy = "default-src 'self'; script-src 'self'; style-src 'self' 'sha256-xPbTzzMysJesYjhce+rA3/XojT3rtQ6jq2tY20wmyI0='; img-src 'self' data: https:; connect-src 'self' ${join(" ", var.upload_origins)}; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
  # = functions/security_headers.py PREVIEW_CONTENT_SECURITY_POLICY.
  preview_content_security_policy = "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; font-src https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox"
}

# Every answer: the site's files and the API's.
resource "aws_cloudfront_response_headers_policy" "security" {
  name = "${var.name}-security-headers"
  security_headers_config {
    content_type_options {
      override = true
    }
    frame_options {
      frame_option = "DENY"
      override     = true
    }
    referrer_policy {
      referrer_policy = "no-referrer"
      override        = true
    }
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }
    content_security_policy {
      content_security_policy = local.content_security_policy
      override                = true
    }
  }
}

# /preview.html only: framed by the site, its own policy.
resource "aws_cloudfront_response_headers_policy" "preview" {
  name = "${var.name}-preview-headers"
  security_headers_config {
    content_type_options {
      override = true
    }
    frame_options {
      frame_option = "SAMEORIGIN"
      override     = true
    }
    referrer_policy {
      referrer_policy = "no-referrer"
      override        = true
    }
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }
    content_security_policy {
      content_security_policy = local.preview_content_security_policy
      override                = true
    }
  }
}

resource "aws_cloudfront_distribution" "this" {
  #checkov:skip=CKV_AWS_374:Senders and recipients are worldwide; no country is blocked.
  #checkov:skip=CKV_AWS_310:The API lives in one region; a failover origin would need a second deployment.
  #checkov:skip=CKV2_AWS_47:WAF is optional (web_acl_arn); when used, its rule groups are the operator's choice.
  #checkov:skip=CKV_AWS_68:WAF is optional (web_acl_arn), the app throttles log-ins and API Gateway throttles requests.
  enabled             = true
  comment             = "${var.name}: site and API"
  default_root_object = "index.html"
  aliases             = var.domain_names
  price_class         = "PriceClass_100"
  web_acl_id          = var.web_acl_arn
  http_version        = "http2and3"

  origin {
    origin_id                = "site"
    domain_name              = var.site_bucket_regional_domain
    origin_access_control_id = aws_cloudfront_origin_access_control.site.id
  }

  origin {
    origin_id   = "api"
    domain_name = var.api_domain
    custom_origin_config {
      http_port              = 80
      https_port             = 443
      origin_protocol_policy = "https-only"
      origin_ssl_protocols   = ["TLSv1.2"]
    }
  }

  default_cache_behavior {
    target_origin_id           = "site"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = data.aws_cloudfront_cache_policy.optimized.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.security.id
  }

  ordered_cache_behavior {
    path_pattern               = "/preview.html"
    target_origin_id           = "site"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = data.aws_cloudfront_cache_policy.optimized.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.preview.id
  }

  dynamic "ordered_cache_behavior" {
    for_each = ["/api/*", "/v1/*", "/u/*"]
    content {
      path_pattern               = ordered_cache_behavior.value
      target_origin_id           = "api"
      viewer_protocol_policy     = "redirect-to-https"
      allowed_methods            = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
      cached_methods             = ["GET", "HEAD"]
      cache_policy_id            = data.aws_cloudfront_cache_policy.disabled.id
      origin_request_policy_id   = data.aws_cloudfront_origin_request_policy.all_but_host.id
      response_headers_policy_id = aws_cloudfront_response_headers_policy.security.id
    }
  }

  logging_config {
    bucket          = var.logs_bucket_domain
    prefix          = "cloudfront/"
    include_cookies = false
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    acm_certificate_arn      = var.certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }
  tags = var.tags
  lifecycle {
    precondition {
      condition     = !contains(var.domain_names, var.api_domain)
      error_message = "The API's custom domain (CloudFront's origin) must be a name of its own, not one of the site's."
    }
  }
}

data "aws_iam_policy_document" "site" {
  statement {
    sid       = "CloudFrontReadsTheSite"
    actions   = ["s3:GetObject"]
    resources = ["${var.site_bucket_arn}/*"]
    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.this.arn]
    }
  }
}

resource "aws_s3_bucket_policy" "site" {
  bucket = var.site_bucket
  policy = data.aws_iam_policy_document.site.json
}
