//! Path and query parameters.
//!
//! - [`PathId`]: a resource id from the path, decoded; a segment that is not
//!   UTF-8 once percent-decoded reaches the handler as text no id accepts,
//!   so it is answered like any malformed id (404 for reads, 422 for a
//!   provider's `PUT`) instead of axum's plain-text 400.
//! - [`Query`]: a query string typed into one struct per endpoint. Each
//!   parameter is a [`Param`], whose value is kept when it parses and its
//!   problem otherwise, and unknown parameters are collected by name, so
//!   one answer lists every problem of the request at once.

use std::collections::BTreeMap;

use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use cita_core::booking::FieldError;
use jiff::civil::Date;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};

use super::error::ApiError;
use super::json::between_backticks;
use super::time::parse_date;

/// The one path parameter of a route, percent-decoded.
#[derive(Debug)]
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Self(id)),
            // Not UTF-8 once decoded: what a lossy decoding would give, which
            // no id (ASCII letters, digits, `-`, `_`) accepts.
            Err(PathRejection::FailedToDeserializePathParams(e))
                if matches!(e.kind(), ErrorKind::InvalidUtf8InPathParam { .. }) =>
            {
                Ok(Self(char::REPLACEMENT_CHARACTER.to_string()))
            }
            Err(e) => Err(ApiError::internal(anyhow::anyhow!(
                "reading the path parameter: {}",
                e.body_text()
            ))),
        }
    }
}

/// How a query parameter's text becomes a value.
pub trait FromParam: Sized {
    /// The value, or the message for the parameter.
    ///
    /// # Errors
    /// What is wrong with `s`, for the client.
    fn from_param(s: &str) -> Result<Self, String>;
}

impl FromParam for String {
    fn from_param(s: &str) -> Result<Self, String> {
        Ok(s.to_owned())
    }
}

impl FromParam for Date {
    fn from_param(s: &str) -> Result<Self, String> {
        parse_date(s)
    }
}

/// One query parameter as given: its value when it parses, else the
/// message saying why not. Deserialising it never fails on a bad value.
#[derive(Debug)]
pub struct Param<T>(Result<T, String>);

impl<'de, T: FromParam> Deserialize<'de> for Param<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(Self(T::from_param(&text)))
    }
}

/// The problems found so far in a query, by parameter.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    /// Starts with the unknown parameters of a query.
    pub fn unknown(unknown: &Unknown) -> Self {
        Self(
            unknown
                .0
                .keys()
                .map(|name| FieldError::new(name.clone(), "unknown query parameter"))
                .collect(),
        )
    }

    /// The value of an optional parameter (`None` when absent or invalid;
    /// an invalid one is noted under `name`).
    pub fn optional<T>(&mut self, name: &str, param: Option<Param<T>>) -> Option<T> {
        match param?.0 {
            Ok(v) => Some(v),
            Err(message) => {
                self.0.push(FieldError::new(name, message));
                None
            }
        }
    }

    /// The value of a required parameter (`None` after noting that it is
    /// missing or invalid).
    pub fn required<T>(&mut self, name: &str, param: Option<Param<T>>) -> Option<T> {
        if param.is_none() {
            self.note(name, "is required");
        }
        self.optional(name, param)
    }

    /// Notes a problem of `name`.
    pub fn note(&mut self, name: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(name, message));
    }

    /// `value` when no problem was noted, else every problem.
    ///
    /// # Errors
    /// The problems noted.
    pub fn or_value<T>(self, value: Option<T>) -> Result<T, Vec<FieldError>> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(self.0),
        }
    }
}

/// The parameters of a query its endpoint does not know, by name
/// (`#[serde(flatten)]` into it).
#[derive(Debug, Default, Deserialize)]
pub struct Unknown(BTreeMap<String, IgnoredAny>);

/// A query string typed into `T`. Only a parameter given twice makes the
/// typing itself fail (422 on that parameter); every other problem is left
/// to `T`'s [`Param`]s and [`Unknown`].
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query).map(Self).map_err(|e| {
            let message = e.to_string();
            match between_backticks(&message, "duplicate field ") {
                Some(name) => ApiError::field(name, "is given more than once"),
                None => ApiError::field("query", message),
            }
        })
    }
}
