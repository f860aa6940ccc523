//! orderguard: clinical decision support for vertebral compression fracture order sets.
//!
//! See `ARCHITECTURE.md` for the map. The flow of one decision:
//! adapter (CDS Hooks FHIR R4 | native JSON) → [`domain`] → engine (pure) → decision →
//! audit writer (durable) → response (CDS Hooks cards | native decision).

// `unsafe` lives in one place: the global allocator's calls into mimalloc.
#![deny(unsafe_code)]

pub mod adapters;
#[allow(unsafe_code)]
pub mod alloc;
pub mod audit;
pub mod audit_export;
pub mod canonical;
pub mod cards;
pub mod cli;
pub mod decide;
pub mod decision;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod pathway;
pub mod pharmacy;
pub mod pipeline;
pub mod reload;
pub mod replay;
pub mod reports;
pub mod service;
pub mod terminology;
pub mod web;
