//! One way to run a worker: [`Worker::process_one`] until a [`Shutdown`],
//! pausing when idle and backing off after failures, then
//! [`Worker::finish`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Work was done (a batch relayed or messages handled, successfully or not).
    Processed,
    /// Nothing was waiting.
    Empty,
}

/// A stop signal many loops can wait for. Cheap to clone; every clone sees
/// the same signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    raised: watch::Receiver<bool>,
    /// Keeps the sender of [`Shutdown::never`] alive (a dropped sender
    /// would read as "stop").
    _keep: Option<Arc<watch::Sender<bool>>>,
}

/// Raises a [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    /// Raises the signal (again is harmless).
    pub fn raise(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// A signal and the trigger that raises it. Dropping the trigger also
    /// raises it: nobody could raise it any more.
    pub fn new() -> (ShutdownTrigger, Self) {
        let (tx, rx) = watch::channel(false);
        (
            ShutdownTrigger(tx),
            Self {
                raised: rx,
                _keep: None,
            },
        )
    }

    /// A signal raised when `trigger` resolves (a task waits for it).
    pub fn on(trigger: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = Self::new();
        tokio::spawn(async move {
            trigger.await;
            tx.raise();
        });
        rx
    }

    /// A signal that is never raised: for stepping workers by hand.
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        Self {
            raised: rx,
            _keep: Some(Arc::new(tx)),
        }
    }

    /// Whether the signal is raised.
    pub fn is_raised(&self) -> bool {
        *self.raised.borrow()
    }

    /// Resolves once the signal is raised (at once if it already was).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.raised.clone();
        let keep = self._keep.clone();
        async move {
            // An error means the sender is gone: nobody can raise it any
            // more, which also means stop.
            let _ = rx.wait_for(|stop| *stop).await;
            drop(keep);
        }
    }
}

/// Something a [`run`] loop drives: the outbox relay, a queue's consumer.
#[async_trait]
pub trait Worker: Send + Sync {
    /// Its name in logs (a queue's name, `outbox-relay`).
    fn name(&self) -> &str;

    /// Does one unit of work. A worker that waits for work (a long poll)
    /// stops waiting when `shutdown` is raised, and always finishes the
    /// work in hand.
    ///
    /// # Errors
    /// A failure of the step as a whole (the queue or outbox unreachable);
    /// failures of single messages are settled by the worker and are not
    /// errors of the step.
    async fn process_one(&self, shutdown: &Shutdown) -> anyhow::Result<Step>;

    /// Runs once after the loop stopped: what must not wait for the next
    /// start (the relay flushes the outbox). Nothing by default.
    async fn finish(&self) {}
}

/// How a [`run`] loop paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// How long an idle worker waits before looking again (default 20 ms).
    pub idle: Duration,
    /// Pause after a failed step, doubled on each consecutive failure
    /// (default 200 ms).
    pub backoff: Duration,
    /// The longest pause after failures (default 30 s).
    pub max_backoff: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            idle: Duration::from_millis(20),
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl Pacing {
    /// The defaults, idle for `idle`.
    pub fn idle(idle: Duration) -> Self {
        Self {
            idle,
            ..Self::default()
        }
    }

    /// The pause after `failures` consecutive failed steps (at least one).
    pub fn after_failures(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// Runs `worker` until `shutdown` is raised: step after step while there is
/// work, `idle` apart when there is none, backing off after failures. The
/// step in hand is always finished; then [`Worker::finish`] runs.
pub async fn run(worker: &dyn Worker, shutdown: &Shutdown, pacing: Pacing) {
    tracing::info!(worker = worker.name(), "running");
    let mut failures: u32 = 0;
    while !shutdown.is_raised() {
        let pause = match worker.process_one(shutdown).await {
            Ok(Step::Processed) => {
                failures = 0;
                continue;
            }
            Ok(Step::Empty) => {
                failures = 0;
                pacing.idle
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let pause = pacing.after_failures(failures);
                tracing::warn!(worker = worker.name(), error = %format!("{e:#}"), ?pause,
                    "step failed; retrying");
                pause
            }
        };
        tokio::select! {
            () = shutdown.wait() => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
    worker.finish().await;
    tracing::info!(worker = worker.name(), "stopped");
}

/// Runs every worker in its own task (see [`run`]) until `shutdown` is
/// raised and each has finished.
pub async fn run_all(workers: Vec<Arc<dyn Worker>>, shutdown: Shutdown, pacing: Pacing) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in workers {
        let shutdown = shutdown.clone();
        tasks.spawn(async move { run(worker.as_ref(), &shutdown, pacing).await });
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a worker task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Answers the steps it was given, in order, then `Empty`; counts calls.
    struct Scripted {
        steps: Mutex<Vec<anyhow::Result<Step>>>,
        calls: Mutex<u32>,
        finished: Mutex<bool>,
    }

    impl Scripted {
        fn new(mut steps: Vec<anyhow::Result<Step>>) -> Self {
            steps.reverse();
            Self {
                steps: Mutex::new(steps),
                calls: Mutex::new(0),
                finished: Mutex::new(false),
            }
        }
    }

    #[async_trait]
    impl Worker for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        async fn process_one(&self, _: &Shutdown) -> anyhow::Result<Step> {
            *self.calls.lock().unwrap() += 1;
            self.steps.lock().unwrap().pop().unwrap_or(Ok(Step::Empty))
        }
        async fn finish(&self) {
            *self.finished.lock().unwrap() = true;
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_limit() {
        let p = Pacing {
            idle: Duration::from_millis(1),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        assert_eq!(p.after_failures(1), Duration::from_millis(100));
        assert_eq!(p.after_failures(2), Duration::from_millis(200));
        assert_eq!(p.after_failures(4), Duration::from_millis(800));
        assert_eq!(p.after_failures(5), Duration::from_secs(1));
        assert_eq!(p.after_failures(u32::MAX), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn runs_while_there_is_work_backs_off_after_failures_and_finishes() {
        let worker = Arc::new(Scripted::new(vec![
            Ok(Step::Processed),
            Ok(Step::Processed),
            Err(anyhow::anyhow!("queue unreachable")),
            Err(anyhow::anyhow!("queue unreachable")),
            Ok(Step::Processed),
        ]));
        let (trigger, shutdown) = Shutdown::new();
        // Short backoffs, an idle wait far longer than the test.
        let pacing = Pacing {
            idle: Duration::from_secs(60),
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
        };
        let task = {
            let worker = Arc::clone(&worker);
            tokio::spawn(async move { run(worker.as_ref(), &shutdown, pacing).await })
        };
        // Two steps at once, two failures backed off, one more step, then
        // the first empty one: six calls, and none more while idle.
        let calls = || *worker.calls.lock().unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while calls() < 6 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("six steps");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(calls(), 6, "an idle worker waits before looking again");
        assert!(!*worker.finished.lock().unwrap());
        trigger.raise();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("stops at the signal, idle or not")
            .unwrap();
        assert!(*worker.finished.lock().unwrap());
        assert_eq!(calls(), 6, "no step after the signal");
    }

    #[tokio::test]
    async fn a_dropped_trigger_stops_and_never_does_not() {
        let (trigger, shutdown) = Shutdown::new();
        assert!(!shutdown.is_raised());
        drop(trigger);
        tokio::time::timeout(Duration::from_secs(5), shutdown.wait())
            .await
            .expect("a signal nobody can raise any more means stop");

        let never = Shutdown::never();
        let waited = tokio::time::timeout(Duration::from_millis(50), never.wait()).await;
        assert!(waited.is_err(), "never() is not raised");
        assert!(!never.is_raised());
    }
}
