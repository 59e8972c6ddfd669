//! MySQL / MariaDB as a [`Dialect`] of the shared relational stores:
//! pooled connections, transactions whose locking reads say `FOR UPDATE`,
//! and the statements in MySQL's words (`?` markers, with the parameter
//! order where it is not the given one; no upsert that says whether it
//! wrote).

use anyhow::Context as _;
use sqlx::MySql;
use sqlx::pool::PoolConnection;

use super::appointments;
use super::{MySqlDatabase, error_number};
use crate::sql::dialect::Dialect;
use crate::sql::driver::Sql;
use crate::sql::{
    AppointmentSql, CountrySql, IdempotencySql, OutboxSql, ProviderSql, provider_columns,
    snapshot_columns,
};

impl Dialect for MySqlDatabase {
    type Db = MySql;
    type Reader<'a> = PoolConnection<MySql>;
    type Writer<'a> = PoolConnection<MySql>;
    type Tx<'a> = sqlx::Transaction<'static, MySql>;

    const NAME: &'static str = "mysql";

    const PROVIDERS: ProviderSql = ProviderSql {
        select: Sql::new(concat!(
            "SELECT ",
            provider_columns!(),
            " FROM providers WHERE id = ?"
        )),
        // The only unique key is the id: a duplicate key means it exists.
        create: Sql::new(concat!(
            "INSERT INTO providers (",
            provider_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?)"
        )),
        replace: Sql::ordered(
            "UPDATE providers SET name = ?, country = ?, schedule = ?, \
             version = ?, created_at = ?, updated_at = ? WHERE id = ? AND version = ?",
            &[2, 3, 4, 5, 6, 7, 1, 8],
        ),
    };

    const IDEMPOTENCY: IdempotencySql = IdempotencySql {
        claim_new: Sql::new(
            "INSERT INTO idempotency_keys \
             (idempotency_key, fingerprint, outcome, created_at, appointment_id) \
             VALUES (?, ?, NULL, ?, ?)",
        ),
        lock: Sql::new(
            "SELECT idempotency_key, fingerprint, outcome, created_at, appointment_id \
             FROM idempotency_keys WHERE idempotency_key = ? FOR UPDATE",
        ),
        reclaim: Sql::ordered(
            "UPDATE idempotency_keys SET fingerprint = ?, outcome = NULL, created_at = ?, \
             appointment_id = ? WHERE idempotency_key = ?",
            &[2, 3, 4, 1],
        ),
        // Rows matched (CLIENT_FOUND_ROWS): storing the same answer twice
        // still finds the key.
        complete: Sql::ordered(
            "UPDATE idempotency_keys SET outcome = ? WHERE idempotency_key = ?",
            &[2, 1],
        ),
        release: Sql::new(
            "DELETE FROM idempotency_keys WHERE idempotency_key = ? AND outcome IS NULL",
        ),
    };

    const COUNTRY: CountrySql = CountrySql {
        upsert_if_newer: None,
        lock_version: Sql::new("SELECT version FROM country_appointments WHERE id = ? FOR UPDATE"),
        insert: Sql::new(concat!(
            "INSERT INTO country_appointments (",
            snapshot_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )),
        replace: Sql::ordered(
            "UPDATE country_appointments SET provider_id = ?, patient_id = ?, \
             country = ?, start_at = ?, end_at = ?, status = ?, version = ?, notes = ?, \
             cancel_reason = ?, created_at = ?, updated_at = ? WHERE id = ?",
            &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1],
        ),
        get: Sql::new(concat!(
            "SELECT ",
            snapshot_columns!(),
            " FROM country_appointments WHERE id = ?"
        )),
    };

    const APPOINTMENTS: AppointmentSql = AppointmentSql {
        get: Sql::new(appointments::GET),
        list_by_provider: Sql::ordered(
            appointments::LIST_BY_PROVIDER,
            &[1, 2, 2, 3, 3, 4, 5, 6, 6, 7],
        ),
        list_by_patient: Sql::ordered(appointments::LIST_BY_PATIENT, &[2, 3, 3, 4, 5, 6, 6, 7]),
        active_in_range: Sql::ordered(appointments::ACTIVE_IN_RANGE, &[1, 2, 4, 3]),
    };

    const OUTBOX: OutboxSql = OutboxSql {
        // Oldest first by `seq`. Concurrent transactions may commit their
        // outbox rows out of `seq` order, so a read can miss a row that
        // commits later with a lower `seq`; it is simply read next time
        // (published rows are deleted, not skipped past). One appointment's
        // rows are written by transactions that hold its row lock in turn,
        // so they are always in version order.
        unpublished: Sql::new("SELECT envelope, created_at FROM outbox ORDER BY seq LIMIT ?"),
        // A JSON array of event ids: one static statement for any number.
        // The table function's column is declared `ascii_bin` like
        // `event_id`, so the join looks every id up in the unique index.
        mark_published: Sql::new(
            "DELETE outbox FROM JSON_TABLE(?, '$[*]' COLUMNS \
             (event_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin PATH '$')) AS published \
             JOIN outbox ON outbox.event_id = published.event_id",
        ),
        backlog: Sql::new(
            "SELECT COUNT(*), (SELECT created_at FROM outbox ORDER BY seq LIMIT 1) FROM outbox",
        ),
    };

    async fn read(&self) -> anyhow::Result<PoolConnection<MySql>> {
        self.pool()
            .acquire()
            .await
            .context("acquiring a MySQL connection")
    }

    async fn write(&self) -> anyhow::Result<PoolConnection<MySql>> {
        Dialect::read(self).await
    }

    async fn begin(&self) -> anyhow::Result<sqlx::Transaction<'static, MySql>> {
        self.pool().begin().await.context("starting a transaction")
    }

    fn transient(e: &sqlx::Error) -> Option<&'static str> {
        match error_number(e) {
            Some(1213) => Some("deadlock"),
            Some(1205) => Some("lock_wait_timeout"),
            Some(1020) => Some("record_changed"),
            _ => None,
        }
    }
}
