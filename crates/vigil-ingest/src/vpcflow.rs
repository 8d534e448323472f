//! VPC Flow Logs (and Transit Gateway flow logs) in their space-separated text form.
//!
//! A record's layout is a list of field names: the header line names it in files AWS
//! delivers to S3; lines without a header (CloudWatch Logs delivery, custom exports)
//! need it named by configuration ([`FlowFormat`]), and are read as the default
//! version-2 format otherwise. `-` means the field has no value; NODATA and SKIPDATA
//! records decode like any other, with their log status set.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use vigil_model::{
    Event, FlowAction, FlowFields, LogStatus, Outcome, Raw, ResourceRef, SourceKind, Timestamp,
};

use crate::error::RecordErrorKind;

macro_rules! flow_fields {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// One field a flow log format can contain, by its AWS name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum FlowField { $($variant),* }

        impl FlowField {
            pub const ALL: &'static [FlowField] = &[$(FlowField::$variant),*];

            /// The name AWS uses in format strings and header lines.
            pub fn name(self) -> &'static str {
                match self { $(FlowField::$variant => $name),* }
            }
        }
    };
}

flow_fields! {
    Version = "version", AccountId = "account-id", InterfaceId = "interface-id",
    SrcAddr = "srcaddr", DstAddr = "dstaddr", SrcPort = "srcport", DstPort = "dstport",
    Protocol = "protocol", Packets = "packets", Bytes = "bytes", Start = "start", End = "end",
    Action = "action", LogStatus = "log-status",
    VpcId = "vpc-id", SubnetId = "subnet-id", InstanceId = "instance-id", TcpFlags = "tcp-flags",
    Type = "type", PktSrcAddr = "pkt-srcaddr", PktDstAddr = "pkt-dstaddr",
    Region = "region", AzId = "az-id", SublocationType = "sublocation-type", SublocationId = "sublocation-id",
    PktSrcAwsService = "pkt-src-aws-service", PktDstAwsService = "pkt-dst-aws-service",
    FlowDirection = "flow-direction", TrafficPath = "traffic-path",
    EcsClusterArn = "ecs-cluster-arn", EcsClusterName = "ecs-cluster-name",
    EcsContainerInstanceArn = "ecs-container-instance-arn", EcsContainerInstanceId = "ecs-container-instance-id",
    EcsContainerId = "ecs-container-id", EcsSecondContainerId = "ecs-second-container-id",
    EcsServiceName = "ecs-service-name", EcsTaskDefinitionArn = "ecs-task-definition-arn",
    EcsTaskArn = "ecs-task-arn", EcsTaskId = "ecs-task-id", RejectReason = "reject-reason",
    ResourceType = "resource-type", TgwId = "tgw-id", TgwAttachmentId = "tgw-attachment-id",
    TgwSrcVpcAccountId = "tgw-src-vpc-account-id", TgwDstVpcAccountId = "tgw-dst-vpc-account-id",
    TgwSrcVpcId = "tgw-src-vpc-id", TgwDstVpcId = "tgw-dst-vpc-id",
    TgwSrcSubnetId = "tgw-src-subnet-id", TgwDstSubnetId = "tgw-dst-subnet-id",
    TgwSrcEni = "tgw-src-eni", TgwDstEni = "tgw-dst-eni", TgwSrcAzId = "tgw-src-az-id", TgwDstAzId = "tgw-dst-az-id",
    TgwPairAttachmentId = "tgw-pair-attachment-id",
    PacketsLostNoRoute = "packets-lost-no-route", PacketsLostBlackhole = "packets-lost-blackhole",
    PacketsLostMtuExceeded = "packets-lost-mtu-exceeded", PacketsLostTtlExpired = "packets-lost-ttl-expired",
}

impl FromStr for FlowField {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let name = s.trim().trim_start_matches("${").trim_end_matches('}');
        FlowField::ALL
            .iter()
            .copied()
            .find(|f| f.name() == name)
            .ok_or_else(|| format!("unknown flow log field {name:?}"))
    }
}

use FlowField as F;

/// More fields than any format has: a longer line is a field-count error.
const MAX_FIELDS: usize = 64;

const V2: &[FlowField] = &[
    F::Version,
    F::AccountId,
    F::InterfaceId,
    F::SrcAddr,
    F::DstAddr,
    F::SrcPort,
    F::DstPort,
    F::Protocol,
    F::Packets,
    F::Bytes,
    F::Start,
    F::End,
    F::Action,
    F::LogStatus,
];
const V3: &[FlowField] = &[
    F::VpcId,
    F::SubnetId,
    F::InstanceId,
    F::TcpFlags,
    F::Type,
    F::PktSrcAddr,
    F::PktDstAddr,
];
const V4: &[FlowField] = &[F::Region, F::AzId, F::SublocationType, F::SublocationId];
const V5: &[FlowField] = &[
    F::PktSrcAwsService,
    F::PktDstAwsService,
    F::FlowDirection,
    F::TrafficPath,
];
const V7: &[FlowField] = &[
    F::EcsClusterArn,
    F::EcsClusterName,
    F::EcsContainerInstanceArn,
    F::EcsContainerInstanceId,
    F::EcsContainerId,
    F::EcsSecondContainerId,
    F::EcsServiceName,
    F::EcsTaskDefinitionArn,
    F::EcsTaskArn,
    F::EcsTaskId,
];
const V8: &[FlowField] = &[F::RejectReason];
/// Transit Gateway flow logs, all fields in AWS's default order.
const TGW: &[FlowField] = &[
    F::Version,
    F::ResourceType,
    F::AccountId,
    F::TgwId,
    F::TgwAttachmentId,
    F::TgwSrcVpcAccountId,
    F::TgwDstVpcAccountId,
    F::TgwSrcVpcId,
    F::TgwDstVpcId,
    F::TgwSrcSubnetId,
    F::TgwDstSubnetId,
    F::TgwSrcEni,
    F::TgwDstEni,
    F::TgwSrcAzId,
    F::TgwDstAzId,
    F::TgwPairAttachmentId,
    F::SrcAddr,
    F::DstAddr,
    F::SrcPort,
    F::DstPort,
    F::Protocol,
    F::Packets,
    F::Bytes,
    F::Start,
    F::End,
    F::LogStatus,
    F::Type,
    F::PacketsLostNoRoute,
    F::PacketsLostBlackhole,
    F::PacketsLostMtuExceeded,
    F::PacketsLostTtlExpired,
    F::TcpFlags,
    F::Region,
    F::FlowDirection,
    F::PktSrcAwsService,
    F::PktDstAwsService,
];

/// A flow log layout: the fields of each record, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowFormat {
    name: String,
    fields: Vec<FlowField>,
}

impl FlowFormat {
    /// The presets a user can name instead of listing fields: `v2` (the AWS default),
    /// `v3`, `v4`, `v5`, `v7`, `v8` (every field up to that version, in AWS's order),
    /// and `tgw` (every Transit Gateway field).
    pub const PRESETS: [&'static str; 7] = ["v2", "v3", "v4", "v5", "v7", "v8", "tgw"];

    pub fn preset(name: &str) -> Option<FlowFormat> {
        let groups: &[&[FlowField]] = match name {
            "v2" | "default" => &[V2],
            "v3" => &[V2, V3],
            "v4" => &[V2, V3, V4],
            "v5" => &[V2, V3, V4, V5],
            "v7" => &[V2, V3, V4, V5, V7],
            "v8" => &[V2, V3, V4, V5, V7, V8],
            "tgw" => &[TGW],
            _ => return None,
        };
        Some(FlowFormat {
            name: name.to_owned(),
            fields: groups.concat(),
        })
    }

    pub fn default_v2() -> FlowFormat {
        FlowFormat {
            name: "v2".into(),
            fields: V2.to_vec(),
        }
    }

    /// A preset name, or the fields as AWS writes a format (`${version} ${srcaddr} …`)
    /// or a header line (`version srcaddr …`).
    pub fn parse(spec: &str) -> Result<FlowFormat, String> {
        if let Some(p) = FlowFormat::preset(spec.trim()) {
            return Ok(p);
        }
        let fields = spec
            .split_ascii_whitespace()
            .map(FlowField::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        if fields.is_empty() {
            return Err("empty flow log format".into());
        }
        let name = FlowFormat::PRESETS
            .iter()
            .find(|p| FlowFormat::preset(p).is_some_and(|f| f.fields == fields))
            .map(|p| p.to_string())
            .unwrap_or_else(|| format!("custom ({} fields)", fields.len()));
        Ok(FlowFormat { name, fields })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn fields(&self) -> &[FlowField] {
        &self.fields
    }

    /// The preset whose field count is `n`, to suggest when a line does not fit.
    fn preset_with_len(n: usize) -> Option<&'static str> {
        FlowFormat::PRESETS
            .into_iter()
            .find(|p| FlowFormat::preset(p).is_some_and(|f| f.fields.len() == n))
    }
}

impl fmt::Display for FlowFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Is this line a header (every token a field name)?
pub(crate) fn parse_header(line: &str) -> Option<Result<FlowFormat, String>> {
    let first = line.split_ascii_whitespace().next()?;
    if first.as_bytes()[0].is_ascii_digit() || first == "-" {
        return None;
    }
    Some(FlowFormat::parse(line))
}

fn bad(field: FlowField, value: &str, what: &str) -> RecordErrorKind {
    RecordErrorKind::BadField {
        field: field.name().into(),
        reason: format!("{value:?} is not {what}"),
    }
}

fn num<T: FromStr>(field: FlowField, v: &str, what: &str) -> Result<T, RecordErrorKind> {
    v.parse().map_err(|_| bad(field, v, what))
}

/// Decodes one record line with `format`. `fallback_region` comes from the S3 key.
pub(crate) fn decode_line(
    line: &str,
    format: &FlowFormat,
    fallback_region: Option<&str>,
) -> Result<Event, RecordErrorKind> {
    // One pass over the line into a fixed array: no allocation for the split.
    let mut values = [""; MAX_FIELDS];
    let mut found = 0;
    for v in line.split_ascii_whitespace() {
        if found < MAX_FIELDS {
            values[found] = v;
        }
        found += 1;
    }
    if found != format.fields.len() {
        return Err(field_count(format, found));
    }
    // Built in place: the struct is large, and moving it into a box would copy it.
    let mut flow = Box::<FlowFields>::default();
    let mut account = None;
    for (field, &v) in format.fields.iter().copied().zip(&values[..found]) {
        if v == "-" {
            continue;
        }
        let s = || Some(v.to_owned());
        match field {
            F::Version => flow.version = Some(num(field, v, "a version number")?),
            F::AccountId => account = s(),
            F::InterfaceId => flow.interface_id = s(),
            F::SrcAddr => flow.src_addr = Some(num::<IpAddr>(field, v, "an IP address")?),
            F::DstAddr => flow.dst_addr = Some(num::<IpAddr>(field, v, "an IP address")?),
            F::SrcPort => flow.src_port = Some(num(field, v, "a port number")?),
            F::DstPort => flow.dst_port = Some(num(field, v, "a port number")?),
            F::Protocol => flow.protocol = Some(num(field, v, "a protocol number")?),
            F::Packets => flow.packets = Some(num(field, v, "a packet count")?),
            F::Bytes => flow.bytes = Some(num(field, v, "a byte count")?),
            F::Start => flow.start = Some(Timestamp::from_secs(num(field, v, "epoch seconds")?)),
            F::End => flow.end = Some(Timestamp::from_secs(num(field, v, "epoch seconds")?)),
            F::Action => {
                flow.action = Some(match v {
                    "ACCEPT" => FlowAction::Accept,
                    "REJECT" => FlowAction::Reject,
                    _ => return Err(bad(field, v, "ACCEPT or REJECT")),
                })
            }
            F::LogStatus => {
                flow.log_status = Some(match v {
                    "OK" => LogStatus::Ok,
                    "NODATA" => LogStatus::NoData,
                    "SKIPDATA" => LogStatus::SkipData,
                    _ => return Err(bad(field, v, "OK, NODATA or SKIPDATA")),
                })
            }
            F::VpcId => flow.vpc_id = s(),
            F::SubnetId => flow.subnet_id = s(),
            F::InstanceId => flow.instance_id = s(),
            F::TcpFlags => flow.tcp_flags = Some(num(field, v, "a TCP flag bitmask")?),
            F::Type => flow.traffic_type = s(),
            F::PktSrcAddr => flow.pkt_src_addr = Some(num::<IpAddr>(field, v, "an IP address")?),
            F::PktDstAddr => flow.pkt_dst_addr = Some(num::<IpAddr>(field, v, "an IP address")?),
            F::Region => flow.region = s(),
            F::AzId => flow.az_id = s(),
            F::SublocationType => flow.sublocation_type = s(),
            F::SublocationId => flow.sublocation_id = s(),
            F::PktSrcAwsService => flow.pkt_src_aws_service = s(),
            F::PktDstAwsService => flow.pkt_dst_aws_service = s(),
            F::FlowDirection => flow.flow_direction = s(),
            F::TrafficPath => flow.traffic_path = Some(num(field, v, "a traffic path number")?),
            F::EcsClusterArn => flow.ecs_cluster_arn = s(),
            F::EcsClusterName => flow.ecs_cluster_name = s(),
            F::EcsContainerInstanceArn => flow.ecs_container_instance_arn = s(),
            F::EcsContainerInstanceId => flow.ecs_container_instance_id = s(),
            F::EcsContainerId => flow.ecs_container_id = s(),
            F::EcsSecondContainerId => flow.ecs_second_container_id = s(),
            F::EcsServiceName => flow.ecs_service_name = s(),
            F::EcsTaskDefinitionArn => flow.ecs_task_definition_arn = s(),
            F::EcsTaskArn => flow.ecs_task_arn = s(),
            F::EcsTaskId => flow.ecs_task_id = s(),
            F::RejectReason => flow.reject_reason = s(),
            F::ResourceType => flow.resource_type = s(),
            F::TgwId => flow.tgw_id = s(),
            F::TgwAttachmentId => flow.tgw_attachment_id = s(),
            F::TgwSrcVpcAccountId => flow.tgw_src_vpc_account_id = s(),
            F::TgwDstVpcAccountId => flow.tgw_dst_vpc_account_id = s(),
            F::TgwSrcVpcId => flow.tgw_src_vpc_id = s(),
            F::TgwDstVpcId => flow.tgw_dst_vpc_id = s(),
            F::TgwSrcSubnetId => flow.tgw_src_subnet_id = s(),
            F::TgwDstSubnetId => flow.tgw_dst_subnet_id = s(),
            F::TgwSrcEni => flow.tgw_src_eni = s(),
            F::TgwDstEni => flow.tgw_dst_eni = s(),
            F::TgwSrcAzId => flow.tgw_src_az_id = s(),
            F::TgwDstAzId => flow.tgw_dst_az_id = s(),
            F::TgwPairAttachmentId => flow.tgw_pair_attachment_id = s(),
            F::PacketsLostNoRoute => {
                flow.packets_lost_no_route = Some(num(field, v, "a packet count")?)
            }
            F::PacketsLostBlackhole => {
                flow.packets_lost_blackhole = Some(num(field, v, "a packet count")?)
            }
            F::PacketsLostMtuExceeded => {
                flow.packets_lost_mtu_exceeded = Some(num(field, v, "a packet count")?)
            }
            F::PacketsLostTtlExpired => {
                flow.packets_lost_ttl_expired = Some(num(field, v, "a packet count")?)
            }
        }
    }
    let time = flow
        .start
        .or(flow.end)
        .ok_or(RecordErrorKind::MissingField { field: "start" })?;
    let outcome = match flow.action {
        Some(FlowAction::Accept) => Outcome::Success,
        Some(FlowAction::Reject) => Outcome::Failure {
            code: Some("REJECT".into()),
            message: flow.reject_reason.clone(),
        },
        None => Outcome::Unknown,
    };
    // The interface is in the flow fields; only an instance is worth a resource entry
    // (it is what incidents and playbooks act on).
    let resources = match &flow.instance_id {
        Some(i) => vec![ResourceRef {
            arn: None,
            id: Some(i.clone()),
            resource_type: Some("AWS::EC2::Instance".into()),
            account_id: account.clone(),
        }],
        None => Vec::new(),
    };
    Ok(Event {
        id: crate::de::digest_id("vpcflow", line),
        time,
        source: SourceKind::VpcFlow,
        account,
        region: flow
            .region
            .clone()
            .or_else(|| fallback_region.map(str::to_owned)),
        event_type: None,
        actor: None,
        source_ip: flow.src_addr,
        source_host: None,
        user_agent: None,
        action: None,
        resources,
        outcome,
        read_only: None,
        network: Some(flow),
        finding: None,
        raw: Raw::Text(line.into()),
    })
}

fn field_count(format: &FlowFormat, found: usize) -> RecordErrorKind {
    RecordErrorKind::FieldCount {
        expected: format.fields.len(),
        found,
        format: format.name.clone(),
        hint: FlowFormat::preset_with_len(found)
            .map(|p| format!("{found} fields fit the {p} preset: name it with --flow-format {p}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_line() {
        let e = decode_line(
            "2 123456789010 eni-1235b8ca123456789 78.24.182.42 158.109.0.1 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK",
            &FlowFormat::default_v2(),
            None,
        )
        .unwrap();
        let n = e.network.as_ref().unwrap();
        assert_eq!(n.dst_port, Some(3389));
        assert_eq!(n.action, Some(FlowAction::Reject));
        assert_eq!(e.time.as_secs(), 1418530010);
        assert!(e.outcome.is_failure());
    }

    #[test]
    fn wrong_count_suggests_preset() {
        let line = "5 64111117617 eni-069xxxxxb7a490 89.160.20.156 10.200.0.0 50041 33004 17 52 1 164000066 1640000297 REJECT OK vpc-09676f97xxxxxb8a7 subnet-02d645xxxxxxxdbc0 i-0axxxxxx1ad77 1 IPv4 89.160.20.156 10.200.0.80 us-east-1 use1-az5 - - AMAZON CLOUDFRONT ingress 1";
        let err = decode_line(line, &FlowFormat::default_v2(), None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("expected 14 fields") && msg.contains("has 29") && msg.contains("v5"),
            "{msg}"
        );
        let e = decode_line(line, &FlowFormat::preset("v5").unwrap(), None).unwrap();
        assert_eq!(
            e.network.as_ref().unwrap().pkt_dst_aws_service.as_deref(),
            Some("CLOUDFRONT")
        );
        let short = decode_line("2 1 eni-1", &FlowFormat::default_v2(), None).unwrap_err();
        assert!(short.to_string().contains("has 3"), "{short}");
    }

    #[test]
    fn bad_field_named() {
        let err = decode_line(
            "2 1 eni-1 1.2.3.4 5.6.7.8 99999 1 6 1 1 1 2 ACCEPT OK",
            &FlowFormat::default_v2(),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `srcport`: \"99999\" is not a port number"
        );
    }

    #[test]
    fn formats() {
        assert_eq!(
            FlowFormat::parse("${version} ${srcaddr}")
                .unwrap()
                .fields()
                .len(),
            2
        );
        assert_eq!(FlowFormat::parse("v8").unwrap().fields().len(), 40);
        assert_eq!(FlowFormat::parse("tgw").unwrap().fields().len(), 36);
        assert_eq!(
            FlowFormat::parse(&V2.iter().map(|f| f.name()).collect::<Vec<_>>().join(" "))
                .unwrap()
                .name(),
            "v2"
        );
        assert!(FlowFormat::parse("version bogus")
            .unwrap_err()
            .contains("bogus"));
    }
}
