// The app synthesized as a team would deploy it, checked resource by resource
// with aws-cdk-lib/assertions, and by cdk-nag's AwsSolutions rules (every
// finding fixed or suppressed with a reason in code).

import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { App, Aspects, Stack } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { vigilApp, memberTemplate } from "../lib/app";
import { RESPONSE_ACTIONS } from "../lib/member-roles";

function synth(mode: "ecs" | "lambda"): Stack {
  const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), "vigil-cdk-")) });
  let lambdaAsset: string | undefined;
  if (mode === "lambda") {
    lambdaAsset = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-lambda-"));
    fs.writeFileSync(path.join(lambdaAsset, "bootstrap"), "#!/bin/sh\nexec vigil lambda\n");
  }
  const stack = vigilApp(app, {
    organizationId: "o-a1b2c3d4e5",
    memberTargets: ["ou-ab12-prod", "ou-ab12-dev"],
    mode,
    account: "222222222222",
    region: "eu-west-1",
    lambdaAsset,
  });
  Aspects.of(app).add(new AwsSolutionsChecks());
  app.synth();
  return stack;
}

const ecsStack = synth("ecs");
const ecs = Template.fromStack(ecsStack);

function nagErrors(stack: Stack): string[] {
  return Annotations.fromStack(stack)
    .findError("*", Match.stringLikeRegexp("AwsSolutions-.*"))
    .map((e) => `${e.id}: ${String(e.entry.data).split("\n")[0]}`);
}

test("the log bucket: SSE-KMS, versioned, Object Lock GOVERNANCE 365 days, Glacier after 90 days", () => {
  ecs.hasResourceProperties("AWS::S3::Bucket", {
    BucketEncryption: {
      ServerSideEncryptionConfiguration: [
        Match.objectLike({ ServerSideEncryptionByDefault: Match.objectLike({ SSEAlgorithm: "aws:kms" }) }),
      ],
    },
    VersioningConfiguration: { Status: "Enabled" },
    ObjectLockEnabled: true,
    ObjectLockConfiguration: {
      ObjectLockEnabled: "Enabled",
      Rule: { DefaultRetention: { Mode: "GOVERNANCE", Days: 365 } },
    },
    LifecycleConfiguration: {
      Rules: Match.arrayWith([
        Match.objectLike({ Transitions: [{ StorageClass: "GLACIER", TransitionInDays: 90 }] }),
      ]),
    },
    PublicAccessBlockConfiguration: Match.objectLike({ BlockPublicAcls: true, RestrictPublicBuckets: true }),
  });
});

test("every bucket and queue refuses requests without TLS", () => {
  const denies = (type: string) =>
    Object.values(ecs.findResources(type)).filter((r) =>
      JSON.stringify(r).includes('"aws:SecureTransport":"false"'),
    ).length;
  assert.equal(denies("AWS::S3::BucketPolicy"), Object.keys(ecs.findResources("AWS::S3::Bucket")).length);
  assert.equal(denies("AWS::SQS::QueuePolicy") > 0, true);
});

test("the organization's trail and flow logs may write only from inside the organization", () => {
  const policy = JSON.stringify(ecs.findResources("AWS::S3::BucketPolicy"));
  for (const service of ["cloudtrail.amazonaws.com", "delivery.logs.amazonaws.com"]) {
    assert.ok(policy.includes(service), service);
  }
  assert.ok(policy.includes('"aws:SourceOrgID":"o-a1b2c3d4e5"'));
});

test("two queues, each with a dead-letter queue after five receives, KMS-encrypted", () => {
  const queues = Object.values(ecs.findResources("AWS::SQS::Queue"));
  const main = queues.filter((q) => q.Properties.RedrivePolicy);
  assert.equal(main.length, 2);
  for (const q of main) {
    assert.equal(q.Properties.RedrivePolicy.maxReceiveCount, 5);
    assert.ok(q.Properties.KmsMasterKeyId);
    assert.equal(q.Properties.VisibilityTimeout, 300);
  }
});

test("new objects under AWSLogs/ notify the objects queue", () => {
  ecs.hasResourceProperties("Custom::S3BucketNotifications", {
    NotificationConfiguration: {
      QueueConfigurations: [
        Match.objectLike({
          Events: ["s3:ObjectCreated:*"],
          Filter: { Key: { FilterRules: [{ Name: "prefix", Value: "AWSLogs/" }] } },
        }),
      ],
    },
  });
});

test("the organization's bus takes members' events and forwards what Vigil reads", () => {
  ecs.hasResourceProperties("AWS::Events::EventBusPolicy", {
    Statement: Match.objectLike({
      Action: "events:PutEvents",
      Condition: { StringEquals: { "aws:PrincipalOrgID": "o-a1b2c3d4e5" } },
    }),
  });
  const patterns = Object.values(ecs.findResources("AWS::Events::Rule")).map((r) =>
    JSON.stringify(r.Properties.EventPattern),
  );
  assert.ok(patterns.some((p) => p.includes("via CloudTrail")));
  assert.ok(patterns.some((p) => p.includes("GuardDuty Finding")));
  assert.ok(patterns.some((p) => p.includes("Security Hub Findings - Imported")));
});

test("the service role reads telemetry and assumes only Vigil's roles, inside the organization", () => {
  const policies = JSON.stringify(ecs.findResources("AWS::IAM::Policy"));
  assert.ok(policies.includes("sqs:ReceiveMessage"));
  assert.ok(policies.includes("sqs:DeleteMessage"));
  assert.ok(policies.includes("sqs:ChangeMessageVisibility"));
  assert.ok(policies.includes(":role/VigilResponder") && policies.includes(":role/VigilAudit"));
  assert.ok(policies.includes('"aws:ResourceOrgID":"o-a1b2c3d4e5"'));
  for (const p of Object.values(ecs.findResources("AWS::IAM::Policy"))) {
    for (const s of p.Properties.PolicyDocument.Statement) {
      const actions = [s.Action].flat();
      assert.ok(!actions.includes("*"), `no action is *: ${JSON.stringify(s)}`);
    }
  }
});

test("ECS: one Fargate task with its store on encrypted EFS, behind TLS 1.3", () => {
  ecs.resourceCountIs("AWS::ECS::Service", 1);
  ecs.hasResourceProperties("AWS::ECS::Service", { DesiredCount: 1, LaunchType: "FARGATE" });
  ecs.hasResourceProperties("AWS::EFS::FileSystem", { Encrypted: true });
  ecs.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
    Protocol: "HTTPS",
    Port: 443,
    SslPolicy: "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
  });
});

test("the member roles go to every account of the target OUs as a StackSet", () => {
  ecs.hasResourceProperties("AWS::CloudFormation::StackSet", {
    PermissionModel: "SERVICE_MANAGED",
    AutoDeployment: { Enabled: true, RetainStacksOnAccountRemoval: false },
    StackInstancesGroup: [
      Match.objectLike({ DeploymentTargets: { OrganizationalUnitIds: ["ou-ab12-prod", "ou-ab12-dev"] } }),
    ],
  });
});

test("the member roles trust the service role with the external id; the responder has only the playbooks' actions", () => {
  const { template, stack } = memberTemplate("222222222222");
  const roles = Object.values(JSON.parse(template).Resources as Record<string, any>).filter(
    (r) => r.Type === "AWS::IAM::Role",
  );
  assert.equal(roles.length, 2);
  for (const r of roles) {
    const trust = JSON.stringify(r.Properties.AssumeRolePolicyDocument);
    assert.ok(trust.includes(":iam::222222222222:role/VigilService"), trust);
    assert.ok(trust.includes("sts:ExternalId"), trust);
  }
  const member = Template.fromStack(stack);
  member.hasResourceProperties("AWS::IAM::Policy", {
    PolicyDocument: { Statement: [Match.objectLike({ Action: RESPONSE_ACTIONS, Effect: "Allow" })] },
  });
  assert.deepEqual(nagErrors(stack), []);
});

test("cdk-nag AwsSolutions: no unsuppressed error, ECS and Lambda", () => {
  assert.deepEqual(nagErrors(ecsStack), []);
  const lambdaStack = synth("lambda");
  assert.deepEqual(nagErrors(lambdaStack), []);
  const l = Template.fromStack(lambdaStack);
  l.resourceCountIs("AWS::ECS::Service", 0);
  l.hasResourceProperties("AWS::Lambda::Function", { Runtime: "provided.al2023", Handler: "bootstrap" });
  l.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
    BatchSize: 10,
    FunctionResponseTypes: ["ReportBatchItemFailures"],
  });
});
