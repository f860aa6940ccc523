//! The HTTP service, tested at its boundary: handlers through `oneshot` (no socket), client JWT
//! verification, the FHIR prefetch client and graceful shutdown against local servers.
//!
//! The decision pipeline is replaced by [`support::TestPipeline`], a test double of the
//! `DecisionPipeline` seam (not of PostgreSQL): the real pipeline is wired by the lead.

mod fhir_client;
mod handlers;
mod jwt;
mod logs;
mod pharmacy_routes;
mod security;
mod shutdown;
mod staff;
mod support;
