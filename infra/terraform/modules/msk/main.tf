# Kafka: MSK Serverless (pay per use, IAM auth only) or a provisioned cluster (IAM auth, TLS).
# Topics are created by the workers on start (shared/broker.py ensure_topics) with the counts
# the settings name, so Terraform and the app cannot disagree about them.

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 5.80" }
  }
}

resource "aws_security_group" "msk" {
  name        = "${var.name}-msk"
  description = "Kafka (IAM auth, TLS) from the app security groups"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "msk" {
  for_each                     = var.client_security_groups # keys: names known at plan time
  security_group_id            = aws_security_group.msk.id
  referenced_security_group_id = each.value
  from_port                    = 9098
  to_port                      = 9098
  ip_protocol                  = "tcp"
  description                  = "Kafka IAM/TLS listener"
}

resource "aws_msk_serverless_cluster" "this" {
  count        = var.serverless ? 1 : 0
  cluster_name = "${var.name}-kafka"
  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.msk.id]
  }
  client_authentication {
    sasl {
      iam {
        enabled = true
      }
    }
  }
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "broker" {
  count             = var.serverless ? 0 : 1
  name              = "/sendpy/${var.name}/msk"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_msk_cluster" "this" {
  count                  = var.serverless ? 0 : 1
  cluster_name           = "${var.name}-kafka"
  kafka_version          = var.kafka_version
  number_of_broker_nodes = length(var.subnet_ids)
  enhanced_monitoring    = "PER_TOPIC_PER_PARTITION"
  broker_node_group_info {
    instance_type   = var.broker_instance_type
    client_subnets  = var.subnet_ids
    security_groups = [aws_security_group.msk.id]
    storage_info {
      ebs_storage_info {
        volume_size = 100
      }
    }
  }
  client_authentication {
    unauthenticated = false
    sasl {
      iam = true
    }
  }
  encryption_info {
    encryption_at_rest_kms_key_arn = var.kms_key_arn
    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }
  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.broker[0].name
      }
    }
  }
  tags = var.tags
}

data "aws_msk_bootstrap_brokers" "provisioned" {
  count       = var.serverless ? 0 : 1
  cluster_arn = aws_msk_cluster.this[0].arn
}

data "aws_msk_bootstrap_brokers" "serverless" {
  count       = var.serverless ? 1 : 0
  cluster_arn = aws_msk_serverless_cluster.this[0].arn
}
