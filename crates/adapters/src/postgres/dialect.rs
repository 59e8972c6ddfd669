//! PostgreSQL as a [`Dialect`] of the shared relational stores: pooled
//! connections, transactions whose locking reads say `FOR UPDATE`, and the
//! statements in PostgreSQL's words (`$n` markers, `jsonb` casts).

use anyhow::Context as _;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;

use super::PostgresDatabase;
use super::appointments;
use crate::sql::dialect::Dialect;
use crate::sql::driver::Sql;
use crate::sql::{
    AppointmentSql, CountrySql, IdempotencySql, OutboxSql, ProviderSql, provider_columns,
    snapshot_columns,
};

impl Dialect for PostgresDatabase {
    type Db = Postgres;
    type Reader<'a> = PoolConnection<Postgres>;
    type Writer<'a> = PoolConnection<Postgres>;
    type Tx<'a> = sqlx::Transaction<'static, Postgres>;

    const NAME: &'static str = "postgres";

    const PROVIDERS: ProviderSql = ProviderSql {
        select: Sql::new(
            "SELECT id, name, country, schedule::text, version, created_at, updated_at \
             FROM providers WHERE id = $1",
        ),
        create: Sql::new(concat!(
            "INSERT INTO providers (",
            provider_columns!(),
            ") VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7) ON CONFLICT (id) DO NOTHING"
        )),
        replace: Sql::new(
            "UPDATE providers SET name = $2, country = $3, schedule = $4::jsonb, \
             version = $5, created_at = $6, updated_at = $7 WHERE id = $1 AND version = $8",
        ),
    };

    const IDEMPOTENCY: IdempotencySql = IdempotencySql {
        claim_new: Sql::new(
            "INSERT INTO idempotency_keys (key, fingerprint, outcome, created_at, appointment_id) \
             VALUES ($1, $2, NULL, $3, $4) ON CONFLICT (key) DO NOTHING",
        ),
        lock: Sql::new(
            "SELECT key, fingerprint, outcome::text, created_at, appointment_id \
             FROM idempotency_keys WHERE key = $1 FOR UPDATE",
        ),
        reclaim: Sql::new(
            "UPDATE idempotency_keys SET fingerprint = $2, outcome = NULL, created_at = $3, \
             appointment_id = $4 WHERE key = $1",
        ),
        complete: Sql::new("UPDATE idempotency_keys SET outcome = $2::jsonb WHERE key = $1"),
        release: Sql::new("DELETE FROM idempotency_keys WHERE key = $1 AND outcome IS NULL"),
    };

    const COUNTRY: CountrySql = CountrySql {
        upsert_if_newer: Some(Sql::new(concat!(
            "INSERT INTO country_appointments AS c (",
            snapshot_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
            ON CONFLICT (id) DO UPDATE SET provider_id = excluded.provider_id, \
              patient_id = excluded.patient_id, country = excluded.country, \
              start_at = excluded.start_at, end_at = excluded.end_at, status = excluded.status, \
              version = excluded.version, notes = excluded.notes, \
              cancel_reason = excluded.cancel_reason, created_at = excluded.created_at, \
              updated_at = excluded.updated_at \
            WHERE excluded.version > c.version \
            RETURNING 1"
        ))),
        lock_version: Sql::new("SELECT version FROM country_appointments WHERE id = $1 FOR UPDATE"),
        insert: Sql::new(concat!(
            "INSERT INTO country_appointments (",
            snapshot_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        )),
        replace: Sql::new(
            "UPDATE country_appointments SET provider_id = $2, patient_id = $3, country = $4, \
             start_at = $5, end_at = $6, status = $7, version = $8, notes = $9, \
             cancel_reason = $10, created_at = $11, updated_at = $12 WHERE id = $1",
        ),
        get: Sql::new(concat!(
            "SELECT ",
            snapshot_columns!(),
            " FROM country_appointments WHERE id = $1"
        )),
    };

    const APPOINTMENTS: AppointmentSql = AppointmentSql {
        get: Sql::new(appointments::GET),
        list_by_provider: Sql::new(appointments::LIST_BY_PROVIDER),
        list_by_patient: Sql::new(appointments::LIST_BY_PATIENT),
        active_in_range: Sql::new(appointments::ACTIVE_IN_RANGE),
    };

    const OUTBOX: OutboxSql = OutboxSql {
        unpublished: Sql::new(
            "SELECT envelope::text, created_at FROM outbox ORDER BY seq LIMIT $1",
        ),
        mark_published: Sql::new(
            "DELETE FROM outbox WHERE event_id IN \
             (SELECT value::uuid FROM jsonb_array_elements_text($1::jsonb))",
        ),
        backlog: Sql::new(
            "SELECT count(*), (SELECT created_at FROM outbox ORDER BY seq LIMIT 1) FROM outbox",
        ),
    };

    async fn read(&self) -> anyhow::Result<PoolConnection<Postgres>> {
        self.pool()
            .acquire()
            .await
            .context("acquiring a PostgreSQL connection")
    }

    async fn write(&self) -> anyhow::Result<PoolConnection<Postgres>> {
        Dialect::read(self).await
    }

    async fn begin(&self) -> anyhow::Result<sqlx::Transaction<'static, Postgres>> {
        self.pool().begin().await.context("starting a transaction")
    }

    fn transient(e: &sqlx::Error) -> Option<&'static str> {
        match e {
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some("40P01") => Some("deadlock"),
                Some("40001") => Some("serialization_failure"),
                _ => None,
            },
            _ => None,
        }
    }
}
