//! The staff pages and their JSON APIs: the pharmacist dosing-alert queue (`/pharmacy`,
//! `/v1/dosing-alerts`), the quality reports page (`/reports`), the FHIR AuditEvent export
//! (`/v1/audit-events`), and the two static assets they use (`/static/*`, served from the
//! binary: hospitals run offline, there is no CDN and no JS build chain).
//!
//! - [`html`]: the one `escape` and the page frame (with its Content-Security-Policy);
//! - [`svg`]: server-drawn line and bar charts;
//! - [`pharmacy_page`], [`reports_page`]: the pages, pure functions of their data.

pub mod html;
pub mod pharmacy_page;
pub mod reports_page;
pub mod routes;
pub mod svg;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("static/orderguard.css");
const PHARMACY_JS: &str = include_str!("static/pharmacy.js");

/// `/static/orderguard.css`
pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// `/static/pharmacy.js`
pub async fn pharmacy_script() -> Response {
    asset("text/javascript; charset=utf-8", PHARMACY_JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// An HTML page with the security headers every staff page carries.
pub fn html_response(body: String) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(html::CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
