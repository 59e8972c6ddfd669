//! OpenAPI 3.1 generated from the handlers and DTOs (utoipa), and Swagger UI
//! at `/docs` from assets compiled into the binary (`utoipa-swagger-ui`'s
//! `vendored` feature: the build downloads nothing).

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::{appointments, availability, error, ops, providers};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Cita", description = "Appointment booking: providers, availability, appointments. Errors are application/problem+json (RFC 9457) with a stable `code`."),
    paths(
        providers::put_provider,
        providers::get_provider,
        availability::get_availability,
        appointments::book,
        appointments::get_one,
        appointments::list,
        appointments::reschedule,
        appointments::cancel,
        ops::health,
        ops::ready,
        ops::metrics,
    ),
    components(schemas(error::Problem, error::ProblemCode, error::FieldProblem)),
    tags(
        (name = "providers", description = "Provider schedules"),
        (name = "availability", description = "Free slots"),
        (name = "appointments", description = "Booking, rescheduling, cancelling"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// `/openapi.json` and `/docs`.
pub fn router() -> Router {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
