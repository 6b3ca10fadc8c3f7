output "api_domain" {
  description = "The API's custom domain (CloudFront origin), once the API is mapped to it."
  value       = aws_apigatewayv2_api_mapping.api.domain_name
}

output "domain_target" {
  description = "API Gateway's regional name for the custom domain: the CNAME or alias target of domain_name."
  value       = aws_apigatewayv2_domain_name.api.domain_name_configuration[0].target_domain_name
}

output "domain_hosted_zone_id" {
  description = "Hosted zone of domain_target, for a Route 53 alias record."
  value       = aws_apigatewayv2_domain_name.api.domain_name_configuration[0].hosted_zone_id
}

output "security_group_id" {
  description = "The function's security group."
  value       = aws_security_group.lambda.id
}

output "function_name" {
  description = "The API function."
  value       = aws_lambda_function.api.function_name
}
