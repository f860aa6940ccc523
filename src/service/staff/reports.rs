//! `/v1/reports` (the catalog) and `/v1/reports/{name}` (one report as JSON or CSV), for the
//! `quality` role. See [`crate::reports`] for the parameters.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde_json::{Value, json};

use super::{Role, StaffIdentity, StaffState};
use crate::reports::{self, ReportError, ReportName, ReportQuery};
use crate::service::problem::{FieldError, Problem, ProblemKind};

pub const REPORT_ROUTE: &str = "/v1/reports/{name}";

pub fn routes() -> Router<StaffState> {
    Router::new()
        .route("/v1/reports", get(catalog))
        .route(REPORT_ROUTE, get(report))
}

/// Who may read reports.
pub const REPORT_ROLES: &[Role] = &[Role::Quality];

/// The reports, with their columns and filters (no audit data: not recorded as a read).
#[utoipa::path(get, path = "/v1/reports", tag = "reports", security(("bearer" = [])),
    responses((status = 200, description = "The reports: name, title, columns and filters", content_type = "application/json")))]
pub(crate) async fn catalog(identity: StaffIdentity) -> Result<Response, Response> {
    identity.require_any(REPORT_ROLES)?;
    let reports: Vec<Value> = ReportName::ALL
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "title": name.title(),
                "href": format!("/v1/reports/{name}"),
                "columns": name.columns(),
                "filters": name.filters().iter().map(|f| f.param()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "reports": reports })).into_response())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

/// Splits the URL query into `format` and the report parameters, decoded.
fn parse_params(uri: &Uri) -> Result<(Format, Vec<(String, String)>), Problem> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|_| invalid("?", "the query string is not valid URL encoding"))?;
    let mut format = Format::Json;
    let mut params = Vec::new();
    for (name, value) in pairs {
        if name == "format" {
            format = match value.as_str() {
                "json" => Format::Json,
                "csv" => Format::Csv,
                _ => return Err(invalid("format", "json or csv")),
            };
        } else {
            params.push((name, value));
        }
    }
    Ok((format, params))
}

fn invalid(param: &str, message: &str) -> Problem {
    Problem::new(
        ProblemKind::InvalidRequest,
        format!("query parameter {param}: {message}"),
    )
    .with_errors(vec![FieldError::new(param, message)])
}

/// One report over a time window (role quality); the read is recorded before it is answered.
#[utoipa::path(get, path = "/v1/reports/{name}", tag = "reports", security(("bearer" = [])),
    params(("name" = String, Path, description = "A report name from `/v1/reports`"),
           ("from" = Option<String>, Query, description = "Window start: RFC 3339 or a date"),
           ("to" = Option<String>, Query, description = "Window end: RFC 3339 or a date (the end of that day)"),
           ("format" = Option<String>, Query, description = "`json` (default) or `csv`")),
    responses((status = 200, description = "The rows (JSON or CSV); every column sortable with `sort`", content_type = "application/json"),
              (status = 400, description = "A parameter is not valid; `errors` name it", content_type = "application/problem+json"),
              (status = 404, description = "No such report", content_type = "application/problem+json"),
              (status = 503, description = "The report did not finish in its 30 s limit and was cancelled (`too-slow`)", content_type = "application/problem+json")))]
pub(crate) async fn report(
    State(staff): State<StaffState>,
    identity: StaffIdentity,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, Response> {
    identity.require_any(REPORT_ROLES)?;
    let Some(report) = ReportName::parse(&name) else {
        let known: Vec<&str> = ReportName::ALL.iter().map(|r| r.as_str()).collect();
        return Err(Problem::new(
            ProblemKind::NotFound,
            format!("no report {name:?}; reports: {}", known.join(", ")),
        )
        .into_response());
    };
    let (format, params) = parse_params(&uri).map_err(IntoResponse::into_response)?;
    let query = ReportQuery::from_params(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        Utc::now(),
    )
    .map_err(|e| invalid(&e.param, &e.message).into_response())?;
    let table = match reports::run(staff.reports_pool(), report, &query).await {
        Ok(table) => table,
        Err(ReportError::Query(e)) => return Err(invalid(&e.param, &e.message).into_response()),
        Err(error @ ReportError::TooSlow) => {
            tracing::warn!(
                report = report.as_str(),
                "report query cancelled at its time limit"
            );
            return Err(Problem::new(ProblemKind::TooSlow, error.to_string()).into_response());
        }
        Err(ReportError::Database(error)) => {
            tracing::error!(%error, report = report.as_str(), "report query failed");
            return Err(
                Problem::new(ProblemKind::Internal, "the report could not be read").into_response(),
            );
        }
    };
    staff
        .record_read(
            &identity,
            REPORT_ROUTE,
            json!({
                "report": report,
                "from": query.from,
                "to": query.to,
                "filters": query.filters,
                "sort": query.sort,
                "limit": query.limit,
                "format": if format == Format::Csv { "csv" } else { "json" },
                "rows": table.rows.len(),
            }),
        )
        .await?;
    match format {
        Format::Json => Ok(axum::Json(json!({
            "report": table.name,
            "title": table.title,
            "from": query.from,
            "to": query.to,
            "filters": query.filters,
            "columns": table.columns,
            "rows": table.rows,
        }))
        .into_response()),
        Format::Csv => {
            let bytes = table.to_csv().map_err(|error| {
                tracing::error!(%error, "CSV rendering failed");
                Problem::new(ProblemKind::Internal, "").into_response()
            })?;
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            let disposition = format!(
                "attachment; filename=\"{}_{}_{}.csv\"",
                report,
                query.from.format("%Y%m%d"),
                query.to.format("%Y%m%d")
            );
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            Ok(response)
        }
    }
}
