# An example environment: everything Sendpy needs in one AWS account and region.

resource "random_password" "signing_key" {
  length  = 48
  special = false
}

# The key that signs unsubscribe links lives in Secrets Manager, not in any environment map:
# ECS injects it into the workers as SENDPY_SIGNING_KEY (task definition `secrets`, like the
# database password); the API function is given only the secret's ARN and reads the value once
# per container (shared/unsubscribe.py). Rotating it would invalidate the links in mail already
# sent, so it is not rotated automatically.
resource "aws_secretsmanager_secret" "signing_key" {
  #checkov:skip=CKV2_AWS_57:A new key would invalidate the unsubscribe links in every email already sent; it is not rotated automatically.
  name        = "${var.name}-signing-key"
  description = "${var.name}: signs unsubscribe links (SENDPY_SIGNING_KEY)"
  kms_key_id  = module.data.platform_kms_key_arn
}

resource "aws_secretsmanager_secret_version" "signing_key" {
  secret_id     = aws_secretsmanager_secret.signing_key.id
  secret_string = random_password.signing_key.result
}

locals {
  site_origin = "https://${var.domain_name}"
  # Kafka resources the app touches: the cluster, its topics and consumer groups.
  kafka_cluster = module.msk.cluster_arn
  kafka_topics  = "${replace(local.kafka_cluster, ":cluster/", ":topic/")}/*"
  kafka_groups  = "${replace(local.kafka_cluster, ":cluster/", ":group/")}/*"

  # Every variable shared/settings.py reads, except AWS_REGION, which Lambda and ECS provide, and
  # the unsubscribe signing key, a secret (above).
  app_environment = {
    SENDPY_KAFKA_BOOTSTRAP      = module.msk.bootstrap_brokers
    SENDPY_KAFKA_SECURITY       = "iam"
    SENDPY_KAFKA_REGION         = var.region
    SENDPY_KAFKA_REPLICATION    = "3"
    SENDPY_DELIVERY_PARTITIONS  = tostring(var.delivery_partitions)
    SENDPY_S3_BUCKET_UPLOADS    = module.storage.uploads_bucket
    SENDPY_KEY_PROVIDER         = "kms"
    SENDPY_KMS_KEY_ID           = module.data.smtp_kms_key_arn
    SENDPY_PUBLIC_BASE_URL      = local.site_origin
    SENDPY_TRUSTED_PROXY_HOPS   = "1" # CloudFront appends the viewer's address to X-Forwarded-For
    SENDPY_SMTP_ALLOW_PRIVATE   = "false"
    SENDPY_SMTP_ALLOW_PLAINTEXT = "false"
    SENDPY_LOG_LEVEL            = "INFO"
  }
  worker_environment = merge(local.app_environment, {
    DATABASE_URL = "postgresql://sendpy@${module.data.database_host}:5432/sendpy?sslmode=require"
  })
  api_environment = merge(local.app_environment, {
    DATABASE_URL                  = "postgresql://sendpy@${module.data.proxy_host}:5432/sendpy?sslmode=require"
    SENDPY_DATABASE_IAM_AUTH      = "true"
    SENDPY_DB_POOL_MAX            = "1"
    SENDPY_SIGNING_KEY_SECRET_ARN = local.signing_key_secret_arn
  })
  # The version's ARN is the secret's; taking it from the version makes the function and the tasks
  # wait until the secret has a value.
  signing_key_secret_arn = aws_secretsmanager_secret_version.signing_key.arn
  # Where the browser posts contact files (a presigned POST to the uploads bucket): the only
  # origin besides the site's in the Content-Security-Policy (functions/security_headers.py).
  upload_origins = [
    "https://${module.storage.uploads_bucket}.s3.amazonaws.com",
    "https://${module.storage.uploads_bucket}.s3.${var.region}.amazonaws.com",
  ]
}

data "aws_iam_policy_document" "app" {
  statement {
    sid       = "SmtpPasswordEnvelope"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [module.data.smtp_kms_key_arn]
  }
  statement {
    sid       = "Uploads"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
    resources = ["${module.storage.uploads_bucket_arn}/uploads/*"]
  }
  statement {
    sid       = "UploadsMissingIsNotFound"
    actions   = ["s3:ListBucket"]
    resources = [module.storage.uploads_bucket_arn]
  }
  statement {
    sid       = "UploadsEncryption"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [module.data.platform_kms_key_arn]
  }
  statement {
    sid = "Kafka"
    actions = [
      "kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:WriteDataIdempotently",
      "kafka-cluster:DescribeTopic", "kafka-cluster:CreateTopic", "kafka-cluster:WriteData",
      "kafka-cluster:ReadData", "kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup",
    ]
    resources = [local.kafka_cluster, local.kafka_topics, local.kafka_groups]
  }
}

data "aws_iam_policy_document" "api" {
  source_policy_documents = [data.aws_iam_policy_document.app.json]
  statement {
    sid       = "DatabaseThroughProxy"
    actions   = ["rds-db:connect"]
    resources = ["arn:aws:rds-db:${var.region}:${data.aws_caller_identity.current.account_id}:dbuser:${module.data.proxy_resource_id}/sendpy"]
  }
  statement {
    sid       = "SigningKey"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.signing_key.arn]
  }
  statement {
    sid       = "SigningKeyDecrypt"
    actions   = ["kms:Decrypt"]
    resources = [module.data.platform_kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${var.region}.amazonaws.com"]
    }
  }
}

data "aws_caller_identity" "current" {}

module "network" {
  source             = "../../modules/network"
  name               = var.name
  availability_zones = ["${var.region}a", "${var.region}b"]
  logs_kms_key_arn   = module.data.platform_kms_key_arn
}

module "data" {
  source                 = "../../modules/data"
  name                   = var.name
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.private_subnet_ids
  client_security_groups = { api = module.api.security_group_id, workers = module.workers.security_group_id }
  instance_class         = var.db_instance_class
}

module "storage" {
  source      = "../../modules/storage"
  name        = var.name
  kms_key_arn = module.data.platform_kms_key_arn
  site_origin = local.site_origin
}

module "msk" {
  source                 = "../../modules/msk"
  name                   = var.name
  serverless             = var.msk_serverless
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.private_subnet_ids
  client_security_groups = { api = module.api.security_group_id, workers = module.workers.security_group_id }
  kms_key_arn            = module.data.platform_kms_key_arn
}

module "api" {
  source           = "../../modules/api"
  name             = var.name
  vpc_id           = module.network.vpc_id
  subnet_ids       = module.network.private_subnet_ids
  package_zip      = var.lambda_package
  environment      = local.api_environment
  app_policy_json  = data.aws_iam_policy_document.api.json
  logs_kms_key_arn = module.data.platform_kms_key_arn
  domain_name      = var.api_origin_domain
  certificate_arn  = var.api_certificate_arn
}

# The API's custom domain must resolve to API Gateway for CloudFront to reach it. With a Route 53
# zone this is done here; otherwise create the CNAME shown by `terraform output api_origin_target`.
resource "aws_route53_record" "api_origin" {
  count   = var.route53_zone_id == null ? 0 : 1
  zone_id = var.route53_zone_id
  name    = var.api_origin_domain
  type    = "A"
  alias {
    name                   = module.api.domain_target
    zone_id                = module.api.domain_hosted_zone_id
    evaluate_target_health = false
  }
}

module "workers" {
  source                 = "../../modules/workers"
  name                   = var.name
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.private_subnet_ids
  image_tag              = var.worker_image_tag
  package_zip            = var.lambda_package
  environment            = local.worker_environment
  app_policy_json        = data.aws_iam_policy_document.app.json
  database_secret_arn    = module.data.master_secret_arn
  signing_key_secret_arn = local.signing_key_secret_arn
  kafka_resource_arns    = [local.kafka_cluster, local.kafka_topics, local.kafka_groups]
  max_senders            = min(var.max_senders, var.delivery_partitions)
  kms_key_arn            = module.data.platform_kms_key_arn
}

module "cdn" {
  source                      = "../../modules/cdn"
  name                        = var.name
  domain_names                = [var.domain_name]
  certificate_arn             = var.certificate_arn
  site_bucket                 = module.storage.site_bucket
  site_bucket_arn             = module.storage.site_bucket_arn
  site_bucket_regional_domain = module.storage.site_bucket_regional_domain
  api_domain                  = module.api.api_domain
  upload_origins              = local.upload_origins
  logs_bucket_domain          = module.storage.logs_bucket_domain
}

module "alarms" {
  source             = "../../modules/alarms"
  name               = var.name
  worker_log_group   = module.workers.log_group
  sender_service     = "${var.name}-sender"
  alarm_emails       = var.alarm_emails
  kms_key_arn        = module.data.platform_kms_key_arn
  msk_serverless     = var.msk_serverless
  kafka_cluster_name = module.msk.cluster_name
}
