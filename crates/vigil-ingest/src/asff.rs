//! Security Hub findings in the AWS Security Finding Format (ASFF), from
//! `BatchImportFindings` / `GetFindings` batches or EventBridge events.

use serde::Deserialize;
use vigil_model::{Action, Event, FindingFields, Outcome, Raw, ResourceRef, Severity, SourceKind};

use crate::de::{
    own, parse, required, time_field, CowStr, Failure, Lenient, LooseBool, LooseNum, Str,
};
use crate::error::RecordErrorKind;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Finding<'a> {
    #[serde(borrow, default)]
    id: Str<'a>,
    #[serde(borrow, default)]
    product_arn: Str<'a>,
    #[serde(borrow, default)]
    product_name: Str<'a>,
    #[serde(borrow, default)]
    generator_id: Str<'a>,
    #[serde(borrow, default)]
    aws_account_id: Str<'a>,
    #[serde(borrow, default)]
    region: Str<'a>,
    #[serde(borrow, default)]
    types: Option<Vec<CowStr<'a>>>,
    #[serde(borrow, default)]
    created_at: Str<'a>,
    #[serde(borrow, default)]
    updated_at: Str<'a>,
    #[serde(borrow, default)]
    first_observed_at: Str<'a>,
    #[serde(borrow, default)]
    last_observed_at: Str<'a>,
    #[serde(borrow, default)]
    severity: Lenient<AsffSeverity<'a>>,
    #[serde(default)]
    confidence: LooseNum,
    #[serde(borrow, default)]
    title: Str<'a>,
    #[serde(borrow, default)]
    description: Str<'a>,
    #[serde(borrow, default)]
    resources: Option<Vec<Lenient<Resource<'a>>>>,
    #[serde(borrow, default)]
    compliance: Lenient<Compliance<'a>>,
    #[serde(borrow, default)]
    workflow: Lenient<Workflow<'a>>,
    #[serde(borrow, default)]
    workflow_state: Str<'a>,
    #[serde(borrow, default)]
    record_state: Str<'a>,
    #[serde(borrow, default)]
    product_fields: Lenient<ProductFields<'a>>,
    #[serde(borrow, default)]
    remediation: Lenient<Remediation<'a>>,
    #[serde(borrow, default)]
    network: Lenient<Network<'a>>,
    #[serde(borrow, default)]
    action: Lenient<AsffAction<'a>>,
    #[serde(default)]
    sample: LooseBool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AsffSeverity<'a> {
    #[serde(borrow, default)]
    label: Str<'a>,
    #[serde(default)]
    normalized: LooseNum,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Resource<'a> {
    #[serde(borrow, default, rename = "Type")]
    resource_type: Str<'a>,
    #[serde(borrow, default)]
    id: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Compliance<'a> {
    #[serde(borrow, default)]
    status: Str<'a>,
    #[serde(borrow, default)]
    security_control_id: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Workflow<'a> {
    #[serde(borrow, default)]
    status: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Remediation<'a> {
    #[serde(borrow, default)]
    recommendation: Lenient<Recommendation<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Recommendation<'a> {
    #[serde(borrow, default)]
    text: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Network<'a> {
    #[serde(borrow, default)]
    source_ip_v4: Str<'a>,
    #[serde(borrow, default)]
    source_ip_v6: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AsffAction<'a> {
    #[serde(borrow, default)]
    action_type: Str<'a>,
    #[serde(borrow, default)]
    aws_api_call_action: Lenient<ApiCall<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiCall<'a> {
    #[serde(borrow, default)]
    api: Str<'a>,
    #[serde(borrow, default)]
    service_name: Str<'a>,
}

/// Of `ProductFields` (string values, product-specific keys) only Security Hub's own
/// `ControlId` is typed; the rest stays in the raw record.
#[derive(Deserialize)]
struct ProductFields<'a> {
    #[serde(borrow, default, rename = "ControlId")]
    control_id: Str<'a>,
}

pub(crate) fn decode(text: &str) -> Result<Event, Failure> {
    let f: Finding<'_> = parse(text)?;
    to_event(&f, text).map_err(Failure::from)
}

fn to_event(f: &Finding<'_>, text: &str) -> Result<Event, RecordErrorKind> {
    let id = required(&f.id, "Id")?;
    let product_arn = required(&f.product_arn, "ProductArn")?;
    let updated = time_field(&f.updated_at, "UpdatedAt")?;
    let created = time_field(&f.created_at, "CreatedAt")?;
    let last_seen = time_field(&f.last_observed_at, "LastObservedAt")?;
    let time = updated
        .or(created)
        .or(last_seen)
        .ok_or(RecordErrorKind::MissingField { field: "UpdatedAt" })?;
    let sev = f.severity.0.as_ref();
    let label = sev
        .and_then(|s| s.label.as_deref())
        .map(|l| {
            l.parse::<Severity>()
                .map_err(|e| RecordErrorKind::BadField {
                    field: "Severity.Label".into(),
                    reason: e,
                })
        })
        .transpose()?;
    let normalized = sev.and_then(|s| s.normalized.0);
    let types: Vec<String> = f.types.iter().flatten().map(|t| t.to_string()).collect();
    let resources: Vec<ResourceRef> = f
        .resources
        .iter()
        .flatten()
        .filter_map(|r| r.0.as_ref())
        .map(|r| {
            let id = own(&r.id);
            ResourceRef {
                arn: id.clone().filter(|i| i.starts_with("arn:")),
                id,
                resource_type: own(&r.resource_type),
                account_id: None,
            }
        })
        .collect();
    let first_resource_type = resources.first().and_then(|r| r.resource_type.clone());
    let compliance = f.compliance.0.as_ref();
    let network = f.network.0.as_ref();
    let action = f.action.0.as_ref();
    let api = action.and_then(|a| a.aws_api_call_action.0.as_ref());
    // ASFF allows Region to be left out; the product ARN names one.
    let region = own(&f.region).or_else(|| {
        product_arn
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
    });
    Ok(Event {
        id: id.to_owned(),
        time,
        source: SourceKind::SecurityHub,
        account: own(&f.aws_account_id),
        region,
        event_type: action.and_then(|a| own(&a.action_type)),
        actor: None,
        source_ip: network
            .and_then(|n| n.source_ip_v4.as_deref().or(n.source_ip_v6.as_deref()))
            .and_then(|s| s.parse().ok()),
        source_host: None,
        user_agent: None,
        action: api.and_then(|c| {
            Some(Action {
                service: c
                    .service_name
                    .as_deref()
                    .map(crate::de::short_service)
                    .unwrap_or("unknown")
                    .to_owned(),
                operation: own(&c.api)?,
                event_source: own(&c.service_name),
            })
        }),
        resources,
        outcome: Outcome::Unknown,
        read_only: None,
        network: None,
        finding: Some(Box::new(FindingFields {
            id: id.to_owned(),
            arn: None,
            finding_type: types.first().cloned(),
            threat: None,
            types,
            severity: label.or_else(|| normalized.map(Severity::from_asff_normalized)),
            severity_score: normalized,
            title: own(&f.title),
            description: own(&f.description),
            product_arn: Some(product_arn.to_owned()),
            product_name: own(&f.product_name),
            generator_id: own(&f.generator_id),
            resource_type: first_resource_type,
            compliance_status: compliance.and_then(|c| own(&c.status)),
            control_id: compliance
                .and_then(|c| own(&c.security_control_id))
                .or_else(|| f.product_fields.0.as_ref().and_then(|p| own(&p.control_id))),
            workflow_status: f
                .workflow
                .0
                .as_ref()
                .and_then(|w| own(&w.status))
                .or_else(|| own(&f.workflow_state)),
            record_state: own(&f.record_state),
            confidence: f.confidence.0,
            created_at: created,
            updated_at: updated,
            first_seen: time_field(&f.first_observed_at, "FirstObservedAt")?,
            last_seen,
            count: None,
            archived: f
                .record_state
                .as_deref()
                .map(|s| s.eq_ignore_ascii_case("ARCHIVED")),
            sample: f.sample.0.unwrap_or(false),
            remediation: f
                .remediation
                .0
                .as_ref()
                .and_then(|r| r.recommendation.0.as_ref())
                .and_then(|r| own(&r.text)),
        })),
        raw: Raw::Json(text.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_finding() {
        let text = r#"{"SchemaVersion":"2018-10-08","Id":"x","ProductArn":"arn:aws:securityhub:eu-west-1::product/aws/securityhub","GeneratorId":"g","AwsAccountId":"123456789012","Types":["Software and Configuration Checks/Industry and Regulatory Standards"],"CreatedAt":"2024-01-01T00:00:00Z","UpdatedAt":"2024-01-02T00:00:00Z","Severity":{"Label":"HIGH","Normalized":70},"Title":"S3.1 ...","Description":"d","Resources":[{"Type":"AwsAccount","Id":"AWS::::Account:123456789012"}],"Compliance":{"Status":"FAILED","SecurityControlId":"S3.1"},"ProductFields":{"ControlId":"S3.1"}}"#;
        let e = decode(text).ok().unwrap();
        let f = e.finding.as_ref().unwrap();
        assert_eq!(f.severity, Some(Severity::High));
        assert_eq!(f.compliance_status.as_deref(), Some("FAILED"));
        assert_eq!(f.control_id.as_deref(), Some("S3.1"));
        assert_eq!(e.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn bad_label_names_field() {
        let text = r#"{"Id":"x","ProductArn":"p","UpdatedAt":"2024-01-02T00:00:00Z","Severity":{"Label":"SEVERE"}}"#;
        match decode(text).err().unwrap().kind {
            RecordErrorKind::BadField { field, .. } => assert_eq!(field, "Severity.Label"),
            k => panic!("{k:?}"),
        }
    }
}
