//! SQLite as a [`Dialect`] of the shared relational stores: connections
//! through the write gate and the read connections, `BEGIN IMMEDIATE`
//! transactions, and the statements in SQLite's words (numbered `?n`
//! markers, `ON CONFLICT` upserts).

use sqlx::{Sqlite, SqliteConnection};

use super::appointments;
use super::{ReadConnection, SqliteDatabase, WriteTransaction, WriteTurn};
use crate::sql::dialect::{Dialect, Handle, Transaction};
use crate::sql::driver::Sql;
use crate::sql::{
    AppointmentSql, CountrySql, IdempotencySql, OutboxSql, ProviderSql, provider_columns,
    snapshot_columns,
};

impl Handle<Sqlite> for ReadConnection<'_> {
    fn conn(&mut self) -> &mut SqliteConnection {
        ReadConnection::conn(self)
    }
}

impl Handle<Sqlite> for WriteTurn {
    fn conn(&mut self) -> &mut SqliteConnection {
        WriteTurn::conn(self)
    }
}

impl Handle<Sqlite> for WriteTransaction {
    fn conn(&mut self) -> &mut SqliteConnection {
        WriteTransaction::conn(self)
    }
}

impl Transaction<Sqlite> for WriteTransaction {
    async fn commit(self) -> anyhow::Result<()> {
        WriteTransaction::commit(self).await
    }

    async fn rollback(self) -> anyhow::Result<()> {
        WriteTransaction::rollback(self).await
    }
}

/// Inserts a country snapshot, or replaces an older version of it.
macro_rules! upsert_if_newer {
    () => {
        concat!(
            "INSERT INTO country_appointments (",
            snapshot_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
            ON CONFLICT (id) DO UPDATE SET provider_id = excluded.provider_id, \
              patient_id = excluded.patient_id, country = excluded.country, \
              start_at = excluded.start_at, end_at = excluded.end_at, status = excluded.status, \
              version = excluded.version, notes = excluded.notes, \
              cancel_reason = excluded.cancel_reason, created_at = excluded.created_at, \
              updated_at = excluded.updated_at \
            WHERE excluded.version > country_appointments.version"
        )
    };
}

impl Dialect for SqliteDatabase {
    type Db = Sqlite;
    type Reader<'a> = ReadConnection<'a>;
    type Writer<'a> = WriteTurn;
    type Tx<'a> = WriteTransaction;

    const NAME: &'static str = "sqlite";

    const PROVIDERS: ProviderSql = ProviderSql {
        select: Sql::new(concat!(
            "SELECT ",
            provider_columns!(),
            " FROM providers WHERE id = ?1"
        )),
        create: Sql::new(concat!(
            "INSERT INTO providers (",
            provider_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING"
        )),
        replace: Sql::new(
            "UPDATE providers SET name = ?2, country = ?3, schedule = ?4, \
             version = ?5, created_at = ?6, updated_at = ?7 \
             WHERE id = ?1 AND version = ?8",
        ),
    };

    const IDEMPOTENCY: IdempotencySql = IdempotencySql {
        claim_new: Sql::new(
            "INSERT INTO idempotency_keys (key, fingerprint, outcome, created_at, appointment_id) \
             VALUES (?1, ?2, NULL, ?3, ?4) ON CONFLICT (key) DO NOTHING",
        ),
        // `BEGIN IMMEDIATE` holds the file: a plain read is a locking one.
        lock: Sql::new(
            "SELECT key, fingerprint, outcome, created_at, appointment_id \
             FROM idempotency_keys WHERE key = ?1",
        ),
        reclaim: Sql::new(
            "UPDATE idempotency_keys SET fingerprint = ?2, outcome = NULL, created_at = ?3, \
             appointment_id = ?4 WHERE key = ?1",
        ),
        complete: Sql::new("UPDATE idempotency_keys SET outcome = ?2 WHERE key = ?1"),
        release: Sql::new("DELETE FROM idempotency_keys WHERE key = ?1 AND outcome IS NULL"),
    };

    const COUNTRY: CountrySql = CountrySql {
        upsert_if_newer: Some(Sql::new(concat!(upsert_if_newer!(), " RETURNING 1"))),
        lock_version: Sql::new("SELECT version FROM country_appointments WHERE id = ?1"),
        insert: Sql::new(concat!(
            "INSERT INTO country_appointments (",
            snapshot_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        )),
        replace: Sql::new(
            "UPDATE country_appointments SET provider_id = ?2, patient_id = ?3, country = ?4, \
             start_at = ?5, end_at = ?6, status = ?7, version = ?8, notes = ?9, \
             cancel_reason = ?10, created_at = ?11, updated_at = ?12 WHERE id = ?1",
        ),
        get: Sql::new(concat!(
            "SELECT ",
            snapshot_columns!(),
            " FROM country_appointments WHERE id = ?1"
        )),
    };

    const APPOINTMENTS: AppointmentSql = AppointmentSql {
        get: Sql::new(appointments::GET),
        list_by_provider: Sql::new(appointments::LIST_BY_PROVIDER),
        list_by_patient: Sql::new(appointments::LIST_BY_PATIENT),
        active_in_range: Sql::new(appointments::ACTIVE_IN_RANGE),
    };

    const OUTBOX: OutboxSql = OutboxSql {
        unpublished: Sql::new("SELECT envelope, created_at FROM outbox ORDER BY seq LIMIT ?1"),
        // A JSON array of event ids: one static statement for any number.
        mark_published: Sql::new(
            "DELETE FROM outbox WHERE event_id IN (SELECT value FROM json_each(?1))",
        ),
        backlog: Sql::new(
            "SELECT COUNT(*), (SELECT created_at FROM outbox ORDER BY seq LIMIT 1) FROM outbox",
        ),
    };

    async fn read(&self) -> anyhow::Result<ReadConnection<'_>> {
        SqliteDatabase::read(self).await
    }

    async fn write(&self) -> anyhow::Result<WriteTurn> {
        self.write_turn().await
    }

    async fn begin(&self) -> anyhow::Result<WriteTransaction> {
        self.begin_write().await
    }

    /// Writers of this process queue at the write gate; one outside it is
    /// waited for by the busy timeout. Nothing is retried.
    fn transient(_: &sqlx::Error) -> Option<&'static str> {
        None
    }
}
