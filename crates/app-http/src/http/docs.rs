//! OpenAPI 3.1 generated from the handlers and DTOs (utoipa), and Swagger UI
//! at `/docs` from assets compiled into the binary (`utoipa-swagger-ui`'s
//! `vendored` feature: the build downloads nothing).
//!
//! Every example works as-is in Swagger's "Try it out", in order: create
//! the example provider, read its availability, book, list, reschedule,
//! cancel. A booking's example must be a slot in the coming days, so
//! [`document`] writes those examples when the server starts.

use axum::Router;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;
use utoipa_swagger_ui::SwaggerUi;

use super::{appointments, availability, error, ops, providers};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Cita", description = "Appointment booking: providers, availability, appointments. Errors are application/problem+json (RFC 9457) with a stable `code`."),
    servers((url = "/", description = "This server")),
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
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", document(Timestamp::now())))
}

/// Where the examples' dates point, computed from `now`: the example
/// provider (America/Lima, Mondays 09:00–13:00 and 14:00–18:00, 60 minutes'
/// notice) has its first slot of the first Monday at least two days away.
struct ExampleDates {
    monday: Date,
    book: Timestamp,
    reschedule: Timestamp,
}

impl ExampleDates {
    fn after(now: Timestamp) -> Option<Self> {
        let lima = TimeZone::get("America/Lima").ok()?;
        let mut monday = now
            .to_zoned(lima.clone())
            .date()
            .checked_add(2.days())
            .ok()?;
        while monday.weekday() != Weekday::Monday {
            monday = monday.tomorrow().ok()?;
        }
        let at = |hour| {
            monday
                .at(hour, 0, 0, 0)
                .to_zoned(lima.clone())
                .ok()
                .map(|z| z.timestamp())
        };
        Some(Self {
            monday,
            book: at(9)?,
            reschedule: at(10)?,
        })
    }
}

/// The OpenAPI document, with the examples that name dates set from `now`
/// and the cancel body declared optional in so many words.
pub fn document(now: Timestamp) -> Document {
    let doc = ApiDoc::openapi();
    let (Some(dates), Ok(mut value)) = (ExampleDates::after(now), serde_json::to_value(&doc))
    else {
        return doc;
    };
    let book = dates.book.to_string();
    let reschedule = dates.reschedule.to_string();
    let week_end = dates
        .monday
        .checked_add(6.days())
        .unwrap_or(dates.monday)
        .to_string();
    let schemas = "/components/schemas";
    let availability = "/paths/~1v1~1providers~1{providerId}~1availability/get/parameters";
    let patches = [
        (format!("{schemas}/BookBody/example/start"), json!(book)),
        (
            format!("{schemas}/BookBody/properties/start/example"),
            json!(book),
        ),
        (
            format!("{schemas}/RescheduleBody/example/start"),
            json!(reschedule),
        ),
        (
            format!("{schemas}/RescheduleBody/properties/start/example"),
            json!(reschedule),
        ),
        (
            format!("{availability}/1/example"),
            json!(dates.monday.to_string()),
        ),
        (format!("{availability}/2/example"), json!(week_end)),
        (
            "/paths/~1v1~1appointments~1{id}/delete/requestBody/required".to_owned(),
            json!(false),
        ),
    ];
    for (pointer, new) in patches {
        if !set(&mut value, &pointer, new) {
            tracing::warn!(%pointer, "the OpenAPI document has no such place; its example is left as written");
        }
    }
    serde_json::from_value(value).unwrap_or(doc)
}

/// Sets what `pointer` names (its parent must exist); whether it could.
fn set(doc: &mut Value, pointer: &str, new: Value) -> bool {
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return false;
    };
    let key = key.replace("~1", "/").replace("~0", "~");
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(key, new);
            true
        }
        Some(Value::Array(items)) => match key.parse::<usize>().ok().and_then(|i| items.get_mut(i))
        {
            Some(item) => {
                *item = new;
                true
            }
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_point_at_the_first_monday_two_days_away() {
        // Tuesday evening in Lima: two days on is Thursday, so the Monday after.
        let now: Timestamp = "2026-12-02T04:00:00Z".parse().unwrap();
        let doc = serde_json::to_value(document(now)).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["BookBody"]["example"]["start"],
            "2026-12-07T14:00:00Z"
        );
        assert_eq!(
            schemas["BookBody"]["properties"]["start"]["example"],
            "2026-12-07T14:00:00Z"
        );
        assert_eq!(
            schemas["RescheduleBody"]["example"]["start"],
            "2026-12-07T15:00:00Z"
        );
        let params = &doc["paths"]["/v1/providers/{providerId}/availability"]["get"]["parameters"];
        assert_eq!(params[1]["name"], "from");
        assert_eq!(params[1]["example"], "2026-12-07");
        assert_eq!(params[2]["name"], "to");
        assert_eq!(params[2]["example"], "2026-12-13");
        assert_eq!(
            doc["paths"]["/v1/appointments/{id}"]["delete"]["requestBody"]["required"],
            false
        );
        // Late on a Saturday in Lima it is still Saturday there: Monday is
        // two days away, the closest allowed.
        let saturday: Timestamp = "2026-12-06T04:00:00Z".parse().unwrap();
        let doc = serde_json::to_value(document(saturday)).unwrap();
        assert_eq!(
            doc["components"]["schemas"]["BookBody"]["example"]["start"],
            "2026-12-07T14:00:00Z"
        );
    }
}
