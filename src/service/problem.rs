//! Error bodies: RFC 9457 `application/problem+json`, with the fields at fault listed in
//! `errors` (JSON pointers into the request body).
//!
//! CDS Hooks 3.0 (trial use) asks for a FHIR OperationOutcome on every non-2xx. Rather than
//! answer two media types, CDS Hooks routes carry it as the `operationOutcome` member of the
//! problem: one body, readable by a plain HTTP client and by a FHIR-minded EHR. Each
//! OperationOutcome issue has `expression` = the JSON pointer of the field.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// One field the request got wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer (RFC 6901) into the request body, e.g. `/context/draftOrders/entry/0`.
    /// The empty pointer (the whole body) is left out of the rendered error, never sent as `""`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The kinds of problem the service answers, each with its stable `type` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    InvalidRequest,
    UnknownService,
    BodyTooLarge,
    TooDeep,
    PrefetchUnavailable,
    UnknownCard,
    AuditUnavailable,
    NotFound,
    /// No, or no valid, bearer token (staff routes; CDS Hooks client routes answer a bare 401).
    Unauthenticated,
    /// Authenticated, but without a role the route needs.
    Forbidden,
    /// The request conflicts with the current state (a dosing alert's status).
    Conflict,
    /// A report query ran past its time limit and was cancelled.
    TooSlow,
    Internal,
}

impl ProblemKind {
    pub fn type_uri(self) -> &'static str {
        match self {
            ProblemKind::InvalidRequest => "urn:orderguard:problem:invalid-request",
            ProblemKind::UnknownService => "urn:orderguard:problem:unknown-service",
            ProblemKind::BodyTooLarge => "urn:orderguard:problem:body-too-large",
            ProblemKind::TooDeep => "urn:orderguard:problem:nesting-too-deep",
            ProblemKind::PrefetchUnavailable => "urn:orderguard:problem:prefetch-unavailable",
            ProblemKind::UnknownCard => "urn:orderguard:problem:unknown-card",
            ProblemKind::AuditUnavailable => "urn:orderguard:problem:audit-unavailable",
            ProblemKind::NotFound => "urn:orderguard:problem:not-found",
            ProblemKind::Unauthenticated => "urn:orderguard:problem:unauthenticated",
            ProblemKind::Forbidden => "urn:orderguard:problem:forbidden",
            ProblemKind::Conflict => "urn:orderguard:problem:conflict",
            ProblemKind::TooSlow => "urn:orderguard:problem:too-slow",
            ProblemKind::Internal => "urn:orderguard:problem:internal",
        }
    }

    fn title(self) -> &'static str {
        match self {
            ProblemKind::InvalidRequest => "The request is not valid",
            ProblemKind::UnknownService => "No such CDS service",
            ProblemKind::BodyTooLarge => "The request body is too large",
            ProblemKind::TooDeep => "The request body is nested too deeply",
            ProblemKind::PrefetchUnavailable => "Data the pathway needs is unavailable",
            ProblemKind::UnknownCard => "No decision gave this card",
            ProblemKind::AuditUnavailable => "The decision could not be recorded",
            ProblemKind::NotFound => "Not found",
            ProblemKind::Unauthenticated => "A valid bearer token is required",
            ProblemKind::Forbidden => "The token's roles do not allow this",
            ProblemKind::Conflict => "The request conflicts with the current state",
            ProblemKind::TooSlow => "The report did not finish in its time limit",
            ProblemKind::Internal => "Internal error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ProblemKind::InvalidRequest | ProblemKind::TooDeep => StatusCode::BAD_REQUEST,
            ProblemKind::UnknownService | ProblemKind::UnknownCard | ProblemKind::NotFound => {
                StatusCode::NOT_FOUND
            }
            ProblemKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemKind::PrefetchUnavailable => StatusCode::PRECONDITION_FAILED,
            ProblemKind::AuditUnavailable | ProblemKind::TooSlow => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ProblemKind::Forbidden => StatusCode::FORBIDDEN,
            ProblemKind::Conflict => StatusCode::CONFLICT,
            ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OperationOutcome `issue.code` (FHIR IssueType) closest to this problem.
    fn issue_code(self) -> &'static str {
        match self {
            ProblemKind::InvalidRequest => "invalid",
            ProblemKind::TooDeep | ProblemKind::BodyTooLarge => "too-costly",
            ProblemKind::UnknownService | ProblemKind::UnknownCard | ProblemKind::NotFound => {
                "not-found"
            }
            ProblemKind::PrefetchUnavailable => "incomplete",
            ProblemKind::AuditUnavailable => "transient",
            ProblemKind::Unauthenticated => "login",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::Conflict => "conflict",
            ProblemKind::TooSlow => "timeout",
            ProblemKind::Internal => "exception",
        }
    }
}

/// A problem answer. Build with [`Problem::new`], add field errors, choose whether it carries an
/// OperationOutcome (CDS Hooks routes), then turn it into a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub with_operation_outcome: bool,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            detail: detail.into(),
            errors: Vec::new(),
            with_operation_outcome: false,
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn for_cds_hooks(mut self, yes: bool) -> Self {
        self.with_operation_outcome = yes;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The body. Optional members are omitted, never empty (the CDS Hooks rule, kept for every
    /// route so clients need one parser).
    pub fn body(&self) -> Value {
        let status = self.status().as_u16();
        let mut body = json!({
            "type": self.kind.type_uri(),
            "title": self.kind.title(),
            "status": status,
        });
        if !self.detail.is_empty() {
            body["detail"] = Value::String(self.detail.clone());
        }
        if !self.errors.is_empty() {
            body["errors"] = serde_json::to_value(&self.errors).expect("field errors serialize");
        }
        if self.with_operation_outcome {
            body["operationOutcome"] = self.operation_outcome();
        }
        body
    }

    fn operation_outcome(&self) -> Value {
        let severity = if self.status().is_server_error() {
            "fatal"
        } else {
            "error"
        };
        let code = self.kind.issue_code();
        let issues: Vec<Value> = if self.errors.is_empty() {
            // An OperationOutcome needs at least one issue: the problem itself.
            let text = if self.detail.is_empty() {
                self.kind.title()
            } else {
                self.detail.as_str()
            };
            vec![json!({"severity": severity, "code": code, "diagnostics": text})]
        } else {
            self.errors
                .iter()
                .map(|error| {
                    let mut issue = json!({
                        "severity": severity,
                        "code": code,
                        "diagnostics": error.message,
                    });
                    if !error.path.is_empty() {
                        issue["expression"] = json!([error.path]);
                    }
                    issue
                })
                .collect()
        };
        json!({"resourceType": "OperationOutcome", "issue": issues})
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).expect("problem body serializes");
        let mut response = (self.status(), body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// Escape one reference token of a JSON pointer (RFC 6901 section 3).
pub fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_outcome_lists_one_issue_per_field_with_the_path_as_expression() {
        let problem = Problem::new(ProblemKind::InvalidRequest, "2 fields are wrong")
            .with_errors(vec![
                FieldError::new("/hook", "missing"),
                FieldError::new("/context/patientId", "must be a string"),
            ])
            .for_cds_hooks(true);
        let body = problem.body();
        assert_eq!(body["status"], 400);
        assert_eq!(body["errors"][1]["path"], "/context/patientId");
        let issues = body["operationOutcome"]["issue"].as_array().unwrap();
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[1]["expression"][0], "/context/patientId");
        assert_eq!(issues[1]["code"], "invalid");
    }

    #[test]
    fn a_problem_without_fields_has_no_errors_member_and_one_issue() {
        let body = Problem::new(ProblemKind::UnknownService, "")
            .for_cds_hooks(true)
            .body();
        assert!(body.get("errors").is_none());
        assert!(body.get("detail").is_none());
        assert_eq!(
            body["operationOutcome"]["issue"].as_array().unwrap().len(),
            1
        );
    }

    #[test]
    fn native_routes_get_no_operation_outcome() {
        let body = Problem::new(ProblemKind::InvalidRequest, "x").body();
        assert!(body.get("operationOutcome").is_none());
    }

    #[test]
    fn pointer_tokens_escape_tilde_then_slash() {
        assert_eq!(pointer_token("a/b~c"), "a~1b~0c");
    }
}
