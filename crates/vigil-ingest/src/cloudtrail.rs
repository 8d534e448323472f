//! CloudTrail records: management, data and Insights events, whether from log files
//! (`{"Records":[...]}`), JSON lines, or the `detail` of an EventBridge event.
//!
//! Only what the typed model carries is parsed field by field; the rest of the record
//! (request parameters, response elements) stays in [`Raw`] for rules to read.

use serde::Deserialize;
use vigil_model::{
    Action, Actor, Event, IdentityType, Outcome, Raw, ResourceRef, SessionIssuer, SourceKind,
};

use crate::de::{
    own, parse, required, short_service, split_source, time_field, Failure, Lenient, LooseBool, Str,
};
use crate::error::RecordErrorKind;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record<'a> {
    #[serde(borrow, default)]
    event_time: Str<'a>,
    #[serde(borrow, default)]
    event_source: Str<'a>,
    #[serde(borrow, default)]
    event_name: Str<'a>,
    #[serde(borrow, default)]
    aws_region: Str<'a>,
    #[serde(borrow, default, rename = "sourceIPAddress")]
    source_ip_address: Str<'a>,
    #[serde(borrow, default)]
    user_agent: Str<'a>,
    #[serde(borrow, default)]
    error_code: Str<'a>,
    #[serde(borrow, default)]
    error_message: Str<'a>,
    #[serde(borrow, default, rename = "eventID")]
    event_id: Str<'a>,
    #[serde(borrow, default)]
    event_type: Str<'a>,
    #[serde(borrow, default)]
    recipient_account_id: Str<'a>,
    #[serde(default)]
    read_only: LooseBool,
    #[serde(borrow, default)]
    user_identity: Lenient<UserIdentity<'a>>,
    #[serde(borrow, default)]
    response_elements: Lenient<ResponseElements<'a>>,
    #[serde(borrow, default)]
    additional_event_data: Lenient<AdditionalData<'a>>,
    #[serde(borrow, default)]
    resources: Option<Vec<Lenient<Resource<'a>>>>,
    #[serde(borrow, default)]
    insight_details: Lenient<InsightDetails<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentity<'a> {
    #[serde(borrow, default, rename = "type")]
    identity_type: Str<'a>,
    #[serde(borrow, default)]
    principal_id: Str<'a>,
    #[serde(borrow, default)]
    arn: Str<'a>,
    #[serde(borrow, default)]
    account_id: Str<'a>,
    #[serde(borrow, default)]
    access_key_id: Str<'a>,
    #[serde(borrow, default)]
    user_name: Str<'a>,
    #[serde(borrow, default)]
    invoked_by: Str<'a>,
    #[serde(borrow, default)]
    session_context: Lenient<SessionContext<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionContext<'a> {
    #[serde(default)]
    attributes: Lenient<Attributes>,
    #[serde(borrow, default)]
    session_issuer: Lenient<Issuer<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attributes {
    #[serde(default)]
    mfa_authenticated: LooseBool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Issuer<'a> {
    #[serde(borrow, default, rename = "type")]
    issuer_type: Str<'a>,
    #[serde(borrow, default)]
    principal_id: Str<'a>,
    #[serde(borrow, default)]
    arn: Str<'a>,
    #[serde(borrow, default)]
    account_id: Str<'a>,
    #[serde(borrow, default)]
    user_name: Str<'a>,
}

#[derive(Deserialize)]
struct ResponseElements<'a> {
    #[serde(borrow, default, rename = "ConsoleLogin")]
    console_login: Str<'a>,
}

#[derive(Deserialize)]
struct AdditionalData<'a> {
    #[serde(borrow, default, rename = "MFAUsed")]
    mfa_used: Str<'a>,
    /// Identity Center sign-ins name the user here, not in userIdentity.
    #[serde(borrow, default, rename = "UserName")]
    user_name: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resource<'a> {
    #[serde(borrow, default, rename = "ARN", alias = "arn")]
    arn: Str<'a>,
    #[serde(borrow, default)]
    account_id: Str<'a>,
    #[serde(borrow, default, rename = "type")]
    resource_type: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InsightDetails<'a> {
    #[serde(borrow, default)]
    event_source: Str<'a>,
    #[serde(borrow, default)]
    event_name: Str<'a>,
}

/// Defaults for fields a record may leave out: the envelope of an EventBridge event,
/// or the account and region of the S3 key the file was delivered under.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fallback {
    pub account: Option<String>,
    pub region: Option<String>,
}

pub(crate) fn decode(text: &str, fallback: &Fallback) -> Result<Event, Failure> {
    let rec: Record<'_> = parse(text)?;
    to_event(&rec, text, fallback).map_err(Failure::from)
}

fn to_event(rec: &Record<'_>, text: &str, fallback: &Fallback) -> Result<Event, RecordErrorKind> {
    let time = time_field(&rec.event_time, "eventTime")?
        .ok_or(RecordErrorKind::MissingField { field: "eventTime" })?;
    // Insights events name the API they are about inside insightDetails.
    let insight = rec.insight_details.0.as_ref();
    let (event_source, event_name) = match insight {
        Some(i) if rec.event_source.is_none() || rec.event_name.is_none() => (
            required(&i.event_source, "insightDetails.eventSource")?,
            required(&i.event_name, "insightDetails.eventName")?,
        ),
        _ => (
            required(&rec.event_source, "eventSource")?,
            required(&rec.event_name, "eventName")?,
        ),
    };
    let identity = rec.user_identity.0.as_ref();
    let attributes = identity
        .and_then(|u| u.session_context.0.as_ref())
        .and_then(|s| s.attributes.0.as_ref());
    let mfa = attributes.and_then(|a| a.mfa_authenticated.0).or_else(|| {
        rec.additional_event_data
            .0
            .as_ref()
            .and_then(|a| a.mfa_used.as_deref())
            .map(|v| v.eq_ignore_ascii_case("yes"))
    });
    let actor = identity.map(|u| {
        let issuer = u
            .session_context
            .0
            .as_ref()
            .and_then(|s| s.session_issuer.0.as_ref());
        Actor {
            identity_type: u
                .identity_type
                .as_deref()
                .map(IdentityType::from_aws)
                .unwrap_or(IdentityType::Unknown),
            arn: own(&u.arn),
            principal_id: own(&u.principal_id),
            account_id: own(&u.account_id),
            user_name: own(&u.user_name).or_else(|| {
                rec.additional_event_data
                    .0
                    .as_ref()
                    .and_then(|a| own(&a.user_name))
            }),
            access_key_id: own(&u.access_key_id),
            session_issuer: issuer.map(|i| SessionIssuer {
                issuer_type: own(&i.issuer_type),
                arn: own(&i.arn),
                principal_id: own(&i.principal_id),
                account_id: own(&i.account_id),
                user_name: own(&i.user_name),
            }),
            mfa_authenticated: mfa,
            invoked_by: own(&u.invoked_by),
        }
    });
    let console_failure = rec
        .response_elements
        .0
        .as_ref()
        .and_then(|r| r.console_login.as_deref())
        .is_some_and(|v| v.eq_ignore_ascii_case("failure"));
    let outcome = if rec.error_code.is_some() || console_failure {
        Outcome::Failure {
            code: own(&rec.error_code),
            message: own(&rec.error_message),
        }
    } else {
        Outcome::Success
    };
    let (source_ip, source_host) = split_source(rec.source_ip_address.as_deref());
    let resources = rec
        .resources
        .iter()
        .flatten()
        .filter_map(|r| r.0.as_ref())
        .map(|r| ResourceRef {
            arn: own(&r.arn),
            id: None,
            resource_type: own(&r.resource_type),
            account_id: own(&r.account_id),
        })
        .collect();
    Ok(Event {
        id: own(&rec.event_id).unwrap_or_else(|| crate::de::digest_id("cloudtrail", text)),
        time,
        source: SourceKind::CloudTrail,
        account: own(&rec.recipient_account_id)
            .or_else(|| identity.and_then(|u| own(&u.account_id)))
            .or_else(|| fallback.account.clone()),
        region: own(&rec.aws_region).or_else(|| fallback.region.clone()),
        event_type: own(&rec.event_type),
        actor,
        source_ip,
        source_host,
        user_agent: own(&rec.user_agent),
        action: Some(Action {
            service: short_service(event_source).to_owned(),
            operation: event_name.to_owned(),
            event_source: Some(event_source.to_owned()),
        }),
        resources,
        outcome,
        read_only: rec.read_only.0,
        network: None,
        finding: None,
        raw: Raw::Json(text.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_failed_console_login() {
        let text = r#"{"eventVersion":"1.05","userIdentity":{"type":"IAMUser","principalId":"AIDA","arn":"arn:aws:iam::111122223333:user/JaneDoe","accountId":"111122223333","userName":"JaneDoe"},"eventTime":"2014-07-08T17:35:27Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-2","sourceIPAddress":"89.160.20.156","userAgent":"Mozilla/5.0","errorMessage":"Failed authentication","requestParameters":null,"responseElements":{"ConsoleLogin":"Failure"},"additionalEventData":{"MFAUsed":"No"},"eventID":"11ea"}"#;
        let e = decode(text, &Fallback::default()).ok().unwrap();
        assert_eq!(
            e.outcome,
            Outcome::Failure {
                code: None,
                message: Some("Failed authentication".into())
            }
        );
        assert_eq!(e.account.as_deref(), Some("111122223333"));
        let actor = e.actor.unwrap();
        assert_eq!(actor.identity_type, IdentityType::IamUser);
        assert_eq!(actor.mfa_authenticated, Some(false));
        assert_eq!(e.action.unwrap().service, "signin");
    }

    #[test]
    fn missing_event_time_is_named() {
        let err = decode(
            r#"{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}"#,
            &Fallback::default(),
        )
        .err()
        .unwrap();
        assert_eq!(
            err.kind,
            RecordErrorKind::MissingField { field: "eventTime" }
        );
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = decode(
            r#"{"eventTime":"2020-01-01T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","userIdentity":{"type":{"nested":1}}}"#,
            &Fallback::default(),
        )
        .err()
        .unwrap();
        match err.kind {
            RecordErrorKind::BadField { field, .. } => assert_eq!(field, "userIdentity.type"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn insight_event() {
        let text = r#"{"eventVersion":"1.07","eventTime":"2020-11-19T01:15:00Z","awsRegion":"us-east-1","eventID":"a","eventType":"AwsCloudTrailInsight","recipientAccountId":"123456789012","sharedEventID":"b","insightDetails":{"state":"Start","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","insightType":"ApiCallRateInsight"},"eventCategory":"Insight"}"#;
        let e = decode(text, &Fallback::default()).ok().unwrap();
        assert_eq!(e.event_type.as_deref(), Some("AwsCloudTrailInsight"));
        assert_eq!(e.action.unwrap().operation, "RunInstances");
        assert!(e.actor.is_none());
    }

    #[test]
    fn escaped_strings_are_fine() {
        let text = r#"{"eventTime":"2020-01-01T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","errorCode":"AccessDenied","errorMessage":"User: \"x\" is not authorized","sourceIPAddress":"AWS Internal"}"#;
        let e = decode(text, &Fallback::default()).ok().unwrap();
        assert_eq!(e.outcome.error_code(), Some("AccessDenied"));
        assert_eq!(e.source_host.as_deref(), Some("AWS Internal"));
        assert!(e.source_ip.is_none());
    }
}
