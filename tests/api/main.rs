//! rssp's integration tests, one binary: a module per surface and flow, and the shared harness in
//! `common`. One binary links once (seventeen of them filled the CI disk while linking) and lets the
//! helpers be shared without `#[allow(dead_code)]`.
//!
//! Pick tests by module path: `cargo test --test api csc_signing::`, `cargo test --test api lifecycle::`.

// A separate crate that inherits [lints]: here a panic is a failed test or run, which is what it
// should be, and nothing outside uses its items, so they need no docs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

mod configuration;
mod csc_security;
mod csc_signing;
mod deployment;
mod document_signing;
mod hsm_algorithms;
mod http_edges;
mod lifecycle;
mod notify_delivery;
mod oauth2_clients;
mod observability;
mod ocsp;
mod openapi_truth;
mod platform;
mod postgres_migrations;
mod scale_out;
mod signing_sessions;
mod sole_control_hsm;
mod sole_control_pki;
mod sole_control_recovery;
mod sole_control_rekey;
mod sole_control_signing;
mod time_stamping;
