//! The OpenAPI description served at `/openapi.json` (no Swagger UI: nothing to download or
//! serve beyond the document).

use utoipa::OpenApi;

use crate::service::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "orderguard",
        description = "Clinical decision support for vertebral compression fracture order sets: \
                       CDS Hooks 2.0 services, a native validation endpoint, and operations endpoints. \
                       Errors are application/problem+json (RFC 9457) with `errors: [{path, message}]`; \
                       on CDS Hooks routes the problem also carries an `operationOutcome`."
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
    ),
    components(schemas(crate::service::problem::FieldError))
)]
struct ApiDoc;

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
