//! The shared vocabulary of Vigil: one normalized [`Event`] for every telemetry
//! source (CloudTrail, VPC Flow Logs, GuardDuty, Security Hub), and the small value
//! types it is made of ([`Timestamp`], [`Severity`], [`Actor`], …); what detection
//! makes of events ([`Finding`]), what people work on ([`Incident`]), and the
//! statuses of playbook runs ([`response`]).
//!
//! This crate does no IO and knows nothing of file formats: decoders live in
//! `vigil-ingest`, detection in `vigil-detect`. It compiles in seconds so that every
//! other crate can depend on it freely. The one piece of JSON scanning both of those
//! need, finding where an object or array ends, is here: [`brackets`].

pub mod account;
pub mod brackets;
pub mod duration;
pub mod event;
pub mod finding;
pub mod incident;
pub mod response;
pub mod severity;
pub mod time;

pub use account::{Account, AccountError, AccountRegistry, Environment};
pub use duration::Span;
pub use event::{
    Action, Actor, Event, FindingFields, FlowAction, FlowFields, IdentityType, LogStatus, Outcome,
    Raw, ResourceRef, SessionIssuer, SourceKind, ThreatType,
};
pub use finding::{Category, Finding};
pub use incident::{Incident, IncidentStatus};
pub use severity::Severity;
pub use time::{Timestamp, TimestampError};
