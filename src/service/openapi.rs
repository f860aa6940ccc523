//! The OpenAPI description served at `/openapi.json` (no Swagger UI: nothing to download or
//! serve beyond the document): the CDS Hooks, native and operations routes, and the staff routes
//! (reports, pharmacist queue, audit export, pathway reload) with their bearer-token scheme.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};

use crate::service::routes;
use crate::service::staff;
use crate::web::routes as web;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "orderguard",
        description = "Clinical decision support for vertebral compression fracture order sets: \
                       CDS Hooks 2.0 services, a native validation endpoint, and operations endpoints. \
                       Errors are application/problem+json (RFC 9457) with `errors: [{path, message}]`; \
                       on CDS Hooks routes the problem also carries an `operationOutcome`. \
                       Staff routes take a bearer token: the identity provider's JWT with a roles \
                       claim, or an API key."
    ),
    paths(
        routes::discovery,
        routes::cds_service,
        routes::feedback,
        routes::validate,
        routes::healthz,
        routes::readyz,
        routes::metrics_text,
        routes::openapi,
        staff::reports::catalog,
        staff::reports::report,
        staff::pathway::reload,
        web::list_alerts,
        web::act,
        web::pharmacy_html,
        web::reports_html,
        web::audit_events,
    ),
    components(schemas(crate::service::problem::FieldError)),
    modifiers(&StaffBearer)
)]
struct ApiDoc;

/// The `bearer` security scheme the staff routes name, and the two refusals every one of them
/// can answer (an operation that names a security requirement is a staff route).
struct StaffBearer;

impl Modify for StaffBearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT (roles claim) or API key")
                    .build(),
            ),
        );
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                if operation.security.is_none() {
                    continue;
                }
                for (status, description) in [
                    ("401", "No valid staff token"),
                    ("403", "The token lacks the role"),
                ] {
                    let refusal = ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/problem+json",
                            Content::new(None::<RefOr<Schema>>),
                        )
                        .build();
                    operation
                        .responses
                        .responses
                        .insert(status.into(), refusal.into());
                }
            }
        }
    }
}

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
