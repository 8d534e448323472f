// Builds the app's stacks: the member roles' template first (synthesized on
// its own, to be the StackSet's body), then Vigil's stack around it.

import { App, Aspects, Stack } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { MemberRolesStack } from "./member-roles";
import { SERVICE_ROLE, VigilProps, VigilStack } from "./vigil-stack";

export interface AppProps
  extends Pick<VigilProps, "organizationId" | "memberTargets" | "mode" | "certificateArn" | "allowedCidr" | "lambdaAsset"> {
  readonly account?: string;
  readonly region?: string;
}

/** The member roles' template, as JSON, for the StackSet. */
export function memberTemplate(securityAccount: string): { template: string; stack: Stack } {
  const members = new App();
  const stack = new MemberRolesStack(members, "VigilMemberRoles", {
    securityAccount,
    serviceRoleName: SERVICE_ROLE,
  });
  Aspects.of(members).add(new AwsSolutionsChecks());
  const template = members.synth().getStackByName("VigilMemberRoles").template;
  return { template: JSON.stringify(template), stack };
}

export function vigilApp(app: App, props: AppProps): VigilStack {
  // Server access logs delivered by bucket policy, not by ACL (the log
  // buckets have ACLs off: bucket owner enforced).
  app.node.setContext("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", true);
  const env = {
    account: props.account ?? process.env.CDK_DEFAULT_ACCOUNT ?? "111111111111",
    region: props.region ?? process.env.CDK_DEFAULT_REGION ?? "us-east-1",
  };
  const { template } = memberTemplate(env.account);
  return new VigilStack(app, "Vigil", {
    env,
    organizationId: props.organizationId,
    memberTargets: props.memberTargets,
    mode: props.mode,
    certificateArn:
      props.certificateArn ?? `arn:aws:acm:${env.region}:${env.account}:certificate/00000000-0000-0000-0000-000000000000`,
    allowedCidr: props.allowedCidr,
    lambdaAsset: props.lambdaAsset,
    memberTemplate: template,
  });
}
