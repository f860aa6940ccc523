//! The staff routes of this module, added to [`crate::service::staff::staff_router`]:
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /v1/dosing-alerts` | pharmacist | the queue as JSON |
//! | `POST /v1/dosing-alerts/{id}/actions` | pharmacist | acknowledge / escalate / resolve |
//! | `GET /pharmacy` | pharmacist | the queue as a page |
//! | `GET /reports` | quality | every report as tables and SVG charts |
//! | `GET /v1/audit-events` | quality (or admin) | FHIR R4 Bundle of AuditEvent |
//! | `GET /static/*` | none | the page's stylesheet and script (no patient data) |
//!
//! Admin may do everything. Each read of audit data is recorded (`staff.read`) before it is
//! answered; each 4xx is recorded in `rejected_requests`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::pharmacy_page::{self, FilterForm};
use super::reports_page;
use crate::audit::RejectionRecord;
use crate::audit_export::{self, ExportQuery};
use crate::pharmacy::{self, AlertAction, AlertKey, AlertQuery, AlertStatus, QueueError};
use crate::reports::{self, ReportName, ReportQuery};
use crate::service::problem::{FieldError, Problem, ProblemKind};
use crate::service::staff::{Role, StaffIdentity, StaffState};

pub const ALERTS_ROUTE: &str = "/v1/dosing-alerts";
pub const ACTION_ROUTE: &str = "/v1/dosing-alerts/{id}/actions";
pub const PHARMACY_ROUTE: &str = "/pharmacy";
pub const REPORTS_PAGE_ROUTE: &str = "/reports";
pub const AUDIT_EVENTS_ROUTE: &str = "/v1/audit-events";

/// Who may export the audit log as FHIR AuditEvents (admin passes any role check).
pub const EXPORT_ROLES: &[Role] = &[Role::Quality, Role::Admin];
/// The largest action body accepted.
const MAX_ACTION_BODY: usize = 16 * 1024;

pub fn routes() -> Router<StaffState> {
    Router::new()
        .route(ALERTS_ROUTE, get(list_alerts))
        .route(ACTION_ROUTE, post(act))
        .route(PHARMACY_ROUTE, get(pharmacy_html))
        .route(REPORTS_PAGE_ROUTE, get(reports_html))
        .route(AUDIT_EVENTS_ROUTE, get(audit_events))
        .route("/static/orderguard.css", get(super::stylesheet))
        .route("/static/pharmacy.js", get(super::pharmacy_script))
}

/// A 4xx problem for `param`, recorded in `rejected_requests` (best effort) before it is sent.
async fn refuse(
    staff: &StaffState,
    identity: Option<&StaffIdentity>,
    route: &str,
    problem: Problem,
) -> Response {
    let record = RejectionRecord {
        at: Utc::now(),
        client_id: identity.map(|i| i.subject.clone()),
        route: route.to_owned(),
        reason: problem.detail.clone(),
        status: problem.status().as_u16(),
        body_hash: None,
        body_len: 0,
    };
    if let Err(error) = staff.audit().record_rejection(record).await {
        tracing::warn!(%error, route, "refused staff request not recorded");
    }
    problem.into_response()
}

fn invalid(param: &str, message: impl Into<String>) -> Problem {
    let message = message.into();
    Problem::new(ProblemKind::InvalidRequest, format!("{param}: {message}"))
        .with_errors(vec![FieldError::new(param, message)])
}

fn internal(error: impl std::fmt::Display, what: &str) -> Response {
    tracing::error!(%error, what, "staff route failed");
    Problem::new(ProblemKind::Internal, "").into_response()
}

/// The URL query as decoded pairs; empty values (blank form fields) count as absent.
fn pairs(uri: &Uri) -> Result<Vec<(String, String)>, Problem> {
    let axum::extract::Query(pairs) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|_| invalid("?", "the query string is not valid URL encoding"))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (name, value) in pairs {
        if !seen.insert(name.clone()) {
            return Err(invalid(&name, "given more than once"));
        }
        if value.len() > 256 {
            return Err(invalid(&name, "longer than 256 characters"));
        }
        if !value.is_empty() {
            out.push((name, value));
        }
    }
    Ok(out)
}

/// RFC 3339, or a date (`from` = the start of that day, `to` = the end of it), as the reports
/// read them.
fn parse_time(param: &str, value: &str, end_of_day: bool) -> Result<DateTime<Utc>, Problem> {
    reports::parse_time(param, value, end_of_day).map_err(|e| invalid(&e.param, e.message))
}

/// Reads the queue filters (`status`, `rule`, `from`, `to`, `patient`, `limit`).
fn alert_query(params: &[(String, String)]) -> Result<(AlertQuery, FilterForm), Problem> {
    let mut query = AlertQuery::default();
    let mut form = FilterForm::default();
    for (name, value) in params {
        match name.as_str() {
            "status" => {
                query.status = Some(AlertStatus::parse(value).ok_or_else(|| {
                    invalid("status", "one of open, acknowledged, escalated, resolved")
                })?);
                form.status = value.clone();
            }
            "rule" => {
                query.rule = Some(value.clone());
                form.rule = value.clone();
            }
            "from" => {
                query.from = Some(parse_time("from", value, false)?);
                form.from = value.clone();
            }
            "to" => {
                query.to = Some(parse_time("to", value, true)?);
                form.to = value.clone();
            }
            "patient" => {
                query.patient = Some(value.clone());
                form.patient = value.clone();
            }
            "limit" => {
                query.limit = Some(
                    value
                        .parse::<i64>()
                        .ok()
                        .filter(|n| (1..=pharmacy::MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            invalid(
                                "limit",
                                format!("a whole number from 1 to {}", pharmacy::MAX_LIMIT),
                            )
                        })?,
                );
            }
            other => return Err(invalid(other, "not a parameter of the dosing-alert queue")),
        }
    }
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from >= to
    {
        return Err(invalid("from", "must be before to"));
    }
    Ok((query, form))
}

fn filters_json(query: &AlertQuery) -> Value {
    json!({
        "status": query.status,
        "rule": query.rule,
        "from": query.from,
        "to": query.to,
        "patient": query.patient,
        "limit": query.limit,
    })
}

async fn read_queue(
    staff: &StaffState,
    identity: &StaffIdentity,
    route: &'static str,
    uri: &Uri,
) -> Result<(Vec<pharmacy::DosingAlert>, AlertQuery, FilterForm), Response> {
    identity.require(Role::Pharmacist)?;
    let (query, form) = match pairs(uri).and_then(|p| alert_query(&p)) {
        Ok(q) => q,
        Err(problem) => return Err(refuse(staff, Some(identity), route, problem).await),
    };
    let alerts = pharmacy::list(staff.reports_pool(), &query)
        .await
        .map_err(|e| internal(e, "dosing-alert queue"))?;
    staff
        .record_read(
            identity,
            route,
            json!({"filters": filters_json(&query), "rows": alerts.len()}),
        )
        .await?;
    Ok((alerts, query, form))
}

/// The queue's filters as OpenAPI parameters. [`alert_query`] reads them from the URL by hand
/// (blank values are absent, each name at most once), so this type only describes them.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct QueueParams {
    /// open, acknowledged, escalated or resolved
    status: Option<String>,
    /// A DOSE-* rule id
    rule: Option<String>,
    /// RFC 3339 or a date
    from: Option<String>,
    /// RFC 3339 or a date (the end of that day)
    to: Option<String>,
    /// A patient reference
    patient: Option<String>,
    /// At most this many alerts (default 100)
    limit: Option<u32>,
}

/// The pharmacist queue: every DOSE-* finding, newest first, with its status.
#[utoipa::path(get, path = "/v1/dosing-alerts", tag = "pharmacy", security(("bearer" = [])),
    params(QueueParams),
    responses((status = 200, description = "The alerts with their numbers, limits and status", content_type = "application/json"),
              (status = 400, description = "A filter is not valid; `errors` name it", content_type = "application/problem+json")))]
pub(crate) async fn list_alerts(
    State(staff): State<StaffState>,
    identity: StaffIdentity,
    uri: Uri,
) -> Result<Response, Response> {
    let (alerts, query, _) = read_queue(&staff, &identity, ALERTS_ROUTE, &uri).await?;
    Ok(axum::Json(json!({
        "filters": filters_json(&query),
        "limit": query.limit.unwrap_or(100),
        "alerts": alerts,
    }))
    .into_response())
}

/// The pharmacist queue as a page.
#[utoipa::path(get, path = "/pharmacy", tag = "pharmacy", security(("bearer" = [])),
    params(QueueParams),
    responses((status = 200, description = "The queue page", content_type = "text/html"),
              (status = 400, description = "A filter is not valid", content_type = "application/problem+json")))]
pub(crate) async fn pharmacy_html(
    State(staff): State<StaffState>,
    identity: StaffIdentity,
    uri: Uri,
) -> Result<Response, Response> {
    let (alerts, query, form) = read_queue(&staff, &identity, PHARMACY_ROUTE, &uri).await?;
    Ok(super::html_response(pharmacy_page::render(
        &alerts,
        &form,
        query.limit.unwrap_or(100),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    action: String,
    #[serde(default)]
    note: Option<String>,
}

/// Acknowledge, escalate or resolve a dosing alert, with a note (appended as an audit event).
#[utoipa::path(post, path = "/v1/dosing-alerts/{id}/actions", tag = "pharmacy", security(("bearer" = [])),
    params(("id" = String, Path, description = "The alert id from the queue")),
    request_body(content = Object, content_type = "application/json", description = "`{\"action\": \"acknowledge\"|\"escalate\"|\"resolve\", \"note\": ...}`"),
    responses((status = 201, description = "The action recorded, with the alert's new status", content_type = "application/json"),
              (status = 400, description = "The body is not valid; `errors` name the field", content_type = "application/problem+json"),
              (status = 404, description = "No such alert", content_type = "application/problem+json"),
              (status = 409, description = "The action does not apply to the alert's status", content_type = "application/problem+json"),
              (status = 503, description = "The action could not be recorded; it was not taken", content_type = "application/problem+json")))]
pub(crate) async fn act(
    State(staff): State<StaffState>,
    identity: StaffIdentity,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Response> {
    identity.require(Role::Pharmacist)?;
    let refuse_with = |problem: Problem| refuse(&staff, Some(&identity), ACTION_ROUTE, problem);
    let Some(key) = AlertKey::parse(&id) else {
        return Err(refuse_with(Problem::new(
            ProblemKind::NotFound,
            "no dosing alert with this id (expected <decision uuid>.<finding index>)",
        ))
        .await);
    };
    if body.len() > MAX_ACTION_BODY {
        return Err(refuse_with(Problem::new(
            ProblemKind::BodyTooLarge,
            format!("an action body is at most {MAX_ACTION_BODY} bytes"),
        ))
        .await);
    }
    let parsed: ActionBody = {
        let mut de = serde_json::Deserializer::from_slice(&body);
        match serde_path_to_error::deserialize(&mut de) {
            Ok(b) => b,
            Err(e) => {
                let path = e.path().to_string();
                let pointer = if path == "." {
                    String::new()
                } else {
                    format!("/{}", path.replace('.', "/"))
                };
                let message = e.inner().to_string();
                return Err(refuse_with(
                    Problem::new(ProblemKind::InvalidRequest, format!("body: {message}"))
                        .with_errors(vec![FieldError::new(pointer, message)]),
                )
                .await);
            }
        }
    };
    let Some(action) = AlertAction::parse(&parsed.action) else {
        return Err(refuse_with(
            Problem::new(ProblemKind::InvalidRequest, "action: unknown").with_errors(vec![
                FieldError::new("/action", "one of acknowledge, escalate, resolve"),
            ]),
        )
        .await);
    };
    let note = match pharmacy::clean_note(parsed.note.as_deref()) {
        Ok(n) => n,
        Err(message) => {
            return Err(refuse_with(
                Problem::new(ProblemKind::InvalidRequest, format!("note: {message}"))
                    .with_errors(vec![FieldError::new("/note", message)]),
            )
            .await);
        }
    };
    match pharmacy::act(
        staff.reports_pool(),
        staff.audit(),
        key,
        action,
        note.as_deref(),
        &identity.subject,
    )
    .await
    {
        Ok(outcome) => Ok((StatusCode::CREATED, axum::Json(outcome)).into_response()),
        Err(QueueError::NotFound(_)) => Err(refuse_with(Problem::new(
            ProblemKind::NotFound,
            "no dosing alert with this id",
        ))
        .await),
        Err(QueueError::Transition(t)) => Err(refuse_with(
            Problem::new(ProblemKind::Conflict, t.to_string()).with_errors(vec![FieldError::new(
                "/action",
                format!("the alert is {}", t.from.as_str()),
            )]),
        )
        .await),
        Err(QueueError::Audit(error)) => {
            tracing::error!(%error, "dosing-alert action not recorded");
            Err(Problem::new(
                ProblemKind::AuditUnavailable,
                "the action could not be recorded in the audit log; it was not taken",
            )
            .into_response())
        }
        Err(QueueError::Database(error)) => Err(internal(error, "dosing-alert action")),
    }
}

/// Every report as tables and server-drawn SVG charts.
#[utoipa::path(get, path = "/reports", tag = "reports", security(("bearer" = [])),
    params(("from" = Option<String>, Query, description = "RFC 3339 or a date"),
           ("to" = Option<String>, Query, description = "RFC 3339 or a date")),
    responses((status = 200, description = "The reports page", content_type = "text/html"),
              (status = 400, description = "A filter is not valid", content_type = "application/problem+json")))]
pub(crate) async fn reports_html(
    State(staff): State<StaffState>,
    identity: StaffIdentity,
    uri: Uri,
) -> Result<Response, Response> {
    identity.require(Role::Quality)?;
    let params = match pairs(&uri) {
        Ok(p) => p,
        Err(problem) => {
            return Err(refuse(&staff, Some(&identity), REPORTS_PAGE_ROUTE, problem).await);
        }
    };
    let mut only: Option<ReportName> = None;
    let mut report_params: Vec<(String, String)> = Vec::new();
    for (name, value) in &params {
        if name == "report" {
            match ReportName::parse(value) {
                Some(r) => only = Some(r),
                None => {
                    let problem = invalid("report", "not a report name");
                    return Err(refuse(&staff, Some(&identity), REPORTS_PAGE_ROUTE, problem).await);
                }
            }
        } else {
            report_params.push((name.clone(), value.clone()));
        }
    }
    // Sorting applies to one report at a time (columns differ between reports).
    if only.is_none() && report_params.iter().any(|(n, _)| n == "sort") {
        let problem = invalid("sort", "choose one report to sort it");
        return Err(refuse(&staff, Some(&identity), REPORTS_PAGE_ROUTE, problem).await);
    }
    let query = match ReportQuery::from_params(
        report_params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        Utc::now(),
    ) {
        Ok(mut q) => {
            // The page shows at most a screenful per report; the API gives the rest.
            q.limit = q.limit.min(reports_page::PAGE_ROWS);
            q
        }
        Err(e) => {
            let problem = invalid(&e.param, e.message);
            return Err(refuse(&staff, Some(&identity), REPORTS_PAGE_ROUTE, problem).await);
        }
    };
    let names: Vec<ReportName> = match only {
        Some(r) => vec![r],
        None => ReportName::ALL.to_vec(),
    };
    let mut sections = Vec::with_capacity(names.len());
    for name in names {
        // A filter a report does not have is left out for that report (and said so), rather
        // than refusing the whole page.
        let mut q = query.clone();
        let mut skipped = Vec::new();
        for (filter, _) in query.filters.set() {
            if !name.filters().contains(&filter) {
                *q.filters.slot(filter) = None;
                skipped.push(filter.param());
            }
        }
        match reports::run(staff.reports_pool(), name, &q).await {
            Ok(table) => sections.push(reports_page::Section {
                table,
                skipped_filters: skipped,
            }),
            Err(reports::ReportError::Query(e)) => {
                let problem = invalid(&e.param, e.message);
                return Err(refuse(&staff, Some(&identity), REPORTS_PAGE_ROUTE, problem).await);
            }
            Err(error @ reports::ReportError::TooSlow) => {
                let problem = Problem::new(ProblemKind::TooSlow, error.to_string());
                return Err(refuse(&staff, Some(&identity), REPORTS_PAGE_ROUTE, problem).await);
            }
            Err(reports::ReportError::Database(e)) => return Err(internal(e, "report page")),
        }
    }
    let read: Vec<Value> = sections
        .iter()
        .map(|s| json!({"report": s.table.name, "rows": s.table.rows.len()}))
        .collect();
    staff
        .record_read(
            &identity,
            REPORTS_PAGE_ROUTE,
            json!({
                "reports": read,
                "from": query.from,
                "to": query.to,
                "filters": query.filters,
                "sort": query.sort,
                "format": "html",
            }),
        )
        .await?;
    Ok(super::html_response(reports_page::render(
        &sections, &query, only,
    )))
}

/// The audit log as a FHIR R4 Bundle of AuditEvent (role quality or admin).
#[utoipa::path(get, path = "/v1/audit-events", tag = "audit", security(("bearer" = [])),
    params(("patient" = Option<String>, Query, description = "A patient reference"),
           ("from" = Option<String>, Query, description = "RFC 3339 or a date"),
           ("to" = Option<String>, Query, description = "RFC 3339 or a date"),
           ("_count" = Option<i64>, Query, description = "Entries per page"),
           ("_offset" = Option<i64>, Query, description = "Entries to skip")),
    responses((status = 200, description = "A searchset Bundle of AuditEvent", content_type = "application/fhir+json"),
              (status = 400, description = "A parameter is not valid; `errors` name it", content_type = "application/problem+json")))]
pub(crate) async fn audit_events(
    State(staff): State<StaffState>,
    identity: StaffIdentity,
    uri: Uri,
) -> Result<Response, Response> {
    identity.require_any(EXPORT_ROLES)?;
    let refuse_with =
        |problem: Problem| refuse(&staff, Some(&identity), AUDIT_EVENTS_ROUTE, problem);
    let params = match pairs(&uri) {
        Ok(p) => p,
        Err(problem) => return Err(refuse_with(problem).await),
    };
    let now = Utc::now();
    let (mut patient, mut from, mut to) = (None, None, None);
    let (mut count, mut offset) = (audit_export::DEFAULT_COUNT, 0i64);
    for (name, value) in &params {
        let parsed = match name.as_str() {
            "patient" => {
                patient = Some(value.clone());
                Ok(())
            }
            "from" => parse_time("from", value, false).map(|t| from = Some(t)),
            "to" => parse_time("to", value, true).map(|t| to = Some(t)),
            "_count" => value
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=audit_export::MAX_COUNT).contains(n))
                .map(|n| count = n)
                .ok_or_else(|| {
                    invalid(
                        "_count",
                        format!("a whole number from 1 to {}", audit_export::MAX_COUNT),
                    )
                }),
            "_offset" => value
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(|n| offset = n)
                .ok_or_else(|| invalid("_offset", "a whole number, 0 or more")),
            other => Err(invalid(other, "not a parameter of the AuditEvent export")),
        };
        if let Err(problem) = parsed {
            return Err(refuse_with(problem).await);
        }
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - chrono::Duration::days(ReportQuery::DEFAULT_DAYS));
    if from >= to {
        return Err(refuse_with(invalid("from", "must be before to")).await);
    }
    let query = ExportQuery {
        patient,
        from,
        to,
        count,
        offset,
    };
    let page = audit_export::export(staff.reports_pool(), &query)
        .await
        .map_err(|e| internal(e, "audit-event export"))?;
    staff
        .record_read(
            &identity,
            AUDIT_EVENTS_ROUTE,
            json!({
                "patient": query.patient,
                "from": query.from,
                "to": query.to,
                "count": count,
                "offset": offset,
                "rows": page.events.len(),
            }),
        )
        .await?;
    let link = |offset: i64| {
        let mut q = url_params(&[
            ("patient", query.patient.clone()),
            ("from", Some(instant(query.from))),
            ("to", Some(instant(query.to))),
            ("_count", Some(count.to_string())),
        ]);
        if offset > 0 {
            q.push_str(&format!("&_offset={offset}"));
        }
        format!("{AUDIT_EVENTS_ROUTE}?{q}")
    };
    let next = page.more.then(|| link(offset + count));
    let bundle = audit_export::bundle(page.events, &link(offset), next.as_deref(), now);
    let mut response = axum::Json(bundle).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json; fhirVersion=4.0"),
    );
    Ok(response)
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `a=1&b=2`, percent-encoding the values, leaving out absent ones.
pub fn url_params(params: &[(&str, Option<String>)]) -> String {
    params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", percent_encode(v))))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn queue_filters_parse_and_errors_name_the_parameter() {
        let (q, form) = alert_query(&params(&[
            ("status", "open"),
            ("rule", "DOSE-MME-90' OR '1'='1"),
            ("from", "2026-11-01"),
            ("to", "2026-11-30"),
        ]))
        .unwrap();
        assert_eq!(q.status, Some(AlertStatus::Open));
        assert_eq!(q.rule.as_deref(), Some("DOSE-MME-90' OR '1'='1"));
        assert_eq!(q.to.unwrap().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(form.from, "2026-11-01");
        for (bad, param) in [
            (("status", "closed"), "status"),
            (("from", "yesterday"), "from"),
            (("limit", "0"), "limit"),
            (("order", "x"), "order"),
        ] {
            let problem = alert_query(&params(&[bad])).unwrap_err();
            assert_eq!(problem.errors[0].path, param);
        }
        let problem =
            alert_query(&params(&[("from", "2026-11-02"), ("to", "2026-11-01")])).unwrap_err();
        assert_eq!(problem.errors[0].path, "from");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            url_params(&[("patient", Some("Patient/1 2&x".into())), ("to", None)]),
            "patient=Patient%2F1%202%26x"
        );
    }
}
