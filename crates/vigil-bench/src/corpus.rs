//! The deterministic corpus.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;

pub struct Spec {
    pub out: PathBuf,
    pub cloudtrail_bytes: u64,
    pub flow_bytes: u64,
    pub file_bytes: u64,
    pub seed: u64,
    /// Ordinary traffic only: the same calls in the same proportions, but nothing
    /// an attacker's activity looks like (no root sessions, no GPU launches, no
    /// world-open admin ports, no administrator grants, no keys made for someone
    /// else, console sign-ins from browsers with MFA). Errors, refusals, failed
    /// sign-ins and multi-region use stay. What the false-alert rate is measured on.
    pub ordinary: bool,
}

/// splitmix64: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn hex(&mut self, out: &mut String, n: usize) {
        for _ in 0..n {
            out.push(b"0123456789abcdef"[self.below(16) as usize] as char);
        }
    }
    fn upper(&mut self, out: &mut String, n: usize) {
        for _ in 0..n {
            out.push(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[self.below(32) as usize] as char);
        }
    }
    fn uuid(&mut self, out: &mut String) {
        for (i, n) in [8, 4, 4, 4, 12].into_iter().enumerate() {
            if i > 0 {
                out.push('-');
            }
            self.hex(out, n);
        }
    }
}

const ACCOUNTS: [&str; 8] = [
    "111122223333",
    "123456789012",
    "210987654321",
    "333344445555",
    "444455556666",
    "555566667777",
    "666677778888",
    "777788889999",
];
const REGIONS: [&str; 6] = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-2",
    "ap-northeast-1",
];
const ROLES: [&str; 6] = [
    "OrganizationAccountAccessRole",
    "ci-deployer",
    "eks-node-role",
    "lambda-exec",
    "ReadOnly",
    "data-pipeline",
];
const USERS: [&str; 5] = [
    "alice",
    "bob",
    "terraform",
    "svc-backup",
    "carol@example.com",
];
const AGENTS: [&str; 6] = [
    "aws-cli/2.17.60 md/awscrt#0.21.2 ua/2.0 os/linux#6.8.0 md/arch#x86_64 lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard",
    "Boto3/1.35.50 md/Botocore#1.35.50 ua/2.0 os/linux#6.8.0-1016-aws md/arch#x86_64 lang/python#3.12.3 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.35.50",
    "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.171.0",
    "APN/1.0 HashiCorp/1.0 Terraform/1.9.5 (+https://www.terraform.io) terraform-provider-aws/5.62.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.30.3",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "aws-internal/3 aws-sdk-java/1.12.720 Linux/5.10.220-188.869.amzn2int.x86_64 OpenJDK_64-Bit_Server_VM/25.412-b09 java/1.8.0_412",
];

/// (service, operation, read-only, weight)
const OPS: [(&str, &str, bool, u64); 24] = [
    ("s3", "GetObject", true, 16),
    ("s3", "PutObject", false, 8),
    ("s3", "ListObjects", true, 5),
    ("ec2", "DescribeInstances", true, 10),
    ("ec2", "DescribeSecurityGroups", true, 4),
    ("ec2", "RunInstances", false, 1),
    ("ec2", "AuthorizeSecurityGroupIngress", false, 1),
    ("sts", "AssumeRole", true, 9),
    ("sts", "GetCallerIdentity", true, 4),
    ("kms", "Decrypt", true, 8),
    ("kms", "GenerateDataKey", true, 4),
    ("iam", "ListRoles", true, 3),
    ("iam", "GetUser", true, 2),
    ("iam", "CreateAccessKey", false, 1),
    ("iam", "AttachUserPolicy", false, 1),
    ("lambda", "Invoke", false, 5),
    ("dynamodb", "GetItem", true, 4),
    ("secretsmanager", "GetSecretValue", true, 3),
    ("ssm", "GetParameter", true, 3),
    ("logs", "CreateLogStream", false, 3),
    ("cloudtrail", "LookupEvents", true, 1),
    ("signin", "ConsoleLogin", false, 1),
    ("eks", "DescribeCluster", true, 2),
    ("rds", "DescribeDBInstances", true, 2),
];

const ERRORS: [(&str, &str); 4] = [
    ("AccessDenied", "User is not authorized to perform this action on the resource because no identity-based policy allows it"),
    ("Client.UnauthorizedOperation", "You are not authorized to perform this operation."),
    ("ThrottlingException", "Rate exceeded"),
    ("NoSuchEntity", "The user with name example cannot be found."),
];

fn timestamp(out: &mut String, secs: i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days (the corpus spans a few days of 2024, no need for generality).
    let (mut y, mut d) = (1970, days);
    loop {
        let len = if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
            366
        } else {
            365
        };
        if d < len {
            break;
        }
        d -= len;
        y += 1;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let months = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut m = 0;
    while d >= months[m] {
        d -= months[m];
        m += 1;
    }
    let _ = write!(
        out,
        "{y:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        m + 1,
        d + 1,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
}

fn ip(rng: &mut Rng, out: &mut String) {
    let nets = [
        (203, 0, 113),
        (198, 51, 100),
        (192, 0, 2),
        (54, 239, 28),
        (3, 5, 140),
    ];
    let (a, b, c) = *rng.pick(&nets);
    let _ = write!(out, "{a}.{b}.{c}.{}", rng.below(254) + 1);
}

struct Ctx<'a> {
    account: &'a str,
    region: &'a str,
    ordinary: bool,
}

/// `n` upper-case letters and digits derived from `seed` (the same seed, the same text).
fn upper_from(out: &mut String, mut seed: u64, n: usize) {
    for _ in 0..n {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.push(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[(seed >> 59) as usize] as char);
    }
}

fn identity(rng: &mut Rng, ctx: &Ctx<'_>, now: i64, out: &mut String) {
    let a = ctx.account;
    let roll = rng.below(100);
    // No root sessions in ordinary traffic: a federated user in their place.
    let roll = if ctx.ordinary && (96..=97).contains(&roll) {
        99
    } else {
        roll
    };
    match roll {
        0..=54 => {
            let role = rng.pick(&ROLES);
            let mut session = String::new();
            rng.hex(&mut session, 10);
            out.push_str(r#"{"type":"AssumedRole","principalId":"AROA"#);
            rng.upper(out, 17);
            let _ = write!(
                out,
                r#":{session}","arn":"arn:aws:sts::{a}:assumed-role/{role}/{session}","accountId":"{a}","accessKeyId":"ASIA"#
            );
            rng.upper(out, 16);
            out.push_str(
                r#"","sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROA"#,
            );
            rng.upper(out, 17);
            let _ = write!(
                out,
                r#"","arn":"arn:aws:iam::{a}:role/{role}","accountId":"{a}","userName":"{role}"}},"attributes":{{"creationDate":""#
            );
            timestamp(out, now - rng.below(3600) as i64);
            let _ = write!(out, r#"","mfaAuthenticated":"{}"}}}}}}"#, rng.chance(20));
        }
        55..=84 => {
            // A user has one id and one long-term key, as in a real account.
            let user = rng.pick(&USERS);
            let seed = format!("{a}/{user}")
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
                });
            out.push_str(r#"{"type":"IAMUser","principalId":"AIDA"#);
            upper_from(out, seed, 17);
            let _ = write!(
                out,
                r#"","arn":"arn:aws:iam::{a}:user/{user}","accountId":"{a}","accessKeyId":"AKIA"#
            );
            upper_from(out, seed ^ 0x5bd1_e995, 16);
            let _ = write!(out, r#"","userName":"{user}"}}"#);
        }
        85..=95 => {
            let svc = rng.pick(&["lambda", "ec2", "config", "cloudformation", "autoscaling"]);
            let _ = write!(
                out,
                r#"{{"type":"AWSService","invokedBy":"{svc}.amazonaws.com"}}"#
            );
        }
        96..=97 => {
            let _ = write!(
                out,
                r#"{{"type":"Root","principalId":"{a}","arn":"arn:aws:iam::{a}:root","accountId":"{a}","accessKeyId":"ASIA"#
            );
            rng.upper(out, 16);
            out.push_str(r#"","sessionContext":{"attributes":{"creationDate":""#);
            timestamp(out, now - 60);
            out.push_str(r#"","mfaAuthenticated":"true"}}}"#);
        }
        _ => {
            let _ = write!(
                out,
                r#"{{"type":"FederatedUser","principalId":"{a}:jdoe","arn":"arn:aws:sts::{a}:federated-user/jdoe","accountId":"{a}","accessKeyId":"ASIA"#
            );
            rng.upper(out, 16);
            let _ = write!(
                out,
                r#"","sessionContext":{{"sessionIssuer":{{"type":"IAMUser","principalId":"AIDA0","arn":"arn:aws:iam::{a}:user/broker","accountId":"{a}","userName":"broker"}}}}}}"#
            );
        }
    }
}

fn request(rng: &mut Rng, ctx: &Ctx<'_>, svc: &str, op: &str, out: &mut String) {
    let a = ctx.account;
    let r = ctx.region;
    match (svc, op) {
        ("s3", _) => {
            let _ = write!(out, r#"{{"bucketName":"data-{a}-{r}","Host":"data-{a}-{r}.s3.{r}.amazonaws.com","key":"events/2024/06/01/part-"#);
            rng.hex(out, 12);
            out.push_str(r#".parquet"}"#);
        }
        ("ec2", "DescribeInstances") => {
            out.push_str(r#"{"instancesSet":{"items":[{"instanceId":"i-"#);
            rng.hex(out, 17);
            out.push_str(r#""}]},"filterSet":{}}"#);
        }
        ("ec2", "RunInstances") => {
            let t = if ctx.ordinary {
                rng.pick(&["t3.micro", "m5.large", "r6g.large", "c6i.xlarge", "c6i.4xlarge"])
            } else {
                rng.pick(&["t3.micro", "m5.large", "p3.2xlarge", "g5.12xlarge", "c6i.4xlarge"])
            };
            let _ = write!(out, r#"{{"instancesSet":{{"items":[{{"imageId":"ami-0abcdef1234567890","minCount":1,"maxCount":1}}]}},"instanceType":"{t}","blockDeviceMapping":{{}},"monitoring":{{"enabled":false}},"disableApiTermination":false}}"#);
        }
        ("ec2", "AuthorizeSecurityGroupIngress") => {
            let (port, cidr) = if ctx.ordinary {
                *rng.pick(&[(443, "0.0.0.0/0"), (80, "0.0.0.0/0"), (5432, "10.0.0.0/16"), (22, "10.20.0.0/24")])
            } else {
                (*rng.pick(&[22, 3389, 443, 5432]), "0.0.0.0/0")
            };
            out.push_str(r#"{"groupId":"sg-"#);
            rng.hex(out, 17);
            let _ = write!(out, r#"","ipPermissions":{{"items":[{{"ipProtocol":"tcp","fromPort":{port},"toPort":{port},"ipRanges":{{"items":[{{"cidrIp":"{cidr}"}}]}}}}]}}}}"#);
        }
        ("sts", "AssumeRole") => {
            let role = rng.pick(&ROLES);
            let _ = write!(out, r#"{{"roleArn":"arn:aws:iam::{a}:role/{role}","roleSessionName":""#);
            rng.hex(out, 10);
            out.push_str(r#"","durationSeconds":3600}"#);
        }
        ("kms", _) => {
            let _ = write!(out, r#"{{"encryptionAlgorithm":"SYMMETRIC_DEFAULT","keyId":"arn:aws:kms:{r}:{a}:key/"#);
            rng.uuid(out);
            out.push_str(r#"","encryptionContext":{"aws:lambda:FunctionArn":"arn:aws:lambda:fn"}}"#);
        }
        ("iam", "AttachUserPolicy") => {
            let policy = if ctx.ordinary { "ReadOnlyAccess" } else { "AdministratorAccess" };
            let _ = write!(out, r#"{{"userName":"{}","policyArn":"arn:aws:iam::aws:policy/{policy}"}}"#, rng.pick(&USERS));
        }
        // Ordinary key rotation: the caller's own key (no user named).
        ("iam", "CreateAccessKey") if ctx.ordinary => out.push_str("null"),
        ("iam", _) => {
            let _ = write!(out, r#"{{"userName":"{}","maxItems":100}}"#, rng.pick(&USERS));
        }
        ("lambda", _) => {
            let _ = write!(out, r#"{{"functionName":"arn:aws:lambda:{r}:{a}:function:ingest-"#);
            rng.hex(out, 6);
            out.push_str(r#"","invocationType":"RequestResponse"}"#);
        }
        ("dynamodb", _) => out.push_str(r#"{"tableName":"sessions","key":{"pk":"HIDDEN_DUE_TO_SECURITY_REASONS"},"consistentRead":false}"#),
        _ => out.push_str("null"),
    }
}

fn cloudtrail_record(rng: &mut Rng, now: i64, account: &str, ordinary: bool, out: &mut String) {
    let total: u64 = OPS.iter().map(|o| o.3).sum();
    let mut roll = rng.below(total);
    let &(svc, op, read_only, _) = OPS
        .iter()
        .find(|o| {
            if roll < o.3 {
                true
            } else {
                roll -= o.3;
                false
            }
        })
        .unwrap_or(&OPS[0]);
    let region = *rng.pick::<&str>(&REGIONS);
    let ctx = Ctx {
        account,
        region,
        ordinary,
    };
    out.push_str(r#"{"eventVersion":"1.09","userIdentity":"#);
    identity(rng, &ctx, now, out);
    out.push_str(r#","eventTime":""#);
    timestamp(out, now);
    let _ = write!(
        out,
        r#"","eventSource":"{svc}.amazonaws.com","eventName":"{op}","awsRegion":"{}","sourceIPAddress":""#,
        ctx.region
    );
    if rng.chance(8) {
        out.push_str("AWS Internal");
    } else {
        ip(rng, out);
    }
    let agent = if ordinary && op == "ConsoleLogin" {
        // People sign in to the console with a browser.
        AGENTS[4]
    } else {
        rng.pick(&AGENTS)
    };
    let _ = write!(out, r#"","userAgent":"{agent}","#);
    if rng.chance(6) {
        let (code, msg) = rng.pick(&ERRORS);
        let _ = write!(out, r#""errorCode":"{code}","errorMessage":"{msg}","#);
    }
    out.push_str(r#""requestParameters":"#);
    request(rng, &ctx, svc, op, out);
    if op == "ConsoleLogin" {
        let ok = rng.chance(80);
        let _ = write!(
            out,
            r#","responseElements":{{"ConsoleLogin":"{}"}},"additionalEventData":{{"LoginTo":"https://console.aws.amazon.com/console/home","MobileVersion":"No","MFAUsed":"{}"}}"#,
            if ok { "Success" } else { "Failure" },
            if rng.chance(70) || ordinary {
                "Yes"
            } else {
                "No"
            }
        );
    } else {
        out.push_str(r#","responseElements":null"#);
    }
    out.push_str(r#","requestID":""#);
    rng.uuid(out);
    out.push_str(r#"","eventID":""#);
    rng.uuid(out);
    let _ = write!(out, r#"","readOnly":{read_only},"#);
    if svc == "s3" || svc == "kms" {
        let _ = write!(
            out,
            r#""resources":[{{"accountId":"{a}","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::data-{a}-{r}"}}],"#,
            a = ctx.account,
            r = ctx.region
        );
    }
    let _ = write!(
        out,
        r#""eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{}","eventCategory":"Management","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"{svc}.{}.amazonaws.com"}}}}"#,
        ctx.account, ctx.region
    );
}

/// Network interfaces per account in the flow corpus: a VPC has a bounded set.
const ENIS_PER_ACCOUNT: u64 = 200;

fn flow_line(rng: &mut Rng, now: i64, account: &str, out: &mut String) {
    // An interface and its private address, from the account's fixed pool.
    let k = rng.below(ENIS_PER_ACCOUNT);
    let acct: u64 = account
        .bytes()
        .fold(7, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let eni = (k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ acct;
    let private = format!("10.{}.{}.{}", k % 4, (k * 37) % 255, k % 250 + 2);
    let inbound = rng.chance(50);
    let mut public = String::new();
    ip(rng, &mut public);
    let (src, dst) = if inbound {
        (public.as_str(), private.as_str())
    } else {
        (private.as_str(), public.as_str())
    };
    let mut service_port = *rng.pick(&[443u16, 443, 443, 443, 80, 22, 3389, 5432, 53, 123, 8080]);
    // One interface in each account talks to a mining pool now and then.
    if !inbound && k == 7 && rng.below(50) == 0 {
        service_port = 3333;
    }
    let eph = 32768 + rng.below(28000) as u16;
    // Either way the client side uses an ephemeral port and the server its service port.
    let (sport, dport) = (eph, service_port);
    let proto = if service_port == 53 || service_port == 123 {
        17
    } else if rng.chance(2) {
        1
    } else {
        6
    };
    let packets = 1 + rng.below(400);
    let bytes = packets * (40 + rng.below(1400));
    let action = if inbound && rng.chance(25) {
        "REJECT"
    } else {
        "ACCEPT"
    };
    let start = now - rng.below(60) as i64;
    if rng.chance(1) {
        let _ = writeln!(
            out,
            "2 {account} eni-0{eni:016x} - - - - - - - {start} {} - NODATA",
            start + 60
        );
        return;
    }
    let _ = writeln!(
        out,
        "2 {account} eni-0{eni:016x} {src} {dst} {sport} {dport} {proto} {packets} {bytes} {start} {} {action} OK",
        start + 60
    );
}

fn date_path(secs: i64) -> String {
    let mut s = String::new();
    timestamp(&mut s, secs);
    s[..10].replace('-', "/")
}

fn write_gz(path: &Path, body: &[u8]) -> Result<u64> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let f = std::fs::File::create(path).with_context(|| path.display().to_string())?;
    let mut e = GzEncoder::new(std::io::BufWriter::new(f), Compression::new(6));
    e.write_all(body)?;
    e.finish()?.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

pub fn generate(spec: &Spec) -> Result<()> {
    let mut rng = Rng(spec.seed);
    let mut now: i64 = 1_717_200_000; // 2024-06-01
    let (mut ct_records, mut ct_bytes, mut ct_files, mut gz_bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut body = String::with_capacity(spec.file_bytes as usize + 4096);
    let mut rec = String::with_capacity(4096);
    while ct_bytes < spec.cloudtrail_bytes {
        // A trail delivers an account's events under that account's prefix.
        let account = ACCOUNTS[(ct_files % ACCOUNTS.len() as u64) as usize];
        body.clear();
        body.push_str("{\"Records\":[");
        let mut first = true;
        while (body.len() as u64) < spec.file_bytes {
            rec.clear();
            now += rng.below(80) as i64 / 40;
            cloudtrail_record(&mut rng, now, account, spec.ordinary, &mut rec);
            if !first {
                body.push(',');
            }
            first = false;
            body.push_str(&rec);
            ct_records += 1;
        }
        body.push_str("]}");
        ct_bytes += body.len() as u64;
        let region = REGIONS[(ct_files / 3 % REGIONS.len() as u64) as usize];
        let mut tag = String::new();
        rng.hex(&mut tag, 16);
        let path = spec.out.join(format!(
            "cloudtrail/AWSLogs/{account}/CloudTrail/{region}/{}/{account}_CloudTrail_{region}_{now}_{tag}.json.gz",
            date_path(now)
        ));
        gz_bytes += write_gz(&path, body.as_bytes())?;
        ct_files += 1;
    }
    let (mut fl_records, mut fl_bytes, mut fl_files, mut fl_gz) = (0u64, 0u64, 0u64, 0u64);
    while fl_bytes < spec.flow_bytes {
        let account = ACCOUNTS[(fl_files % ACCOUNTS.len() as u64) as usize];
        body.clear();
        body.push_str("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n");
        while (body.len() as u64) < spec.file_bytes {
            now += rng.below(4) as i64 / 3;
            flow_line(&mut rng, now, account, &mut body);
            fl_records += 1;
        }
        fl_bytes += body.len() as u64;
        let path = spec.out.join(format!(
            "vpcflow/AWSLogs/{account}/vpcflowlogs/us-east-1/{}/{account}_vpcflowlogs_us-east-1_fl-0a1b2c3d4e5f_{now}_{fl_files}.log.gz",
            date_path(now)
        ));
        fl_gz += write_gz(&path, body.as_bytes())?;
        fl_files += 1;
    }
    let manifest = serde_json::json!({
        "seed": spec.seed,
        "cloudtrail": {"files": ct_files, "records": ct_records, "bytes": ct_bytes, "gzip_bytes": gz_bytes},
        "vpcflow": {"files": fl_files, "records": fl_records, "bytes": fl_bytes, "gzip_bytes": fl_gz},
    });
    std::fs::write(
        spec.out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    println!("{manifest}");
    Ok(())
}
