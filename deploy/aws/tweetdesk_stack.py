"""One stack: VPC (private subnets), MSK Serverless (IAM auth), EMR Serverless (the stream job), S3 (Parquet,
checkpoints, job code), RDS PostgreSQL (tickets), ECS Fargate (serve behind an HTTPS ALB, ingest), Secrets
Manager (X credentials, API key, database), CloudWatch logs, one KMS key. Every IAM grant names its resources.

Settings reach the containers as the same TWEETDESK_* variables as everywhere else (tests/deploy/test_aws.py
checks every name against Settings and every container command against the CLI).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_emrserverless as emrs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_msk as msk
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as sm
from aws_cdk import aws_wafv2 as wafv2
from aws_cdk import custom_resources as cr
from checks import skip_checks
from constructs import Construct

LOG_RETENTION = logs.RetentionDays.ONE_YEAR
WORK_DIR = "/var/lib/tweetdesk"  # the image's TWEETDESK_WORK_DIR; an ephemeral volume (root file system is read-only)
# Created by the roles (tweetdesk.kafka.ensure_topics) with retention.ms = 24 h: X's data rules.
TOPICS = ("tweets.raw", "tweets.enriched", "tweets.dead")
# Container commands (the image's entrypoint is `tweetdesk`). The ingest role polls our account's mentions
# timeline (`ingest mentions`: the customers who wrote to us, at X's owned-read price, with user context); a
# listening role on the filtered stream (`ingest x`) can be added beside it with the bearer token.
SERVE_COMMAND = ["serve"]
INGEST_COMMAND = ["ingest", "mentions"]


class TweetdeskStack(cdk.Stack):
    def __init__(self, scope: Construct, cid: str, *, certificate_arn: str, image_tag: str, allowed_cidr: str,
                 desired_count: int = 1, **kw) -> None:
        super().__init__(scope, cid, **kw)
        key = kms.Key(self, "Key", enable_key_rotation=True, alias="alias/tweetdesk",
                      description="tweetdesk: S3, logs, secrets, RDS, ECR")
        # CloudWatch Logs encrypts with the key only if the key policy lets the regional logs service use it.
        key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"],  # "*" in a key policy means this key
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                    f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:*"}},
        ))

        # --- network ---------------------------------------------------------------------------------------
        vpc = ec2.Vpc(self, "Vpc", max_azs=2, nat_gateways=1, subnet_configuration=[
            ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
            ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
            ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
        ])
        vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(
            logs.LogGroup(self, "FlowLogs", retention=LOG_RETENTION, encryption_key=key)))
        # S3 traffic (Parquet, checkpoints, the job's code, image layers) stays off the NAT gateway.
        vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        private_sel = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        private = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        apps_sg = ec2.SecurityGroup(self, "AppsSg", vpc=vpc, description="tweetdesk tasks and the stream job")
        msk_sg = ec2.SecurityGroup(self, "MskSg", vpc=vpc, description="MSK Serverless", allow_all_outbound=False)
        msk_sg.add_ingress_rule(apps_sg, ec2.Port.tcp(9098), "Kafka over TLS with IAM auth")

        # --- buckets -----------------------------------------------------------------------------------------
        def bucket(name: str, **extra) -> s3.Bucket:
            return s3.Bucket(self, name, encryption=s3.BucketEncryption.KMS, encryption_key=key, bucket_key_enabled=True,
                             block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True, versioned=True,
                             removal_policy=cdk.RemovalPolicy.RETAIN, **extra)

        # ALB access logs must use SSE-S3 (the log delivery service cannot use a customer key).
        access_logs = s3.Bucket(self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED,
                                block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True, versioned=True,
                                object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
                                lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(365))],
                                removal_policy=cdk.RemovalPolicy.RETAIN)
        skip_checks(access_logs, {"CKV_AWS_18": "this is the access-log bucket; logging it to itself would loop",
                                  "CKV_AWS_145": "ALB log delivery writes only to SSE-S3 buckets, not SSE-KMS"})
        data = bucket("Data", server_access_logs_bucket=access_logs, server_access_logs_prefix="s3/data/")
        code = bucket("Code", server_access_logs_bucket=access_logs, server_access_logs_prefix="s3/code/")

        # --- Kafka: MSK Serverless, IAM access control only ---------------------------------------------------
        cluster = msk.CfnServerlessCluster(
            self, "Kafka", cluster_name="tweetdesk",
            client_authentication=msk.CfnServerlessCluster.ClientAuthenticationProperty(
                sasl=msk.CfnServerlessCluster.SaslProperty(iam=msk.CfnServerlessCluster.IamProperty(enabled=True))),
            vpc_configs=[msk.CfnServerlessCluster.VpcConfigProperty(
                subnet_ids=private.subnet_ids, security_groups=[msk_sg.security_group_id])],
        )
        # CloudFormation does not return a serverless cluster's bootstrap brokers; ask the Kafka API at deploy time.
        brokers = cr.AwsCustomResource(
            self, "KafkaBootstrap",
            on_update=cr.AwsSdkCall(service="Kafka", action="getBootstrapBrokers",
                                    parameters={"ClusterArn": cluster.attr_arn},
                                    physical_resource_id=cr.PhysicalResourceId.of(cluster.attr_arn)),
            policy=cr.AwsCustomResourcePolicy.from_statements([iam.PolicyStatement(
                actions=["kafka:GetBootstrapBrokers"], resources=[cluster.attr_arn])]),
            install_latest_aws_sdk=False,
        )
        bootstrap = brokers.get_response_field("BootstrapBrokerStringSaslIam")
        kafka = _KafkaArns(self, cluster)

        # --- secrets ---------------------------------------------------------------------------------------------
        x_secret = sm.Secret(self, "XCredentials", secret_name="tweetdesk/x", encryption_key=key,
                             description="X API: consumer_key, consumer_secret, access_token, access_token_secret, "
                                         "bearer_token (put the real values after the first deploy)",
                             generate_secret_string=sm.SecretStringGenerator(
                                 secret_string_template='{"consumer_key": "", "consumer_secret": "", '
                                                        '"access_token": "", "access_token_secret": ""}',
                                 generate_string_key="bearer_token"))
        api_key = sm.Secret(self, "ApiKey", secret_name="tweetdesk/api-key", encryption_key=key,
                            description="tweetdesk admin API key (TWEETDESK_API_KEY)",
                            generate_secret_string=sm.SecretStringGenerator(exclude_punctuation=True,
                                                                            password_length=40))
        for s in (x_secret, api_key):
            skip_checks(s, {"CKV2_AWS_57": "rotated by hand (docs/deploy-aws.md, 'Rotate secrets'): X issues these "
                                           "tokens in its developer portal; the API key is shared with agents"})

        # --- ticket store: RDS PostgreSQL, isolated subnets -------------------------------------------------
        db_sg = ec2.SecurityGroup(self, "DbSg", vpc=vpc, description="RDS PostgreSQL", allow_all_outbound=False)
        db_sg.add_ingress_rule(apps_sg, ec2.Port.tcp(5432), "tweetdesk tasks")
        db = rds.DatabaseInstance(
            self, "Db", engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17_9),
            instance_type=ec2.InstanceType.of(ec2.InstanceClass.BURSTABLE4_GRAVITON, ec2.InstanceSize.SMALL),
            vpc=vpc, vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[db_sg], database_name="tweetdesk",
            credentials=rds.Credentials.from_generated_secret("tweetdesk", secret_name="tweetdesk/db",
                                                              encryption_key=key),
            multi_az=True, storage_encrypted=True, storage_encryption_key=key, allocated_storage=20,
            storage_type=rds.StorageType.GP3, backup_retention=cdk.Duration.days(7), deletion_protection=True,
            instance_identifier="tweetdesk", cloudwatch_logs_exports=["postgresql", "upgrade"],
            monitoring_interval=cdk.Duration.seconds(60), enable_performance_insights=True,
            performance_insight_encryption_key=key, auto_minor_version_upgrade=True, copy_tags_to_snapshot=True,
            iam_authentication=True, removal_policy=cdk.RemovalPolicy.SNAPSHOT,
            parameter_group=rds.ParameterGroup(
                self, "DbParams", engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17_9),
                parameters={"rds.force_ssl": "1", "log_min_duration_statement": "1000"}),
        )
        # RDS's log groups made here, not through cloudwatch_logs_retention (that adds a Lambda to set retention).
        for kind in ("postgresql", "upgrade"):
            group = logs.LogGroup(self, f"DbLogs{kind.title()}", log_group_name=f"/aws/rds/instance/tweetdesk/{kind}",
                                  retention=LOG_RETENTION, encryption_key=key, removal_policy=cdk.RemovalPolicy.RETAIN)
            db.node.add_dependency(group)
        skip_checks(db.secret, {"CKV2_AWS_57": "rotating the password under running tasks breaks their new "
                                               "connections; rotate by hand with a rolling restart (docs)"})

        # --- container image, cluster, logs ------------------------------------------------------------------------
        repo = ecr.Repository(self, "Images", repository_name="tweetdesk", image_scan_on_push=True,
                              image_tag_mutability=ecr.TagMutability.IMMUTABLE,
                              encryption=ecr.RepositoryEncryption.KMS, encryption_key=key,
                              removal_policy=cdk.RemovalPolicy.RETAIN)
        image = ecs.ContainerImage.from_ecr_repository(repo, image_tag)
        ecs_cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)

        common_env = {
            "TWEETDESK_KAFKA_BOOTSTRAP": bootstrap,
            "TWEETDESK_KAFKA_AUTH": "msk_iam",
            "TWEETDESK_TOPIC_PARTITIONS": "6",
            "TWEETDESK_TOPIC_REPLICATION": "3",  # MSK Serverless keeps 3 replicas whatever is asked
            "TWEETDESK_WORK_DIR": WORK_DIR,
        }
        x = lambda field: ecs.Secret.from_secrets_manager(x_secret, field)  # noqa: E731

        def task(name: str, cpu: int, memory: int) -> ecs.FargateTaskDefinition:
            td = ecs.FargateTaskDefinition(self, f"{name}Task", cpu=cpu, memory_limit_mib=memory,
                                           runtime_platform=ecs.RuntimePlatform(
                                               cpu_architecture=ecs.CpuArchitecture.X86_64,
                                               operating_system_family=ecs.OperatingSystemFamily.LINUX))
            td.add_volume(name="work")
            return td

        def container(td: ecs.FargateTaskDefinition, name: str, command: list[str], env: dict, secrets: dict,
                      port: int | None = None) -> ecs.ContainerDefinition:
            group = logs.LogGroup(self, f"{name}Logs", log_group_name=f"/tweetdesk/{name.lower()}",
                                  retention=LOG_RETENTION, encryption_key=key,
                                  removal_policy=cdk.RemovalPolicy.RETAIN)
            c = td.add_container(name, image=image, command=command, environment=env, secrets=secrets,
                                 logging=ecs.LogDrivers.aws_logs(stream_prefix=name.lower(), log_group=group),
                                 readonly_root_filesystem=True, essential=True,
                                 port_mappings=[ecs.PortMapping(container_port=port)] if port else None,
                                 # The image's tini reaps Spark's and the broker's children; here: ECS's init.
                                 linux_parameters=ecs.LinuxParameters(self, f"{name}Linux", init_process_enabled=True))
            c.add_mount_points(ecs.MountPoint(container_path=WORK_DIR, source_volume="work", read_only=False))
            return c

        # serve: reply service + dashboard + API, behind the ALB (HTTPS only); runs the store's migrations at start.
        serve_td = task("Serve", cpu=1024, memory=2048)
        # The ALB is the one proxy in front (it appends the client to X-Forwarded-For): without this the throttle
        # would count every client's failed sign-ins as the load balancer's.
        container(serve_td, "Serve", SERVE_COMMAND, {**common_env, "TWEETDESK_HOST": "0.0.0.0", "TWEETDESK_PORT": "8080",
                                                     "TWEETDESK_TRUSTED_PROXIES": "1"},
                  {"TWEETDESK_DATABASE_SECRET": ecs.Secret.from_secrets_manager(db.secret),
                   "TWEETDESK_API_KEY": ecs.Secret.from_secrets_manager(api_key),
                   "TWEETDESK_X_CONSUMER_KEY": x("consumer_key"), "TWEETDESK_X_CONSUMER_SECRET": x("consumer_secret"),
                   "TWEETDESK_X_ACCESS_TOKEN": x("access_token"),
                   "TWEETDESK_X_ACCESS_TOKEN_SECRET": x("access_token_secret")},
                  port=8080)
        serve = ecs_patterns.ApplicationLoadBalancedFargateService(
            self, "Serve", cluster=ecs_cluster, task_definition=serve_td, desired_count=desired_count,
            # One reply service per consumer group (README: partitions are assigned, not shared).
            max_healthy_percent=100, min_healthy_percent=0,
            certificate=acm.Certificate.from_certificate_arn(self, "Cert", certificate_arn),
            protocol=elbv2.ApplicationProtocol.HTTPS, redirect_http=True, ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            public_load_balancer=True, open_listener=False, task_subnets=private_sel, security_groups=[apps_sg],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            health_check_grace_period=cdk.Duration.seconds(120),
        )
        serve.target_group.configure_health_check(path="/healthz", healthy_http_codes="200")
        lb = serve.load_balancer
        for port in (80, 443):
            lb.connections.allow_from(ec2.Peer.ipv4(allowed_cidr), ec2.Port.tcp(port), "clients")
        lb.set_attribute("routing.http.drop_invalid_header_fields.enabled", "true")
        # Below serve's TWEETDESK_HTTP_CHANNEL_TIMEOUT (30 s): the ALB ends idle connections to the task, never the
        # task one the ALB is about to reuse (a 502). docs/deploy-aws.md, "Slow clients, large bodies".
        lb.set_attribute("idle_timeout.timeout_seconds", "20")
        skip_checks(lb.connections.security_groups[0], {
            "CKV_AWS_260": "port 80 answers only with a redirect to HTTPS (redirect_http); nothing is served on it"})
        lb.log_access_logs(access_logs, prefix="alb")
        waf = wafv2.CfnWebACL(
            self, "Waf", scope="REGIONAL", default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("tweetdesk"),
            rules=[_managed_rule("AWSManagedRulesCommonRuleSet", 0),
                   _managed_rule("AWSManagedRulesKnownBadInputsRuleSet", 1),
                   wafv2.CfnWebACL.RuleProperty(
                       name="rate-limit", priority=2, action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                       statement=wafv2.CfnWebACL.StatementProperty(rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                           aggregate_key_type="IP", limit=1000)),
                       visibility_config=_visibility("rate-limit"))])
        wafv2.CfnWebACLAssociation(self, "WafAlb", resource_arn=lb.load_balancer_arn, web_acl_arn=waf.attr_arn)

        # ingest: our mentions timeline -> tweets.raw (user context, as serve); no port, no load balancer.
        ingest_td = task("Ingest", cpu=512, memory=1024)
        container(ingest_td, "Ingest", INGEST_COMMAND, common_env,
                  {"TWEETDESK_X_CONSUMER_KEY": x("consumer_key"), "TWEETDESK_X_CONSUMER_SECRET": x("consumer_secret"),
                   "TWEETDESK_X_ACCESS_TOKEN": x("access_token"),
                   "TWEETDESK_X_ACCESS_TOKEN_SECRET": x("access_token_secret")})
        ecs.FargateService(self, "IngestService", cluster=ecs_cluster, task_definition=ingest_td,
                           desired_count=desired_count,
                           # One poller of the mentions timeline (its since_id state is one task's): never two at once.
                           max_healthy_percent=100, min_healthy_percent=0, vpc_subnets=private_sel,
                           security_groups=[apps_sg], circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True))

        # Least privilege on Kafka: each role gets exactly the topics and consumer groups it uses.
        kafka.grant(serve_td.task_role, read=["tweets.enriched", "tweets.dead"], write=[],
                    groups=["tweetdesk-replies", "tweetdesk-replies-dead"])
        kafka.grant(ingest_td.task_role, read=[], write=["tweets.raw", "tweets.dead"], groups=[])

        # --- the stream job: EMR Serverless (Spark 4) --------------------------------------------------------------
        job_logs = logs.LogGroup(self, "StreamLogs", log_group_name="/tweetdesk/stream", retention=LOG_RETENTION,
                                 encryption_key=key, removal_policy=cdk.RemovalPolicy.RETAIN)
        emr_app = emrs.CfnApplication(
            self, "Stream", name="tweetdesk-stream", release_label="emr-spark-8.0.0", type="Spark",
            architecture="X86_64",
            network_configuration=emrs.CfnApplication.NetworkConfigurationProperty(
                subnet_ids=private.subnet_ids, security_group_ids=[apps_sg.security_group_id]),
            auto_start_configuration=emrs.CfnApplication.AutoStartConfigurationProperty(enabled=True),
            # A streaming job keeps the application busy; the timeout only stops it once the job is stopped.
            auto_stop_configuration=emrs.CfnApplication.AutoStopConfigurationProperty(enabled=True,
                                                                                      idle_timeout_minutes=15),
            maximum_capacity=emrs.CfnApplication.MaximumAllowedResourcesProperty(cpu="16 vCPU", memory="64 GB",
                                                                                 disk="200 GB"),
        )
        job_role = iam.Role(self, "StreamJobRole", assumed_by=iam.ServicePrincipal("emr-serverless.amazonaws.com"),
                            description="tweetdesk stream job (EMR Serverless)")
        data.grant_read_write(job_role, "parquet/*")
        data.grant_read_write(job_role, "checkpoints/*")
        data.grant_read(job_role)  # list the bucket (checkpoint and Parquet folders)
        code.grant_read(job_role)
        job_logs.grant_write(job_role)
        job_role.add_to_policy(iam.PolicyStatement(actions=["logs:DescribeLogGroups", "logs:DescribeLogStreams"],
                                                   resources=[job_logs.log_group_arn]))
        kafka.grant(job_role, read=["tweets.raw"], write=["tweets.enriched", "tweets.dead"],
                    groups=["tweetdesk-stream-reader"])

        # The only Lambda functions are the CDK's own deploy-time handlers (AwsCustomResource above; the VPC's
        # default-security-group lockdown). We write none.
        for node in self.node.find_all():
            if isinstance(node, cdk.CfnResource) and node.cfn_resource_type == "AWS::Lambda::Function":
                skip_checks(node, {
                    "CKV_AWS_115": "CDK deploy-time handler: CloudFormation invokes it once per deployment",
                    "CKV_AWS_116": "CDK deploy-time handler: invoked synchronously by CloudFormation, which reports "
                                   "a failure itself (a dead-letter queue would never receive anything)",
                    "CKV_AWS_117": "CDK deploy-time handler: calls only AWS APIs (Kafka, EC2), reaches nothing in "
                                   "the VPC",
                })

        out = lambda name, value, desc: cdk.CfnOutput(self, name, value=value, description=desc)  # noqa: E731
        out("DashboardUrl", f"https://{lb.load_balancer_dns_name}/", "point your DNS name (the certificate's) here")
        out("ImageRepositoryUri", repo.repository_uri, "push the tweetdesk image here")
        out("KafkaBootstrapBrokers", bootstrap, "MSK bootstrap brokers (IAM, port 9098)")
        out("DataBucket", data.bucket_name, "Parquet under parquet/, checkpoints under checkpoints/")
        out("CodeBucket", code.bucket_name, "the stream job's packed venv and entry point")
        out("StreamApplicationId", emr_app.attr_application_id, "EMR Serverless application")
        out("StreamJobRoleArn", job_role.role_arn, "the stream job's execution role")
        out("XSecretArn", x_secret.secret_arn, "put the X credentials here")
        out("ClusterName", ecs_cluster.cluster_name, "ECS cluster")
        out("ServeServiceName", serve.service.service_name, "ECS service of tweetdesk serve")


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(cloud_watch_metrics_enabled=True, metric_name=name,
                                                    sampled_requests_enabled=True)


def _managed_rule(name: str, priority: int) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name=name, priority=priority, override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
            vendor_name="AWS", name=name)),
        visibility_config=_visibility(name))


class _KafkaArns:
    """ARNs of the serverless cluster's topics and groups (arn:…:topic/<cluster name>/<cluster uuid>/<topic>)."""

    def __init__(self, stack: cdk.Stack, cluster: msk.CfnServerlessCluster):
        self.cluster_arn = cluster.attr_arn
        uuid = cdk.Fn.select(2, cdk.Fn.split("/", cluster.attr_arn))
        self._prefix = lambda kind: f"arn:{stack.partition}:kafka:{stack.region}:{stack.account}:{kind}/tweetdesk/{uuid}"

    def grant(self, role: iam.IRole, *, read: list[str], write: list[str], groups: list[str]) -> None:
        topic = lambda t: f"{self._prefix('topic')}/{t}"  # noqa: E731
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"], resources=[self.cluster_arn]))
        # Every role creates missing topics at start (tweetdesk.kafka.ensure_topics): describe + create ours only.
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["kafka-cluster:DescribeTopic", "kafka-cluster:CreateTopic"], resources=[topic(t) for t in TOPICS]))
        if read:
            role.add_to_principal_policy(iam.PolicyStatement(actions=["kafka-cluster:ReadData"],
                                                             resources=[topic(t) for t in read]))
        if write:
            role.add_to_principal_policy(iam.PolicyStatement(actions=["kafka-cluster:WriteData"],
                                                             resources=[topic(t) for t in write]))
            # The producers are idempotent (enable.idempotence): MSK checks this action on the cluster.
            role.add_to_principal_policy(iam.PolicyStatement(actions=["kafka-cluster:WriteDataIdempotently"],
                                                             resources=[self.cluster_arn]))
        if groups:
            role.add_to_principal_policy(iam.PolicyStatement(
                actions=["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
                resources=[f"{self._prefix('group')}/{g}" for g in groups]))
