//! GuardDuty findings, as the API and EventBridge write them (camelCase keys) and as
//! the AWS CLI and SDKs print `GetFindings` (PascalCase keys).

use serde::Deserialize;
use vigil_model::{
    Action, Actor, Event, FindingFields, IdentityType, Outcome, Raw, ResourceRef, Severity,
    SourceKind, ThreatType,
};

use crate::de::{
    own, parse, required, short_service, time_field, Failure, Lenient, LooseBool, LooseNum, Str,
};
use crate::error::RecordErrorKind;

#[derive(Deserialize)]
pub(crate) struct Finding<'a> {
    #[serde(borrow, default, rename = "id", alias = "Id")]
    id: Str<'a>,
    #[serde(borrow, default, rename = "arn", alias = "Arn")]
    arn: Str<'a>,
    #[serde(borrow, default, rename = "type", alias = "Type")]
    finding_type: Str<'a>,
    #[serde(borrow, default, rename = "accountId", alias = "AccountId")]
    account_id: Str<'a>,
    #[serde(borrow, default, rename = "region", alias = "Region")]
    region: Str<'a>,
    #[serde(default, rename = "severity", alias = "Severity")]
    severity: LooseNum,
    #[serde(borrow, default, rename = "title", alias = "Title")]
    title: Str<'a>,
    #[serde(borrow, default, rename = "description", alias = "Description")]
    description: Str<'a>,
    #[serde(borrow, default, rename = "createdAt", alias = "CreatedAt")]
    created_at: Str<'a>,
    #[serde(borrow, default, rename = "updatedAt", alias = "UpdatedAt")]
    updated_at: Str<'a>,
    #[serde(borrow, default, rename = "resource", alias = "Resource")]
    resource: Lenient<GdResource<'a>>,
    #[serde(borrow, default, rename = "service", alias = "Service")]
    service: Lenient<Service<'a>>,
}

#[derive(Deserialize)]
struct GdResource<'a> {
    #[serde(borrow, default, rename = "resourceType", alias = "ResourceType")]
    resource_type: Str<'a>,
    #[serde(
        borrow,
        default,
        rename = "accessKeyDetails",
        alias = "AccessKeyDetails"
    )]
    access_key: Lenient<AccessKey<'a>>,
    #[serde(borrow, default, rename = "instanceDetails", alias = "InstanceDetails")]
    instance: Lenient<Instance<'a>>,
    #[serde(borrow, default, rename = "s3BucketDetails", alias = "S3BucketDetails")]
    buckets: Option<Vec<Lenient<Bucket<'a>>>>,
    #[serde(
        borrow,
        default,
        rename = "eksClusterDetails",
        alias = "EksClusterDetails"
    )]
    eks: Lenient<Eks<'a>>,
}

#[derive(Deserialize)]
struct AccessKey<'a> {
    #[serde(borrow, default, rename = "accessKeyId", alias = "AccessKeyId")]
    access_key_id: Str<'a>,
    #[serde(borrow, default, rename = "principalId", alias = "PrincipalId")]
    principal_id: Str<'a>,
    #[serde(borrow, default, rename = "userName", alias = "UserName")]
    user_name: Str<'a>,
    #[serde(borrow, default, rename = "userType", alias = "UserType")]
    user_type: Str<'a>,
}

#[derive(Deserialize)]
struct Instance<'a> {
    #[serde(borrow, default, rename = "instanceId", alias = "InstanceId")]
    instance_id: Str<'a>,
}

#[derive(Deserialize)]
struct Bucket<'a> {
    #[serde(borrow, default, rename = "arn", alias = "Arn")]
    arn: Str<'a>,
    #[serde(borrow, default, rename = "name", alias = "Name")]
    name: Str<'a>,
}

#[derive(Deserialize)]
struct Eks<'a> {
    #[serde(borrow, default, rename = "name", alias = "Name")]
    name: Str<'a>,
    #[serde(borrow, default, rename = "arn", alias = "Arn")]
    arn: Str<'a>,
}

#[derive(Deserialize)]
struct Service<'a> {
    #[serde(borrow, default, rename = "action", alias = "Action")]
    action: Lenient<GdAction<'a>>,
    #[serde(borrow, default, rename = "eventFirstSeen", alias = "EventFirstSeen")]
    first_seen: Str<'a>,
    #[serde(borrow, default, rename = "eventLastSeen", alias = "EventLastSeen")]
    last_seen: Str<'a>,
    #[serde(default, rename = "archived", alias = "Archived")]
    archived: LooseBool,
    #[serde(default, rename = "count", alias = "Count")]
    count: LooseNum,
    #[serde(default, rename = "additionalInfo", alias = "AdditionalInfo")]
    additional_info: Lenient<AdditionalInfo>,
}

#[derive(Deserialize)]
struct AdditionalInfo {
    #[serde(default, rename = "sample", alias = "Sample")]
    sample: LooseBool,
}

#[derive(Deserialize)]
struct GdAction<'a> {
    #[serde(borrow, default, rename = "actionType", alias = "ActionType")]
    action_type: Str<'a>,
    #[serde(
        borrow,
        default,
        rename = "awsApiCallAction",
        alias = "AwsApiCallAction"
    )]
    api_call: Lenient<ApiCall<'a>>,
    #[serde(
        borrow,
        default,
        rename = "networkConnectionAction",
        alias = "NetworkConnectionAction"
    )]
    network: Lenient<Remote<'a>>,
    #[serde(
        borrow,
        default,
        rename = "kubernetesApiCallAction",
        alias = "KubernetesApiCallAction"
    )]
    kubernetes: Lenient<Remote<'a>>,
    #[serde(
        borrow,
        default,
        rename = "rdsLoginAttemptAction",
        alias = "RdsLoginAttemptAction"
    )]
    rds_login: Lenient<Remote<'a>>,
    #[serde(borrow, default, rename = "portProbeAction", alias = "PortProbeAction")]
    port_probe: Lenient<PortProbe<'a>>,
}

#[derive(Deserialize)]
struct ApiCall<'a> {
    #[serde(borrow, default, rename = "api", alias = "Api")]
    api: Str<'a>,
    #[serde(borrow, default, rename = "serviceName", alias = "ServiceName")]
    service_name: Str<'a>,
    #[serde(borrow, default, rename = "userAgent", alias = "UserAgent")]
    user_agent: Str<'a>,
    #[serde(borrow, default, rename = "errorCode", alias = "ErrorCode")]
    error_code: Str<'a>,
    #[serde(borrow, default, rename = "remoteIpDetails", alias = "RemoteIpDetails")]
    remote: Lenient<RemoteIp<'a>>,
}

#[derive(Deserialize)]
struct Remote<'a> {
    #[serde(borrow, default, rename = "remoteIpDetails", alias = "RemoteIpDetails")]
    remote: Lenient<RemoteIp<'a>>,
    #[serde(borrow, default, rename = "userAgent", alias = "UserAgent")]
    user_agent: Str<'a>,
}

#[derive(Deserialize)]
struct PortProbe<'a> {
    #[serde(
        borrow,
        default,
        rename = "portProbeDetails",
        alias = "PortProbeDetails"
    )]
    details: Option<Vec<Lenient<Remote<'a>>>>,
}

#[derive(Deserialize)]
struct RemoteIp<'a> {
    #[serde(borrow, default, rename = "ipAddressV4", alias = "IpAddressV4")]
    v4: Str<'a>,
    #[serde(borrow, default, rename = "ipAddressV6", alias = "IpAddressV6")]
    v6: Str<'a>,
}

impl RemoteIp<'_> {
    fn ip(&self) -> Option<std::net::IpAddr> {
        self.v4
            .as_deref()
            .or(self.v6.as_deref())
            .and_then(|s| s.parse().ok())
    }
}

pub(crate) fn decode(text: &str) -> Result<Event, Failure> {
    let f: Finding<'_> = parse(text)?;
    to_event(&f, text).map_err(Failure::from)
}

fn to_event(f: &Finding<'_>, text: &str) -> Result<Event, RecordErrorKind> {
    let id = required(&f.id, "id")?;
    let finding_type = required(&f.finding_type, "type")?;
    let updated = time_field(&f.updated_at, "updatedAt")?;
    let created = time_field(&f.created_at, "createdAt")?;
    let time = updated
        .or(created)
        .ok_or(RecordErrorKind::MissingField { field: "updatedAt" })?;
    let resource = f.resource.0.as_ref();
    let service = f.service.0.as_ref();
    let action = service.and_then(|s| s.action.0.as_ref());

    let actor = resource.and_then(|r| r.access_key.0.as_ref()).map(|k| {
        let mut a = Actor::new(
            k.user_type
                .as_deref()
                .map(IdentityType::from_aws)
                .unwrap_or(IdentityType::Unknown),
        );
        a.access_key_id = own(&k.access_key_id);
        a.principal_id = own(&k.principal_id);
        a.user_name = own(&k.user_name);
        a
    });
    let remote = action.and_then(|a| {
        a.api_call
            .0
            .as_ref()
            .and_then(|c| c.remote.0.as_ref())
            .or_else(|| a.network.0.as_ref().and_then(|n| n.remote.0.as_ref()))
            .or_else(|| a.kubernetes.0.as_ref().and_then(|n| n.remote.0.as_ref()))
            .or_else(|| a.rds_login.0.as_ref().and_then(|n| n.remote.0.as_ref()))
            .or_else(|| {
                a.port_probe
                    .0
                    .as_ref()
                    .and_then(|p| p.details.as_ref())
                    .and_then(|d| d.iter().find_map(|x| x.0.as_ref()))
                    .and_then(|n| n.remote.0.as_ref())
            })
    });
    let api_call = action.and_then(|a| a.api_call.0.as_ref());
    let user_agent = api_call.and_then(|c| own(&c.user_agent)).or_else(|| {
        action
            .and_then(|a| a.kubernetes.0.as_ref())
            .and_then(|k| own(&k.user_agent))
    });

    let account = own(&f.account_id);
    let region = own(&f.region);
    let mut resources = Vec::new();
    if let Some(r) = resource {
        if let Some(i) = r.instance.0.as_ref().and_then(|i| own(&i.instance_id)) {
            let arn = match (&region, &account) {
                (Some(reg), Some(acct)) => Some(format!("arn:aws:ec2:{reg}:{acct}:instance/{i}")),
                _ => None,
            };
            resources.push(ResourceRef {
                arn,
                id: Some(i),
                resource_type: Some("AWS::EC2::Instance".into()),
                account_id: account.clone(),
            });
        }
        for b in r.buckets.iter().flatten().filter_map(|b| b.0.as_ref()) {
            resources.push(ResourceRef {
                arn: own(&b.arn),
                id: own(&b.name),
                resource_type: Some("AWS::S3::Bucket".into()),
                account_id: account.clone(),
            });
        }
        if let Some(e) = r.eks.0.as_ref() {
            resources.push(ResourceRef {
                arn: own(&e.arn),
                id: own(&e.name),
                resource_type: Some("AWS::EKS::Cluster".into()),
                account_id: account.clone(),
            });
        }
        if let Some(k) = r.access_key.0.as_ref().and_then(|k| own(&k.access_key_id)) {
            resources.push(ResourceRef {
                arn: None,
                id: Some(k),
                resource_type: Some("AWS::IAM::AccessKey".into()),
                account_id: account.clone(),
            });
        }
    }
    let score = f.severity.0;
    Ok(Event {
        id: id.to_owned(),
        time,
        source: SourceKind::GuardDuty,
        account,
        region,
        event_type: action.and_then(|a| own(&a.action_type)),
        actor,
        source_ip: remote.and_then(RemoteIp::ip),
        source_host: None,
        user_agent,
        action: api_call.and_then(|c| {
            let op = own(&c.api)?;
            let svc = c
                .service_name
                .as_deref()
                .map(short_service)
                .unwrap_or("unknown")
                .to_owned();
            Some(Action {
                service: svc,
                operation: op,
                event_source: own(&c.service_name),
            })
        }),
        resources,
        outcome: match api_call.and_then(|c| own(&c.error_code)) {
            Some(code) => Outcome::Failure {
                code: Some(code),
                message: None,
            },
            None => Outcome::Unknown,
        },
        read_only: None,
        network: None,
        finding: Some(Box::new(FindingFields {
            id: id.to_owned(),
            arn: own(&f.arn),
            finding_type: Some(finding_type.to_owned()),
            threat: ThreatType::parse(finding_type),
            severity: score.map(Severity::from_guardduty_score),
            severity_score: score,
            title: own(&f.title),
            description: own(&f.description),
            product_name: Some("GuardDuty".into()),
            resource_type: resource.and_then(|r| own(&r.resource_type)),
            created_at: created,
            updated_at: updated,
            first_seen: service
                .map(|s| time_field(&s.first_seen, "service.eventFirstSeen"))
                .transpose()?
                .flatten(),
            last_seen: service
                .map(|s| time_field(&s.last_seen, "service.eventLastSeen"))
                .transpose()?
                .flatten(),
            count: service.and_then(|s| s.count.0).map(|c| c as u64),
            archived: service.and_then(|s| s.archived.0),
            sample: service
                .and_then(|s| s.additional_info.0.as_ref())
                .and_then(|a| a.sample.0)
                .unwrap_or(false),
            ..FindingFields::default()
        })),
        raw: Raw::Json(text.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pascal_case_cli_output() {
        let text = r#"{"AccountId":"123456789012","Arn":"arn:aws:guardduty:us-east-1:123456789012:detector/d/finding/f","CreatedAt":"2024-01-01T00:00:00.000Z","Id":"f","Region":"us-east-1","Resource":{"ResourceType":"AccessKey","AccessKeyDetails":{"AccessKeyId":"AKIA","PrincipalId":"AIDA","UserName":"bob","UserType":"IAMUser"}},"Service":{"Action":{"ActionType":"AWS_API_CALL","AwsApiCallAction":{"Api":"ListBuckets","ServiceName":"s3.amazonaws.com","RemoteIpDetails":{"IpAddressV4":"198.51.100.7"}}},"Count":3},"Severity":8,"Title":"t","Type":"UnauthorizedAccess:IAMUser/MaliciousIPCaller","UpdatedAt":"2024-01-02T00:00:00.000Z"}"#;
        let e = decode(text).ok().unwrap();
        let f = e.finding.as_ref().unwrap();
        assert_eq!(f.severity, Some(Severity::High));
        assert_eq!(f.threat.as_ref().unwrap().purpose, "UnauthorizedAccess");
        assert_eq!(e.source_ip.unwrap().to_string(), "198.51.100.7");
        assert_eq!(e.action.as_ref().unwrap().operation, "ListBuckets");
        assert_eq!(e.actor.as_ref().unwrap().user_name.as_deref(), Some("bob"));
        assert_eq!(f.count, Some(3));
    }

    #[test]
    fn needs_id_and_type() {
        assert_eq!(
            decode(r#"{"type":"Recon:EC2/Portscan","updatedAt":"2024-01-01T00:00:00Z"}"#)
                .err()
                .unwrap()
                .kind,
            RecordErrorKind::MissingField { field: "id" }
        );
    }
}
