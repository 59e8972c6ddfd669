//! Real servers for service-backed tests: their URLs from the environment
//! (`./scripts/test` makes sure the servers run and exports them), and
//! scratch databases a test creates for itself and drops when done.
//!
//! Without its variable a test says it was skipped and passes, except in
//! CI (`CI=true`), where a missing server is a failure.

/// The URL in `var`, or `None` (after saying so) when the test should skip.
///
/// # Panics
/// In CI (`CI=true`) when the variable is missing or empty.
pub fn server_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{var} is required in CI"
            );
            eprintln!("skipped {test}: {var} is not set");
            None
        }
    }
}

/// A fresh database name, `{prefix}_<16 hex digits>`.
pub fn scratch_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

/// Runs `work` on a runtime of its own in a thread of its own: scratch
/// databases are dropped in `Drop`, possibly while a test's runtime unwinds.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn on_own_runtime(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(work);
        }
    })
    .join();
}

/// The URL of database `name` on the server of `server_url` (its last
/// path segment replaced).
///
/// # Panics
/// When the URL has no path.
fn with_database(server_url: &str, name: &str) -> String {
    let (base, _) = server_url
        .rsplit_once('/')
        .expect("a server URL names a database (…/postgres, …/mysql)");
    format!("{base}/{name}")
}

#[cfg(feature = "postgres")]
pub use pg::PgScratch;

#[cfg(feature = "postgres")]
mod pg {
    use std::str::FromStr as _;

    use cita_adapters::postgres::sqlx::postgres::PgConnectOptions;
    use cita_adapters::postgres::sqlx::{self, AssertSqlSafe, PgPool};

    /// A PostgreSQL database of its own, dropped (with its connections)
    /// when this is dropped.
    pub struct PgScratch {
        admin: PgConnectOptions,
        name: String,
        url: String,
    }

    impl PgScratch {
        /// Creates `cita_<random>` on the server of `server_url` (whose
        /// role may create databases).
        ///
        /// # Panics
        /// The server cannot be reached or refuses.
        pub async fn new(server_url: &str) -> Self {
            let admin = PgConnectOptions::from_str(server_url).expect("a PostgreSQL URL");
            let name = super::scratch_name("cita");
            let pool = PgPool::connect_with(admin.clone())
                .await
                .expect("PostgreSQL accepts connections");
            sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&pool)
                .await
                .expect("the test role may create databases");
            pool.close().await;
            Self {
                url: super::with_database(server_url, &name),
                admin,
                name,
            }
        }

        /// Its URL.
        pub fn url(&self) -> &str {
            &self.url
        }

        /// A pool on it, for checks in SQL.
        ///
        /// # Panics
        /// It cannot be reached.
        pub async fn pool(&self) -> PgPool {
            PgPool::connect_with(self.admin.clone().database(&self.name))
                .await
                .expect("the scratch database accepts connections")
        }
    }

    impl Drop for PgScratch {
        fn drop(&mut self) {
            let admin = self.admin.clone();
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            super::on_own_runtime(async move {
                if let Ok(pool) = PgPool::connect_with(admin).await {
                    let _ = sqlx::query(AssertSqlSafe(sql)).execute(&pool).await;
                }
            });
        }
    }
}

#[cfg(feature = "mysql")]
pub use my::MySqlScratch;

#[cfg(feature = "mysql")]
mod my {
    use std::str::FromStr as _;

    use cita_adapters::mysql::sqlx::mysql::MySqlConnectOptions;
    use cita_adapters::mysql::sqlx::{self, AssertSqlSafe, MySqlPool};

    /// MySQL/MariaDB databases of their own (as many as asked for), dropped
    /// when this is dropped.
    pub struct MySqlScratch {
        admin: MySqlConnectOptions,
        names: Vec<String>,
        server_url: String,
    }

    impl MySqlScratch {
        /// Creates `count` databases `cita_<random>` on the server of
        /// `server_url`.
        ///
        /// # Panics
        /// The server cannot be reached or refuses.
        pub async fn new(server_url: &str, count: usize) -> Self {
            let admin = MySqlConnectOptions::from_str(server_url).expect("a MySQL URL");
            let pool = MySqlPool::connect_with(admin.clone())
                .await
                .expect("MariaDB accepts connections");
            let mut names = Vec::new();
            for _ in 0..count {
                let name = super::scratch_name("cita");
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await
                    .expect("the test user may create databases");
                names.push(name);
            }
            pool.close().await;
            Self {
                admin,
                names,
                server_url: server_url.to_owned(),
            }
        }

        /// The URL of the `i`-th database.
        pub fn url(&self, i: usize) -> String {
            super::with_database(&self.server_url, &self.names[i])
        }

        /// A pool on the `i`-th database, for checks in SQL.
        ///
        /// # Panics
        /// It cannot be reached.
        pub async fn pool(&self, i: usize) -> MySqlPool {
            MySqlPool::connect_with(self.admin.clone().database(&self.names[i]))
                .await
                .expect("the scratch database accepts connections")
        }
    }

    impl Drop for MySqlScratch {
        fn drop(&mut self) {
            let admin = self.admin.clone();
            let names = std::mem::take(&mut self.names);
            super::on_own_runtime(async move {
                if let Ok(pool) = MySqlPool::connect_with(admin).await {
                    for name in names {
                        let sql = format!("DROP DATABASE IF EXISTS {name}");
                        let _ = sqlx::query(AssertSqlSafe(sql)).execute(&pool).await;
                    }
                }
            });
        }
    }
}
