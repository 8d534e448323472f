#!/usr/bin/env node
// The CDK app. Context (cdk.json, or -c on the command line):
//   organizationId  the organization (o-…)
//   memberTargets   OU ids (or the root r-…) the member roles go to, comma-separated
//   mode            ecs (default) or lambda
//   certificateArn  the API's certificate (ecs)
//   allowedCidr     who may reach the API (ecs)
//   lambdaAsset     the directory holding the Lambda package's bootstrap (lambda)
// Every stack is checked by cdk-nag's AwsSolutions rules at synth.

import * as fs from "fs";
import * as path from "path";
import { App, Aspects } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { memberTemplate, vigilApp } from "../lib/app";

const app = new App({ outdir: process.env.CDK_OUTDIR ?? "cdk.out" });
const stack = vigilApp(app, {
  organizationId: app.node.tryGetContext("organizationId") ?? "o-exampleorgid",
  memberTargets: String(app.node.tryGetContext("memberTargets") ?? "r-exam").split(","),
  mode: app.node.tryGetContext("mode") === "lambda" ? "lambda" : "ecs",
  certificateArn: app.node.tryGetContext("certificateArn"),
  allowedCidr: app.node.tryGetContext("allowedCidr"),
  lambdaAsset: app.node.tryGetContext("lambdaAsset"),
});
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
const assembly = app.synth();
// The member roles' template beside the others, for cfn-lint and for a
// deployment by hand (`aws cloudformation create-stack-set --template-body`).
fs.writeFileSync(
  path.join(assembly.directory, "VigilMemberRoles.template.json"),
  JSON.stringify(JSON.parse(memberTemplate(stack.account).template), null, 1),
);
