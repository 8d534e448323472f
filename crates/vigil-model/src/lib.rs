//! The shared vocabulary of Vigil: one normalized [`Event`] for every telemetry
//! source (CloudTrail, VPC Flow Logs, GuardDuty, Security Hub), and the small value
//! types it is made of ([`Timestamp`], [`Severity`], [`Actor`], …).
//!
//! This crate does no IO and knows nothing of file formats: decoders live in
//! `vigil-ingest`, detection in `vigil-detect`. It compiles in seconds so that every
//! other crate can depend on it freely. The one piece of JSON scanning both of those
//! need, finding where an object or array ends, is here: [`brackets`].

pub mod account;
pub mod brackets;
pub mod event;
pub mod severity;
pub mod time;

pub use account::{Account, AccountRegistry, Environment};
pub use event::{
    Action, Actor, Event, FindingFields, FlowAction, FlowFields, IdentityType, LogStatus, Outcome,
    Raw, ResourceRef, SessionIssuer, SourceKind, ThreatType,
};
pub use severity::Severity;
pub use time::{Timestamp, TimestampError};
