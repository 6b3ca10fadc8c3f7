# The HTTP API: API Gateway HTTP API ($default stage) → Lambda (functions/lambda_handler.py via
# Mangum) in the private subnets, with a least-privilege role and retained logs.
# The default execute-api endpoint is off: the API answers only on its custom domain, which is
# CloudFront's origin (a regional ACM certificate for it in this region).

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 5.80" }
  }
}

resource "aws_security_group" "lambda" {
  name        = "${var.name}-api"
  description = "The API Lambda: outbound to Postgres, Kafka, AWS endpoints and SMTP (verification)"
  vpc_id      = var.vpc_id
  egress {
    description = "Postgres, Kafka, AWS endpoints and SMTP servers being verified"
    from_port   = 0
    to_port     = 65535
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "lambda" {
  name              = "/aws/lambda/${var.name}-api"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "access" {
  name              = "/sendpy/${var.name}/api-access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  name               = "${var.name}-api"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "app" {
  name   = "app"
  role   = aws_iam_role.lambda.id
  policy = var.app_policy_json
}

data "aws_iam_policy_document" "runtime" {
  #checkov:skip=CKV_AWS_111:Only the EC2 network-interface actions Lambda needs in a VPC use "*": they have no resource-level permissions.
  #checkov:skip=CKV_AWS_356:Same: ENI actions cannot be scoped to resources.
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda.arn}:*"]
  }
  statement {
    sid = "VpcNetworking"
    actions = [
      "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
      "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
    ]
    resources = ["*"] # ENI actions do not support resource-level permissions
  }
  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.failed_invocations.arn]
  }
}

resource "aws_iam_role_policy" "runtime" {
  name   = "runtime"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.runtime.json
}

resource "aws_sqs_queue" "failed_invocations" {
  name                      = "${var.name}-api-failed"
  kms_master_key_id         = var.logs_kms_key_arn
  message_retention_seconds = 1209600
  tags                      = var.tags
}

resource "aws_lambda_function" "api" {
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile the operator owns; the package is built and deployed by the same pipeline.
  function_name                  = "${var.name}-api"
  role                           = aws_iam_role.lambda.arn
  filename                       = var.package_zip
  source_code_hash               = filebase64sha256(var.package_zip)
  handler                        = "functions.lambda_handler.handler"
  runtime                        = "python3.11"
  architectures                  = ["x86_64"]
  memory_size                    = 1024
  timeout                        = 29 # API Gateway stops waiting at 30 s
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.logs_kms_key_arn
  environment {
    variables = var.environment
  }
  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.lambda.id]
  }
  dead_letter_config {
    target_arn = aws_sqs_queue.failed_invocations.arn
  }
  tracing_config {
    mode = "Active"
  }
  depends_on = [aws_cloudwatch_log_group.lambda, aws_iam_role_policy.runtime]
  tags       = var.tags
}

resource "aws_apigatewayv2_api" "http" {
  name                         = "${var.name}-api"
  protocol_type                = "HTTP"
  disable_execute_api_endpoint = true # only the custom domain below answers
  tags                         = var.tags
}

data "aws_region" "current" {}

resource "aws_apigatewayv2_domain_name" "api" {
  domain_name = var.domain_name
  domain_name_configuration {
    certificate_arn = var.certificate_arn
    endpoint_type   = "REGIONAL"
    security_policy = "TLS_1_2"
  }
  tags = var.tags
  lifecycle {
    precondition {
      condition     = split(":", var.certificate_arn)[3] == data.aws_region.current.name
      error_message = "The API's certificate must be an ACM certificate in the API's own region (CloudFront's is in us-east-1)."
    }
  }
}

resource "aws_apigatewayv2_api_mapping" "api" {
  api_id      = aws_apigatewayv2_api.http.id
  domain_name = aws_apigatewayv2_domain_name.api.domain_name
  stage       = aws_apigatewayv2_stage.default.id
}

resource "aws_apigatewayv2_integration" "lambda" {
  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.api.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 29000
}

resource "aws_apigatewayv2_route" "default" {
  #checkov:skip=CKV_AWS_309:The app authenticates every private route (API keys or session + CSRF); log-in, sign-up and unsubscribe must be public.
  api_id    = aws_apigatewayv2_api.http.id
  route_key = "$default" # Starlette routes everything; authentication is the app's
  target    = "integrations/${aws_apigatewayv2_integration.lambda.id}"
}

# The $default stage: a named stage would prefix every path.
resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  auto_deploy = true
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId = "$context.requestId", ip = "$context.identity.sourceIp", method = "$context.httpMethod",
      path = "$context.path", status = "$context.status", latency = "$context.responseLatency"
    })
  }
  default_route_settings {
    throttling_burst_limit = 200
    throttling_rate_limit  = 100
  }
  tags = var.tags
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowApiGateway"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.api.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*"
}
