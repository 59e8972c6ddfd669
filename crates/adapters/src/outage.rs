//! Which failures are outages: a dependency that cannot be reached or
//! stopped answering, as opposed to a bug or a refusal. The binaries answer
//! an outage with `503 unavailable` (retry later; the write was atomic, so
//! nothing was half-written) and anything else unexpected with a 500.
//!
//! [`is_outage`] is the one classification: it walks an error's chain and
//! recognises
//!
//! - the SQL drivers' connection-class failures (features `sqlite`,
//!   `postgres`, `mysql`): a pool that timed out or closed, I/O and TLS
//!   failures, a crashed driver worker, and the servers' own "connection"
//!   errors (SQLSTATE class `08`; PostgreSQL `57P01`–`57P03`, shut down or
//!   starting; MySQL/MariaDB 1040 too many connections, 1053 shutting down,
//!   and the client codes 2002, 2003, 2006, 2013);
//! - the AWS SDK's dispatch failures (features `dynamodb`, `aws`): a
//!   [`ConnectorError`](aws_sdk_dynamodb::error::ConnectorError) that is an
//!   I/O failure or a connect/read timeout. The SDK's own operation and
//!   attempt timeouts (`SdkError::TimeoutError`) carry a private source type
//!   and a generic `SdkError<E, R>`, so they cannot be recognised here: an
//!   adapter that wants them answered as outages wraps them in
//!   [`Unavailable`];
//! - [`Unavailable`], the marker any adapter may wrap an error in.

/// Marks an error as an outage of a dependency: [`is_outage`] recognises
/// it anywhere in a chain. For adapters whose failures the driver-specific
/// rules here do not cover (e.g. a timeout of their own).
#[derive(Debug, thiserror::Error)]
#[error("{what} is unavailable")]
pub struct Unavailable {
    /// The dependency, for the log (`the primary store`, `DynamoDB`, …).
    pub what: &'static str,
    /// What failed.
    #[source]
    pub source: anyhow::Error,
}

impl Unavailable {
    /// Wraps `source` as an outage of `what`.
    pub fn new(what: &'static str, source: impl Into<anyhow::Error>) -> Self {
        Self {
            what,
            source: source.into(),
        }
    }
}

/// Whether `error` (or anything in its chain) says a dependency is down or
/// unreachable, rather than that something is wrong with the request or
/// the code.
pub fn is_outage(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.is::<Unavailable>() || sql::is_outage(cause) || aws::is_outage(cause))
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql {
    use std::error::Error as StdError;

    /// MySQL/MariaDB error numbers that mean the server cannot be used:
    /// ER_CON_COUNT_ERROR, ER_SERVER_SHUTDOWN, and the client's
    /// CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR, CR_SERVER_GONE_ERROR,
    /// CR_SERVER_LOST.
    #[cfg(feature = "mysql")]
    const MYSQL_OUTAGES: [u16; 6] = [1040, 1053, 2002, 2003, 2006, 2013];

    pub(super) fn is_outage(cause: &(dyn StdError + 'static)) -> bool {
        let Some(e) = cause.downcast_ref::<sqlx::Error>() else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => server_outage(db.as_ref()),
            _ => false,
        }
    }

    /// A server's error that is about the connection or the server's
    /// state, not about the statement. SQLite's codes are numbers of its
    /// own (no SQLSTATE), so only PostgreSQL's and MySQL's are read.
    fn server_outage(db: &dyn sqlx::error::DatabaseError) -> bool {
        #[cfg(feature = "postgres")]
        if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            return sqlstate_outage(pg.code());
        }
        #[cfg(feature = "mysql")]
        if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            return MYSQL_OUTAGES.contains(&my.number()) || my.code().is_some_and(sqlstate_outage);
        }
        let _ = db;
        false
    }

    /// Class 08 is "connection exception"; 57P01–57P03 are PostgreSQL's
    /// admin shutdown, crash shutdown and "cannot connect now".
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    fn sqlstate_outage(code: &str) -> bool {
        code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
    }

    #[cfg(all(test, any(feature = "postgres", feature = "mysql")))]
    mod tests {
        use super::*;

        #[test]
        fn connection_classes_are_outages_and_others_are_not() {
            for code in ["08000", "08006", "08S01", "57P01", "57P02", "57P03"] {
                assert!(sqlstate_outage(code), "{code}");
            }
            for code in ["23P01", "40P01", "42P01", "57014", "23000"] {
                assert!(!sqlstate_outage(code), "{code}");
            }
        }
    }
}

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
mod sql {
    pub(super) fn is_outage(_: &(dyn std::error::Error + 'static)) -> bool {
        false
    }
}

#[cfg(any(feature = "dynamodb", feature = "aws"))]
mod aws {
    // One type, re-exported by every SDK crate from aws-smithy-runtime-api.
    #[cfg(feature = "dynamodb")]
    use aws_sdk_dynamodb::error::ConnectorError;
    #[cfg(all(feature = "aws", not(feature = "dynamodb")))]
    use aws_sdk_sqs::error::ConnectorError;

    /// A request that could not be dispatched (connection refused or reset,
    /// DNS, connect or read timeout); not a user or "other" error, which may
    /// be a bad request or configuration.
    pub(super) fn is_outage(cause: &(dyn std::error::Error + 'static)) -> bool {
        cause
            .downcast_ref::<ConnectorError>()
            .is_some_and(|e| e.is_io() || e.is_timeout())
    }
}

#[cfg(not(any(feature = "dynamodb", feature = "aws")))]
mod aws {
    pub(super) fn is_outage(_: &(dyn std::error::Error + 'static)) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn the_marker_is_found_anywhere_in_the_chain() {
        let marked = anyhow::Error::new(Unavailable::new(
            "the primary store",
            anyhow::anyhow!("connection refused"),
        ))
        .context("reading a provider");
        assert!(is_outage(&marked));
        assert!(!is_outage(&anyhow::anyhow!("a bug")));
        let plain: anyhow::Result<()> = Err(anyhow::anyhow!("bad row"));
        assert!(!is_outage(&plain.context("decoding").unwrap_err()));
    }

    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    #[test]
    fn sql_connection_failures_are_outages_and_statement_failures_are_not() {
        let wrapped = |e: sqlx::Error| anyhow::Error::new(e).context("inserting an appointment");
        assert!(is_outage(&wrapped(sqlx::Error::PoolTimedOut)));
        assert!(is_outage(&wrapped(sqlx::Error::PoolClosed)));
        assert!(is_outage(&wrapped(sqlx::Error::WorkerCrashed)));
        assert!(is_outage(&wrapped(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        )))));
        assert!(!is_outage(&wrapped(sqlx::Error::RowNotFound)));
        assert!(!is_outage(&wrapped(sqlx::Error::Protocol("odd".into()))));
        assert!(!is_outage(&wrapped(sqlx::Error::ColumnNotFound(
            "x".into()
        ))));
    }
}
