terraform {
  required_version = ">= 1.6"
  required_providers {
    aws    = { source = "hashicorp/aws", version = "= 5.82.2" }
    random = { source = "hashicorp/random", version = "= 3.6.3" }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = { Project = "sendpy", Environment = var.name }
  }
}
