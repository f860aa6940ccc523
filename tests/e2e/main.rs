//! End-to-end: the real `orderguard serve` binary against the real PostgreSQL. Each test gets a
//! fresh database `og_e2e_<uuid>` on the server at `DATABASE_URL` (default
//! postgres://postgres@127.0.0.1:5432/postgres) and a data folder of its own.

mod bad_input;
mod browser;
mod cdp;
mod cds_hooks;
mod conformance;
mod crash;
mod native;
mod support;
