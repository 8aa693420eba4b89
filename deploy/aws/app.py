"""The AWS reference deployment of tweetdesk (AWS CDK v2, Python): `cdk deploy` from this folder, see
docs/deploy-aws.md. Context (cdk.json, or -c name=value):

  certificateArn   ACM certificate for the ALB's HTTPS listener (required to deploy; synth uses a placeholder)
  imageTag         tag of the tweetdesk image in the stack's ECR repository (default: latest)
  desiredCount     tasks of serve and of ingest (default 1; 0 for the first deploy, before the image is pushed)
  allowedCidr      who may reach the ALB (default 0.0.0.0/0: the public tracking page is public)
  region           where to deploy (default: CDK_DEFAULT_REGION, else us-east-1); the account comes from your
                   AWS credentials at deploy time
"""

from __future__ import annotations

import os

import aws_cdk as cdk
from tweetdesk_stack import TweetdeskStack

PLACEHOLDER_CERT = "arn:aws:acm:us-east-1:111111111111:certificate/00000000-0000-0000-0000-000000000000"

app = cdk.App()
TweetdeskStack(
    app,
    "Tweetdesk",
    certificate_arn=app.node.try_get_context("certificateArn") or PLACEHOLDER_CERT,
    image_tag=app.node.try_get_context("imageTag") or "latest",
    allowed_cidr=app.node.try_get_context("allowedCidr") or "0.0.0.0/0",
    desired_count=int(app.node.try_get_context("desiredCount") if app.node.try_get_context("desiredCount") is not None
                      else 1),
    env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
                        region=app.node.try_get_context("region") or os.environ.get("CDK_DEFAULT_REGION") or "us-east-1"),
    description="tweetdesk: MSK Serverless, EMR Serverless stream job, RDS PostgreSQL, ECS Fargate serve + ingest",
)
app.synth()
