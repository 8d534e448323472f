//! Every call Vigil makes to AWS, through aws-sdk-rust: the response actions of
//! `vigil-respond`'s catalogue (IAM, EC2, S3 and S3 Control, CloudTrail, GuardDuty,
//! KMS, Organizations, EventBridge), each run in the finding's account by assuming
//! a configured response role there (STS AssumeRole with an external id), with
//! errors sorted into those worth a retry and those that are final. [`Aws`] is the
//! engine's [`Executor`].
//!
//! The only crate that pulls the SDK, so the rest of the workspace builds and
//! tests without it. What it is not: the playbook engine (which decides what to
//! run, when, and records it) — this crate carries out one action when asked.

mod cloudtrail;
mod ec2;
mod events;
mod guardduty;
mod iam;
pub mod inventory;
mod kms;
pub mod organizations;
mod s3;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

pub use aws_config::SdkConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
pub use s3::FixedEndpoint;
use serde_json::Value;
use tokio::sync::Mutex;
pub use vigil_respond::exec::{ActionError, Outcome};
use vigil_respond::exec::{ActionFuture, Executor};

/// Where and as whom Vigil calls AWS.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// Send every call here instead of AWS's endpoints (an emulator, a proxy).
    pub endpoint_url: Option<String>,
    /// The role assumed in a finding's account to act there (its name; the ARN is
    /// made from the account). No role: act with Vigil's own credentials.
    pub response_role: Option<String>,
    /// The external id the response role's trust policy requires.
    pub external_id: Option<String>,
    /// The account Vigil's own credentials belong to: no role is assumed there.
    pub home_account: Option<String>,
    /// The partition's home region, where IAM and STS are called.
    pub home_region: Option<String>,
    /// Vigil's own credentials, when they are not to be found the SDK's usual way
    /// (an emulator's, in tests).
    pub credentials: Option<Credentials>,
}

/// A client of SDK crate `$sdk` from `Aws`'s base configuration, with a
/// [`Target`]'s credentials and region.
macro_rules! with_target {
    ($sdk:ident, $aws:expr, $t:expr) => {{
        let t: $crate::Target = $t;
        let mut conf = $sdk::config::Builder::from(&$aws.base);
        if let Some(c) = t.credentials {
            conf = conf.credentials_provider(c);
        }
        if let Some(r) = t.region {
            conf = conf.region(r);
        }
        $sdk::Client::from_conf(conf.build())
    }};
}
pub(crate) use with_target;

/// A client of SDK crate `$sdk` acting in `account` and `region` (`None`: the home
/// region), built from `Aws`'s base configuration.
macro_rules! client {
    ($sdk:ident, $aws:expr, $account:expr, $region:expr) => {{
        let t = $aws.target($account, $region).await?;
        with_target!($sdk, $aws, t)
    }};
}

/// Credentials of an assumed role, kept until shortly before they expire.
struct Session {
    credentials: Credentials,
    expires: SystemTime,
}

/// Calls AWS for Vigil: holds the base configuration and one session per
/// account whose response role was assumed.
pub struct Aws {
    base: SdkConfig,
    settings: AwsSettings,
    sessions: Mutex<HashMap<String, Session>>,
}

/// How long an assumed role's credentials are asked for (STS's minimum).
const SESSION_SECONDS: i32 = 900;

impl Aws {
    /// Loads Vigil's own credentials the SDK's usual way (environment, profile,
    /// container or instance role).
    pub async fn new(settings: AwsSettings) -> Aws {
        Aws {
            base: sdk_config(&settings).await,
            settings,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The credentials to act in `account` with: the response role's there,
    /// assumed (and kept) when needed, else Vigil's own.
    async fn credentials_for(
        &self,
        account: Option<&str>,
    ) -> Result<Option<SharedCredentialsProvider>, ActionError> {
        let (Some(account), Some(role)) = (account, &self.settings.response_role) else {
            return Ok(None);
        };
        if self.settings.home_account.as_deref() == Some(account) {
            return Ok(None);
        }
        let mut sessions = self.sessions.lock().await;
        if let Some(s) = sessions.get(account) {
            if s.expires > SystemTime::now() + Duration::from_secs(120) {
                return Ok(Some(SharedCredentialsProvider::new(s.credentials.clone())));
            }
        }
        let arn = format!(
            "arn:{}:iam::{account}:role/{role}",
            partition(&home_region(&self.settings))
        );
        let op = format!("sts:AssumeRole {arn}");
        let mut ask = aws_sdk_sts::Client::new(&self.base)
            .assume_role()
            .role_arn(&arn)
            .role_session_name("vigil-response")
            .duration_seconds(SESSION_SECONDS);
        if let Some(id) = &self.settings.external_id {
            ask = ask.external_id(id);
        }
        let out = ask.send().await.map_err(|e| sdk_error(&op, e))?;
        let c = out.credentials().ok_or_else(|| ActionError::Failed {
            op: op.clone(),
            message: "no credentials in the answer".into(),
        })?;
        let expires = SystemTime::try_from(*c.expiration())
            .unwrap_or_else(|_| SystemTime::now() + Duration::from_secs(SESSION_SECONDS as u64));
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            Some(expires),
            "vigil-response-role",
        );
        sessions.insert(
            account.to_owned(),
            Session {
                credentials: credentials.clone(),
                expires,
            },
        );
        Ok(Some(SharedCredentialsProvider::new(credentials)))
    }

    /// The credentials and region an SDK client acting in `account` and `region`
    /// is built with.
    async fn target(
        &self,
        account: Option<&str>,
        region: Option<&str>,
    ) -> Result<Target, ActionError> {
        Ok(Target {
            credentials: self.credentials_for(account).await?,
            region: region.map(|r| Region::new(r.to_owned())),
        })
    }

    /// The home region's name (where IAM and STS are called).
    pub fn home_region_name(&self) -> String {
        home_region(&self.settings)
    }

    /// The account `account` names, or Vigil's own (asked of STS once, if not
    /// configured).
    async fn account_id(&self, account: Option<&str>) -> Result<String, ActionError> {
        if let Some(a) = account.or(self.settings.home_account.as_deref()) {
            return Ok(a.to_owned());
        }
        let op = "sts:GetCallerIdentity";
        let me = aws_sdk_sts::Client::new(&self.base)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| sdk_error(op, e))?;
        me.account()
            .map(str::to_owned)
            .ok_or_else(|| ActionError::Failed {
                op: op.into(),
                message: "no account in the answer".into(),
            })
    }

    /// Carries out action `name` with `params` (already rendered) in `account`
    /// and `region` (global services: the home region whatever is given).
    pub async fn run(
        &self,
        name: &str,
        params: &Value,
        account: Option<&str>,
        region: Option<&str>,
    ) -> Result<Outcome, ActionError> {
        let (service, _) = name.split_once('.').unwrap_or((name, ""));
        match service {
            "iam" => iam::run(&client!(aws_sdk_iam, self, account, None), name, params).await,
            "ec2" => ec2::run(&client!(aws_sdk_ec2, self, account, region), name, params).await,
            "s3" if name == "s3.block_account_public_access" => {
                let id = self.account_id(account).await?;
                s3::block_account(&self.s3control(account, region).await?, &id).await
            }
            "s3" => s3::run(&self.s3(account, region).await?, name, params).await,
            "cloudtrail" => {
                let c = client!(aws_sdk_cloudtrail, self, account, region);
                cloudtrail::run(&c, name, params).await
            }
            "guardduty" => {
                let c = client!(aws_sdk_guardduty, self, account, region);
                guardduty::run(&c, name, params).await
            }
            "kms" => kms::run(&client!(aws_sdk_kms, self, account, region), name, params).await,
            // The organization's management account: Vigil's own credentials.
            "organizations" => {
                let c = client!(aws_sdk_organizations, self, None, None);
                organizations::run(&c, name, params).await
            }
            // Vigil's own bus, in its own account and home region.
            "events" => {
                let c = client!(aws_sdk_eventbridge, self, None, None);
                events::run(&c, name, params).await
            }
            _ => Err(ActionError::Unsupported(name.to_owned())),
        }
    }

    /// Every account of the organization (its OU path and tags), read in
    /// `management` (the management account, or a delegated administrator)
    /// through the response role there, or with Vigil's own credentials.
    pub async fn organization_members(
        &self,
        management: Option<&str>,
    ) -> Result<Vec<organizations::Member>, ActionError> {
        let c = client!(aws_sdk_organizations, self, management, None);
        organizations::members(&c).await
    }

    /// The regions enabled in `account` (opt-in regions only where opted in).
    pub async fn enabled_regions(&self, account: Option<&str>) -> Result<Vec<String>, ActionError> {
        let c = client!(aws_sdk_ec2, self, account, None);
        let out = c
            .describe_regions()
            .send()
            .await
            .map_err(|e| sdk_error("ec2:DescribeRegions", e))?;
        let mut regions: Vec<String> = out
            .regions()
            .iter()
            .filter_map(|r| r.region_name().map(str::to_owned))
            .collect();
        regions.sort();
        Ok(regions)
    }

    /// An S3 client; against an endpoint of one's own (an emulator), buckets go
    /// in the path, since its host name has no bucket subdomains.
    async fn s3(
        &self,
        account: Option<&str>,
        region: Option<&str>,
    ) -> Result<aws_sdk_s3::Client, ActionError> {
        let t = self.target(account, region).await?;
        let mut conf = aws_sdk_s3::config::Builder::from(&self.base)
            .force_path_style(self.settings.endpoint_url.is_some());
        if let Some(c) = t.credentials {
            conf = conf.credentials_provider(c);
        }
        if let Some(r) = t.region {
            conf = conf.region(r);
        }
        Ok(aws_sdk_s3::Client::from_conf(conf.build()))
    }

    /// An S3 Control client. Its calls go to `{account}.s3-control…`; against an
    /// endpoint of one's own that host prefix would name no host, so the endpoint
    /// is taken as given (what boto3's `inject_host_prefix=False` does).
    async fn s3control(
        &self,
        account: Option<&str>,
        region: Option<&str>,
    ) -> Result<aws_sdk_s3control::Client, ActionError> {
        let t = self.target(account, region).await?;
        let mut conf = aws_sdk_s3control::config::Builder::from(&self.base);
        if let Some(c) = t.credentials {
            conf = conf.credentials_provider(c);
        }
        if let Some(r) = t.region {
            conf = conf.region(r);
        }
        if let Some(url) = &self.settings.endpoint_url {
            conf = conf.endpoint_resolver(s3::FixedEndpoint(url.clone()));
        }
        Ok(aws_sdk_s3control::Client::from_conf(conf.build()))
    }
}

/// Where an SDK client acts: with whose credentials (none: Vigil's own) and in
/// which region (none: the home one).
struct Target {
    credentials: Option<SharedCredentialsProvider>,
    region: Option<Region>,
}

impl Executor for Aws {
    fn execute<'a>(
        &'a self,
        name: &'a str,
        params: &'a Value,
        account: Option<&'a str>,
        region: Option<&'a str>,
    ) -> ActionFuture<'a> {
        tracing::debug!(
            action = name,
            account = account.unwrap_or("home"),
            region = region.unwrap_or("home"),
            "response action"
        );
        Box::pin(self.run(name, params, account, region))
    }
}

/// The HTTP client every SDK client of Vigil's uses: hyper with rustls over ring
/// (HTTPS to AWS, or plain HTTP to an emulator's endpoint).
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

fn home_region(s: &AwsSettings) -> String {
    s.home_region.clone().unwrap_or_else(|| "us-east-1".into())
}

fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Sorts an SDK error into the kinds the engine acts on.
/// An SDK error as one line: the service's code and message where it gave
/// them, else the whole chain of causes.
pub fn error_text<E>(
    e: &aws_sdk_iam::error::SdkError<E, aws_sdk_iam::config::http::HttpResponse>,
) -> String
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata};
    match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_owned(),
        _ => DisplayErrorContext(e).to_string(),
    }
}

/// The SDK configuration every client of Vigil's starts from: the HTTP client,
/// the region, the endpoint and credentials of `settings`, else found the
/// SDK's usual way (environment, profile, container or instance role).
pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .region(Region::new(home_region(settings)));
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(c) = &settings.credentials {
        loader = loader.credentials_provider(c.clone());
    }
    loader.load().await
}

pub(crate) fn sdk_error<E>(
    op: &str,
    e: aws_sdk_iam::error::SdkError<E, aws_sdk_iam::config::http::HttpResponse>,
) -> ActionError
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
    let op = op.to_owned();
    let code = e.code().unwrap_or("").to_owned();
    let message = match e.message() {
        Some(m) if !code.is_empty() => format!("{code}: {m}"),
        _ => DisplayErrorContext(&e).to_string(),
    };
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return ActionError::Transient { op, message }
        }
        SdkError::ServiceError(s) if s.raw().status().is_server_error() => {
            return ActionError::Transient { op, message }
        }
        _ => {}
    }
    match code.as_str() {
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "ServiceUnavailable"
        | "InternalFailure"
        | "ServiceFailure" => ActionError::Transient { op, message },
        // IAM's NoSuchEntity, S3's NoSuchBucket; EC2's InvalidInstanceID.NotFound
        // and kin.
        c if c.starts_with("NoSuch")
            || c.ends_with("NotFound")
            || c.ends_with("NotFoundException") =>
        {
            ActionError::NotFound { op, message }
        }
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
            ActionError::Denied { op, message }
        }
        _ => ActionError::Failed { op, message },
    }
}

/// A string parameter, required.
pub(crate) fn param<'a>(params: &'a Value, name: &str) -> Result<&'a str, ActionError> {
    match params.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(ActionError::Parameter {
            name: name.into(),
            message: "must be a non-empty string".into(),
        }),
        None => Err(ActionError::Parameter {
            name: name.into(),
            message: "missing".into(),
        }),
    }
}

/// A string parameter that may be left out.
pub(crate) fn optional<'a>(params: &'a Value, name: &str) -> Result<Option<&'a str>, ActionError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => param(params, name).map(Some),
    }
}
