output "api_domain" {
  description = "The HTTP API's domain (CloudFront origin)."
  value       = replace(aws_apigatewayv2_api.http.api_endpoint, "https://", "")
}

output "security_group_id" {
  description = "The function's security group."
  value       = aws_security_group.lambda.id
}

output "function_name" {
  description = "The API function."
  value       = aws_lambda_function.api.function_name
}
