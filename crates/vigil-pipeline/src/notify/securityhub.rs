//! `type = "securityhub"`: `BatchImportFindings`, ASFF out.
//!
//! Each finding is imported under its own id (Vigil's finding id is already a
//! stable name-based UUID), so a later import of the same finding updates it
//! in place: new count, last seen, severity. When its incident is resolved or
//! marked a false positive, every finding of the incident is imported again
//! with `RecordState` `ARCHIVED` and `Workflow.Status` `RESOLVED` or
//! `SUPPRESSED`. Up to 100 findings and 6 MB a call, each at most 240 KB;
//! `FailedFindings` are mapped back to their deliveries.

use aws_sdk_securityhub::types::{
    AwsSecurityFinding, Recommendation, RecordState, Remediation, Resource,
    Severity as AsffSeverity, SeverityLabel, Workflow, WorkflowStatus,
};
use serde::Deserialize;
use tokio::sync::OnceCell;
use vigil_model::finding::Category;
use vigil_model::Finding;
use vigil_store::outbox::EventKind;

use super::{BoxFuture, Build, Context, Delivery, Destination, Failure, Result1};
use crate::component::config_of;
use crate::PipelineError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The hub's region, when not `[aws] home_region`.
    #[serde(default)]
    region: Option<String>,
    /// The account that imports (the hub's), when not `[aws] home_account`.
    #[serde(default)]
    account: Option<String>,
    /// The product ARN findings are imported under; default: the account's
    /// own `product/<account>/default`.
    #[serde(default)]
    product_arn: Option<String>,
}

const MAX_FINDINGS: usize = 100;
const MAX_BYTES: usize = 6 * 1024 * 1024;
const MAX_FINDING_BYTES: usize = 240 * 1024;

pub struct SecurityHub {
    region: String,
    product_arn: String,
    settings: vigil_aws::AwsSettings,
    client: OnceCell<aws_sdk_securityhub::Client>,
}

pub fn build(b: &Build<'_>, table: toml::Table) -> Result<Box<dyn Destination>, PipelineError> {
    let c: Config = config_of("output", b.name, table)?;
    let bad = |m: &str| PipelineError::Config(format!("output `{}`: {m}", b.name));
    let region = c
        .region
        .or_else(|| b.aws.home_region.clone())
        .unwrap_or_else(|| "us-east-1".into());
    let product_arn = match c.product_arn {
        Some(a) => a,
        None => {
            let account = c
                .account
                .or_else(|| b.aws.home_account.clone())
                .ok_or_else(|| bad("set account (or [aws] home_account, or product_arn): findings are imported under an account's product"))?;
            format!("arn:aws:securityhub:{region}:{account}:product/{account}/default")
        }
    };
    let mut settings = b.aws.settings(None);
    settings.home_region = Some(region.clone());
    Ok(Box::new(SecurityHub {
        region,
        product_arn,
        settings,
        client: OnceCell::new(),
    }))
}

const EVENTS: &[EventKind] = &[
    EventKind::FindingOpened,
    EventKind::FindingUpdated,
    EventKind::IncidentOpened,
    EventKind::IncidentEscalated,
    EventKind::IncidentResolved,
    EventKind::IncidentFalsePositive,
];

fn asff_type(c: Category) -> &'static str {
    match c {
        Category::UnauthorizedAccess => "TTPs/Initial Access/UnauthorizedAccess",
        Category::Cryptojacking => "Effects/Resource Consumption/Cryptojacking",
        Category::PolicyViolation => {
            "Software and Configuration Checks/AWS Security Best Practices/PolicyViolation"
        }
        Category::NetworkAttack => "Unusual Behaviors/Network Flow/NetworkAttack",
        Category::DataExfiltration => "Effects/Data Exfiltration/DataExfiltration",
    }
}

fn label(s: vigil_model::Severity) -> SeverityLabel {
    match s.as_str() {
        "CRITICAL" => SeverityLabel::Critical,
        "HIGH" => SeverityLabel::High,
        "MEDIUM" => SeverityLabel::Medium,
        "LOW" => SeverityLabel::Low,
        _ => SeverityLabel::Informational,
    }
}

/// The ASFF resource type of a CloudFormation type (`AWS::EC2::Instance` →
/// `AwsEc2Instance`).
fn resource_type(cfn: Option<&str>) -> String {
    match cfn.and_then(|t| t.strip_prefix("AWS::")) {
        Some(t) => format!("Aws{}", t.split("::").collect::<String>()),
        None => "Other".into(),
    }
}

/// What closing the incident did to its findings, if it is closed.
#[derive(Clone, Copy)]
enum Close {
    Resolved,
    Suppressed,
}

impl SecurityHub {
    /// A Vigil finding in ASFF, and its size (its JSON, about).
    fn asff(
        &self,
        f: &Finding,
        now: &str,
        close: Option<Close>,
    ) -> Result<(AwsSecurityFinding, usize), Failure> {
        let d = &f.detail;
        let account = f.account.clone().unwrap_or_else(|| "000000000000".into());
        let region = f.region.clone().unwrap_or_else(|| self.region.clone());
        let mut resources: Vec<Resource> = f
            .resources
            .iter()
            .take(32)
            .map(|arn| {
                Resource::builder()
                    .r#type(if Some(arn) == d.resource_arn.as_ref() {
                        resource_type(d.resource_type.as_deref())
                    } else {
                        "Other".into()
                    })
                    .id(arn)
                    .partition(aws_sdk_securityhub::types::Partition::Aws)
                    .region(&region)
                    .build()
            })
            .collect();
        if resources.is_empty() {
            resources.push(
                Resource::builder()
                    .r#type("AwsAccount")
                    .id(format!("AWS::::Account:{account}"))
                    .partition(aws_sdk_securityhub::types::Partition::Aws)
                    .region(&region)
                    .build(),
            );
        }
        let (state, workflow) = match close {
            None => (RecordState::Active, WorkflowStatus::New),
            Some(Close::Resolved) => (RecordState::Archived, WorkflowStatus::Resolved),
            Some(Close::Suppressed) => (RecordState::Archived, WorkflowStatus::Suppressed),
        };
        let mut b = AwsSecurityFinding::builder()
            .schema_version("2018-10-08")
            .id(&f.id)
            .product_arn(&self.product_arn)
            .product_name("Vigil")
            .company_name("Vigil")
            .generator_id(&d.rule.id)
            .aws_account_id(&account)
            .region(&region)
            .types(asff_type(d.category))
            .first_observed_at(d.first_seen.to_string())
            .last_observed_at(d.last_seen.to_string())
            .created_at(d.first_seen.to_string())
            .updated_at(now)
            .severity(
                AsffSeverity::builder()
                    .label(label(d.severity))
                    .original(d.severity.as_str())
                    .build(),
            )
            .confidence(d.confidence as i32)
            .title(super::render::cut(&d.title, 256))
            .description(super::render::cut(&d.description, 1024))
            .set_resources(Some(resources))
            .record_state(state)
            .workflow(Workflow::builder().status(workflow).build())
            .product_fields("vigil/finding_id", &d.finding_id)
            .product_fields("vigil/count", d.count.to_string())
            .product_fields("vigil/detection_source", &d.detection_source)
            .product_fields("vigil/category", d.category.as_str());
        for (k, v) in super::render::evidence(f).into_iter().take(40) {
            b = b.product_fields(format!("vigil/evidence/{k}"), super::render::cut(&v, 2000));
        }
        if let Some(p) = &d.remediation.playbook {
            b = b.remediation(
                Remediation::builder()
                    .recommendation(
                        Recommendation::builder()
                            .text(format!("Vigil playbook {p}"))
                            .build(),
                    )
                    .build(),
            );
        }
        let size = serde_json::to_string(f).map(|s| s.len()).unwrap_or(0) + 2048;
        if size > MAX_FINDING_BYTES {
            return Err(Failure::permanent(format!(
                "finding {} is about {size} bytes in ASFF; Security Hub takes at most {MAX_FINDING_BYTES}",
                f.id
            )));
        }
        Ok((b.build(), size))
    }

    /// The findings a delivery imports: its finding, or its closed incident's.
    async fn findings_of(
        &self,
        d: &Delivery,
        cx: &Context,
    ) -> Result<Vec<(Finding, Option<Close>)>, Failure> {
        let e = &d.event;
        let close = match e.kind() {
            Some(EventKind::IncidentResolved) => Some(Close::Resolved),
            Some(EventKind::IncidentFalsePositive) => Some(Close::Suppressed),
            _ => None,
        };
        if close.is_none() {
            return Ok(e.finding.clone().into_iter().map(|f| (f, None)).collect());
        }
        let Some(i) = &e.incident else {
            return Ok(Vec::new());
        };
        let (store, id) = (cx.store.clone(), i.id.clone());
        let bodies = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut cursor = None;
            loop {
                let q = vigil_store::FindingQuery {
                    incident: Some(id.clone()),
                    limit: vigil_store::MAX_PAGE,
                    cursor: cursor.take(),
                    ..Default::default()
                };
                let page = store.lock().findings(&q)?;
                out.extend(page.items);
                match page.next_cursor {
                    Some(c) if out.len() < 100_000 => cursor = Some(c),
                    _ => break,
                }
            }
            Ok::<_, vigil_store::StoreError>(out)
        })
        .await
        .map_err(|e| Failure::retry(e.to_string()))?
        .map_err(|e| Failure::retry(format!("store: {e}")))?;
        bodies
            .iter()
            .map(|b| {
                serde_json::from_str::<Finding>(b)
                    .map(|f| (f, close))
                    .map_err(|e| Failure::permanent(format!("a stored finding does not read: {e}")))
            })
            .collect()
    }

    async fn import(
        &self,
        cx: &Context,
        findings: Vec<AwsSecurityFinding>,
    ) -> Result<Vec<(String, Failure)>, Failure> {
        let client = self
            .client
            .get_or_init(|| async {
                aws_sdk_securityhub::Client::new(&vigil_aws::sdk_config(&self.settings).await)
            })
            .await;
        cx.pace.turn().await;
        let out = client
            .batch_import_findings()
            .set_findings(Some(findings))
            .send()
            .await
            .map_err(|e| super::eventbridge::sdk_failure("securityhub:BatchImportFindings", e))?;
        Ok(out
            .failed_findings()
            .iter()
            .map(|f| {
                let code = f.error_code().unwrap_or("unknown");
                let message = format!(
                    "securityhub:BatchImportFindings: {code}: {}",
                    f.error_message().unwrap_or("")
                );
                let failure = if code.contains("Throttl") || code.contains("Internal") {
                    Failure::retry(message)
                } else {
                    Failure::permanent(message)
                };
                (f.id().unwrap_or("").to_owned(), failure)
            })
            .collect())
    }
}

impl Destination for SecurityHub {
    fn batch(&self) -> usize {
        MAX_FINDINGS
    }

    fn default_events(&self) -> &'static [EventKind] {
        EVENTS
    }

    fn deliver<'a>(&'a self, rows: &'a [Delivery], cx: &'a Context) -> BoxFuture<'a, Vec<Result1>> {
        Box::pin(async move {
            let now = crate::now().to_string();
            let mut out: Vec<Option<Result1>> = rows.iter().map(|_| None).collect();
            // (row, finding id, ASFF, size) for every finding to import.
            let mut all: Vec<(usize, String, AwsSecurityFinding, usize)> = Vec::new();
            for (i, d) in rows.iter().enumerate() {
                match self.findings_of(d, cx).await {
                    Err(f) => out[i] = Some(Result1::Failed(f)),
                    Ok(list) => {
                        for (f, close) in list {
                            match self.asff(&f, &now, close) {
                                Ok((a, size)) => all.push((i, f.id.clone(), a, size)),
                                Err(fail) => out[i] = Some(Result1::Failed(fail)),
                            }
                        }
                    }
                }
            }
            let mut start = 0;
            while start < all.len() {
                let (mut end, mut bytes) = (start, 0);
                while end < all.len()
                    && end - start < MAX_FINDINGS
                    && bytes + all[end].3 <= MAX_BYTES
                {
                    bytes += all[end].3;
                    end += 1;
                }
                let batch: Vec<AwsSecurityFinding> =
                    all[start..end].iter().map(|x| x.2.clone()).collect();
                match self.import(cx, batch).await {
                    Err(f) => {
                        for x in &all[start..end] {
                            out[x.0] = Some(Result1::Failed(f.clone()));
                        }
                    }
                    Ok(failed) => {
                        for (id, f) in failed {
                            for x in all[start..end].iter().filter(|x| x.1 == id) {
                                out[x.0] = Some(Result1::Failed(f.clone()));
                            }
                        }
                    }
                }
                start = end.max(start + 1);
            }
            out.into_iter().map(|r| r.unwrap_or(Result1::Ok)).collect()
        })
    }
}
