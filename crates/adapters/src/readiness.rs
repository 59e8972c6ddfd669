//! Readiness checks: a named dependency that answers or says why not. The
//! binaries' `/ready` endpoints run every check they were given.

use std::sync::Arc;

use async_trait::async_trait;

/// A dependency a readiness endpoint checks.
#[async_trait]
pub trait ReadinessCheck: Send + Sync + 'static {
    /// Its name in the answer (`primary-store`, `country-store-pe`, …).
    fn name(&self) -> &str;
    /// Answers when the dependency does.
    ///
    /// # Errors
    /// Whatever the dependency says.
    async fn check(&self) -> anyhow::Result<()>;
}

/// Something that answers a ping (a database, a lock server).
#[async_trait]
pub trait Pingable: Send + Sync + 'static {
    /// Answers when reachable.
    ///
    /// # Errors
    /// The dependency cannot be reached or refused the ping.
    async fn ping(&self) -> anyhow::Result<()>;
}

/// A [`ReadinessCheck`] named `name` over anything [`Pingable`].
pub struct Ping<T> {
    name: String,
    target: T,
}

impl<T: Pingable> Ping<T> {
    /// A check called `name` pinging `target`.
    pub fn new(name: impl Into<String>, target: T) -> Self {
        Self {
            name: name.into(),
            target,
        }
    }

    /// The check as the trait object the endpoints take.
    pub fn boxed(name: impl Into<String>, target: T) -> Arc<dyn ReadinessCheck> {
        Arc::new(Self::new(name, target))
    }
}

#[async_trait]
impl<T: Pingable> ReadinessCheck for Ping<T> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> anyhow::Result<()> {
        self.target.ping().await
    }
}

#[async_trait]
impl<T: Pingable> Pingable for Arc<T> {
    async fn ping(&self) -> anyhow::Result<()> {
        T::ping(self).await
    }
}
