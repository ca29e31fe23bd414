//! rssp: a Remote Signature Service Provider speaking the Cloud Signature Consortium API, with keys
//! in a PKCS#11 HSM and its own CA. See DESIGN.md (beside the project root) for the architecture.

pub mod api;
pub mod audit;
pub(crate) mod background;
pub mod cli;
pub mod clock;
pub mod config;
pub(crate) mod data_dir;
pub mod db;
pub mod domain;
pub mod hsm;
pub mod metrics;
pub(crate) mod notify;
pub mod pki;
pub mod service;
pub mod startup;
pub mod telemetry;
