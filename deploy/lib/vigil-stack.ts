// Vigil in the organization's security tooling account: the log bucket the
// organization trail and flow logs write to, the queues that announce its
// objects and carry the organization's EventBridge events, the Vigil service
// (ECS Fargate, or a Lambda function), its least-privilege role, the API behind
// a TLS load balancer, and the StackSet that puts Vigil's roles into every
// member account.

import * as fs from "fs";
import * as path from "path";
import { CfnStackSet, Duration, Fn, IgnoreMode, RemovalPolicy, Stack, StackProps } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as efs from "aws-cdk-lib/aws-efs";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as s3n from "aws-cdk-lib/aws-s3-notifications";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";
import { AUDIT_ROLE, RESPONSE_ROLE } from "./member-roles";

export const SERVICE_ROLE = "VigilService";

/** The repository: the image's build context (compiled code runs from deploy/dist/lib). */
const REPO = path.join(__dirname, "..", "..", "..");

export interface VigilProps extends StackProps {
  /** The organization's id (`o-…`): who may write logs and events. */
  readonly organizationId: string;
  /** The OUs (or root `r-…`) the member roles are deployed to. */
  readonly memberTargets: string[];
  /** `ecs` (the service, with the API) or `lambda` (detection only). */
  readonly mode: "ecs" | "lambda";
  /** An ACM certificate for the API's load balancer (ecs mode). */
  readonly certificateArn?: string;
  /** Who may reach the API (a CIDR), ecs mode. */
  readonly allowedCidr?: string;
  /** The directory holding the Lambda package (`bootstrap`), lambda mode. */
  readonly lambdaAsset?: string;
  /** The member roles' template, as the StackSet deploys it. */
  readonly memberTemplate: string;
}

export class VigilStack extends Stack {
  readonly bucket: s3.Bucket;
  readonly objects: sqs.Queue;
  readonly events: sqs.Queue;

  // The region's first two zones, resolved at deploy time (not looked up at
  // synth, which needs credentials and would pin the template to one account).
  get availabilityZones(): string[] {
    return [Fn.select(0, Fn.getAzs()), Fn.select(1, Fn.getAzs())];
  }

  constructor(scope: Construct, id: string, props: VigilProps) {
    super(scope, id, props);
    const key = new kms.Key(this, "LogKey", {
      description: "Vigil: the organization's logs",
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // Services that write logs and queue messages encrypt with it.
    for (const service of ["cloudtrail.amazonaws.com", "delivery.logs.amazonaws.com"]) {
      key.grantEncryptDecrypt(new iam.ServicePrincipal(service));
    }

    // Server access logs of the log bucket and the load balancer's logs.
    const accessLogs = new s3.Bucket(this, "AccessLogs", {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(365) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    NagSuppressions.addResourceSuppressions(accessLogs, [
      { id: "AwsSolutions-S1", reason: "The access-log bucket itself: logging its own access would loop" },
    ]);

    this.bucket = new s3.Bucket(this, "Logs", {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: key,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectLockEnabled: true,
      objectLockDefaultRetention: s3.ObjectLockRetention.governance(Duration.days(365)),
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: "logs-bucket/",
      lifecycleRules: [
        { transitions: [{ storageClass: s3.StorageClass.GLACIER, transitionAfter: Duration.days(90) }] },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // The organization trail and flow logs write here.
    const org = { StringEquals: { "aws:SourceOrgID": props.organizationId } };
    for (const service of ["cloudtrail.amazonaws.com", "delivery.logs.amazonaws.com"]) {
      this.bucket.addToResourcePolicy(
        new iam.PolicyStatement({
          principals: [new iam.ServicePrincipal(service)],
          actions: ["s3:GetBucketAcl"],
          resources: [this.bucket.bucketArn],
          conditions: org,
        }),
      );
      this.bucket.addToResourcePolicy(
        new iam.PolicyStatement({
          principals: [new iam.ServicePrincipal(service)],
          actions: ["s3:PutObject"],
          resources: [this.bucket.arnForObjects("AWSLogs/*")],
          conditions: { StringEquals: { "s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceOrgID": props.organizationId } },
        }),
      );
    }

    // Queues: S3 notifications of new objects, and the organization's events.
    // A key of their own: S3's and EventBridge's grants on it name the bucket
    // and the rules, which would otherwise make the bucket's key depend on
    // the bucket.
    const queueKey = new kms.Key(this, "QueueKey", {
      description: "Vigil: the queues that announce the organization's telemetry",
      enableKeyRotation: true,
    });
    for (const service of ["s3.amazonaws.com", "events.amazonaws.com"]) {
      queueKey.grantEncryptDecrypt(new iam.ServicePrincipal(service));
    }
    const queue = (name: string) => {
      const dlq = new sqs.Queue(this, `${name}Dlq`, {
        encryption: sqs.QueueEncryption.KMS,
        encryptionMasterKey: queueKey,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
      });
      return new sqs.Queue(this, name, {
        encryption: sqs.QueueEncryption.KMS,
        encryptionMasterKey: queueKey,
        enforceSSL: true,
        visibilityTimeout: Duration.minutes(5),
        retentionPeriod: Duration.days(4),
        deadLetterQueue: { queue: dlq, maxReceiveCount: 5 },
      });
    };
    this.objects = queue("Objects");
    this.events = queue("Events");
    this.bucket.addEventNotification(
      s3.EventType.OBJECT_CREATED,
      new s3n.SqsDestination(this.objects),
      { prefix: "AWSLogs/" },
    );
    // The notification is configured by a function of CDK's own.
    const handler = this.node.children.find((c) => c.node.id.startsWith("BucketNotificationsHandler"));
    if (handler) {
      NagSuppressions.addResourceSuppressions(
        handler,
        [
          {
            id: "AwsSolutions-IAM4",
            reason: "CDK's bucket-notification handler writes only its own logs (AWSLambdaBasicExecutionRole)",
          },
        ],
        true,
      );
    }

    // The organization's event bus: member accounts' rules forward CloudTrail
    // API calls, GuardDuty and Security Hub findings here.
    const bus = new events.EventBus(this, "OrgBus", { eventBusName: "vigil-org" });
    new events.CfnEventBusPolicy(this, "OrgBusPolicy", {
      eventBusName: bus.eventBusName,
      statementId: "OrganizationMembersPutEvents",
      statement: {
        Effect: "Allow",
        Principal: "*",
        Action: "events:PutEvents",
        Resource: bus.eventBusArn,
        Condition: { StringEquals: { "aws:PrincipalOrgID": props.organizationId } },
      },
    });
    const forward = (rule: string, pattern: events.EventPattern) =>
      new events.Rule(this, rule, { eventBus: bus, eventPattern: pattern, targets: [new targets.SqsQueue(this.events)] });
    forward("CloudTrailCalls", { detailType: events.Match.wildcard("* via CloudTrail") });
    forward("GuardDutyFindings", { source: ["aws.guardduty"], detailType: ["GuardDuty Finding"] });
    forward("SecurityHubFindings", { source: ["aws.securityhub"], detailType: ["Security Hub Findings - Imported"] });

    // Vigil's own permissions: read the queues and the logs, assume its roles
    // in member accounts, read the organization.
    const readTelemetry = (grantee: iam.IGrantable) => {
      this.objects.grantConsumeMessages(grantee);
      this.events.grantConsumeMessages(grantee);
      this.bucket.grantRead(grantee, "AWSLogs/*");
      grantee.grantPrincipal.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ["sts:AssumeRole"],
          resources: [RESPONSE_ROLE, AUDIT_ROLE].map((r) => `arn:${this.partition}:iam::*:role/${r}`),
          conditions: { StringEquals: { "aws:ResourceOrgID": props.organizationId } },
        }),
      );
      grantee.grantPrincipal.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: [
            "organizations:ListAccounts",
            "organizations:ListParents",
            "organizations:DescribeOrganizationalUnit",
            "organizations:ListTagsForResource",
            "ec2:DescribeRegions",
          ],
          resources: ["*"],
        }),
      );
    };
    const serviceRole = new iam.Role(this, "ServiceRole", {
      roleName: SERVICE_ROLE,
      assumedBy: new iam.CompositePrincipal(
        new iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
        new iam.ServicePrincipal("lambda.amazonaws.com"),
      ),
      description: "The Vigil service: reads telemetry, assumes its roles in member accounts",
    });
    readTelemetry(serviceRole);
    NagSuppressions.addResourceSuppressions(
      serviceRole,
      [
        {
          id: "AwsSolutions-IAM5",
          reason:
            "Objects are any key under AWSLogs/ (new every five minutes); the member roles are in every account of the organization (the role name is fixed, the account is the wildcard, and aws:ResourceOrgID keeps it inside the organization); Organizations and DescribeRegions have no resource-level permissions",
        },
      ],
      true,
    );

    if (props.mode === "lambda") {
      this.lambdaService(props, serviceRole);
    } else {
      this.ecsService(props, serviceRole, accessLogs);
    }

    // The member roles in every account of the target OUs.
    new CfnStackSet(this, "MemberRoles", {
      stackSetName: "vigil-member-roles",
      permissionModel: "SERVICE_MANAGED",
      autoDeployment: { enabled: true, retainStacksOnAccountRemoval: false },
      capabilities: ["CAPABILITY_NAMED_IAM"],
      callAs: "DELEGATED_ADMIN",
      templateBody: props.memberTemplate,
      parameters: [{ parameterKey: "ExternalId", parameterValue: "{{resolve:secretsmanager:vigil/external-id}}" }],
      stackInstancesGroup: [
        { deploymentTargets: { organizationalUnitIds: props.memberTargets }, regions: [this.region] },
      ],
    });
  }

  private ecsService(props: VigilProps, role: iam.Role, accessLogs: s3.Bucket) {
    const vpc = new ec2.Vpc(this, "Vpc", {
      maxAzs: 2,
      natGateways: 1,
      flowLogs: { all: { destination: ec2.FlowLogDestination.toS3(this.bucket, "vpc/") } },
    });
    const cluster = new ecs.Cluster(this, "Cluster", { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
    // The store on EFS: one task (SQLite in WAL mode shares memory between its
    // writers, so its processes must be on one host), durable across restarts.
    const store = new efs.FileSystem(this, "Store", {
      vpc,
      encrypted: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const task = new ecs.FargateTaskDefinition(this, "Task", {
      cpu: 1024,
      memoryLimitMiB: 2048,
      taskRole: role,
      volumes: [{ name: "store", efsVolumeConfiguration: { fileSystemId: store.fileSystemId, transitEncryption: "ENABLED" } }],
    });
    const container = task.addContainer("vigil", {
      image: ecs.ContainerImage.fromAsset(REPO, {
        file: "Dockerfile",
        ignoreMode: IgnoreMode.DOCKER,
        exclude: fs
          .readFileSync(path.join(REPO, ".dockerignore"), "utf8")
          .split("\n")
          .filter((l) => l.trim() && !l.startsWith("#")),
      }),
      command: ["serve", "--config", "/etc/vigil/vigil.toml", "--listen", "0.0.0.0:8750", "--data-dir", "/var/lib/vigil"],
      environment: {
        VIGIL_OBJECTS_QUEUE: this.objects.queueUrl,
        VIGIL_EVENTS_QUEUE: this.events.queueUrl,
      },
      logging: ecs.LogDrivers.awsLogs({
        streamPrefix: "vigil",
        logRetention: logs.RetentionDays.ONE_YEAR,
      }),
      portMappings: [{ containerPort: 8750 }],
    });
    container.addMountPoints({ containerPath: "/var/lib/vigil", sourceVolume: "store", readOnly: false });
    store.grantRootAccess(task.taskRole);
    const service = new ecs.FargateService(this, "Service", {
      cluster,
      taskDefinition: task,
      desiredCount: 1,
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
    });
    store.connections.allowDefaultPortFrom(service);

    const alb = new elbv2.ApplicationLoadBalancer(this, "Api", { vpc, internetFacing: true, dropInvalidHeaderFields: true });
    alb.logAccessLogs(accessLogs, "alb");
    const listener = alb.addListener("Https", {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      sslPolicy: elbv2.SslPolicy.TLS13_RES,
      certificates: [elbv2.ListenerCertificate.fromArn(props.certificateArn ?? "")],
      open: false,
    });
    alb.connections.allowFrom(ec2.Peer.ipv4(props.allowedCidr ?? "10.0.0.0/8"), ec2.Port.tcp(443), "The API's clients");
    listener.addTargets("Vigil", {
      port: 8750,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [service],
      // Every API route is SigV4-signed: an unsigned check is answered 403,
      // which proves the process is up and serving.
      healthCheck: { path: "/api/v1/health", healthyHttpCodes: "200,403" },
    });
    NagSuppressions.addResourceSuppressions(
      task,
      [{ id: "AwsSolutions-ECS2", reason: "The queue URLs are not secrets; API keys come from the configuration file in the image" }],
    );
    if (task.executionRole) {
      NagSuppressions.addResourceSuppressions(
        task.executionRole,
        [{ id: "AwsSolutions-IAM5", reason: "ecr:GetAuthorizationToken has no resource-level permissions; the rest is CDK's grant on this image's repository and log group" }],
        true,
      );
    }
    NagSuppressions.addResourceSuppressions(
      alb,
      [{ id: "AwsSolutions-EC23", reason: "Ingress is limited to allowedCidr; the security group rule is built from it" }],
      true,
    );
  }

  private lambdaService(props: VigilProps, role: iam.Role) {
    const fn = new lambda.Function(this, "Function", {
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.X86_64,
      handler: "bootstrap",
      code: lambda.Code.fromAsset(props.lambdaAsset ?? path.join(REPO, "target", "lambda", "vigil")),
      role,
      memorySize: 1024,
      timeout: Duration.minutes(4),
      environment: { VIGIL_DATA_DIR: "/tmp/vigil" },
      logGroup: new logs.LogGroup(this, "FunctionLogs", { retention: logs.RetentionDays.ONE_YEAR }),
    });
    for (const q of [this.objects, this.events]) {
      fn.addEventSource(new SqsEventSource(q, { batchSize: 10, reportBatchItemFailures: true }));
    }
    role.addManagedPolicy(iam.ManagedPolicy.fromAwsManagedPolicyName("service-role/AWSLambdaBasicExecutionRole"));
    NagSuppressions.addResourceSuppressions(role, [
      { id: "AwsSolutions-IAM4", reason: "AWSLambdaBasicExecutionRole only lets the function write its own logs" },
    ], true);
    NagSuppressions.addStackSuppressions(this, [
      { id: "AwsSolutions-L1", reason: "provided.al2023 is the current OS-only runtime for a Rust binary" },
    ]);
  }
}
