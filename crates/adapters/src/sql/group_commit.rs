//! Group commit of new appointments, for every dialect that batches them.
//!
//! One booking written on its own costs a round trip, a transaction and a
//! commit (with its flush to disk); under load the commits queue for the
//! flush and most of a request's time is spent waiting, not working. So
//! concurrent inserts queue here, in [`GroupCommit`], and one task writes
//! everything queued as one batch: one round trip, one transaction, one
//! commit, and for each row the answer whether it was written or why not
//! ([`Outcome`]). Only that write is the dialect's ([`BatchWriter`]):
//! PostgreSQL calls `cita_insert_appointments`, SQLite sends `BEGIN
//! IMMEDIATE`, each row's conditional insert and `COMMIT`.
//!
//! - **Lanes.** Rows are queued by a hash of their lane key (the provider
//!   id) into one of [`Limits::lanes`] queues, each drained by a task of
//!   its own, so batches of different providers can be in flight at once
//!   and never wait for each other's locks.
//! - **Batch size.** A batch takes the rows waiting in its lane, as many
//!   as [`Limits::rows`] allows and about [`Limits::max_bytes`] hold.
//! - **Gave up, never written.** A caller that stopped waiting before its
//!   batch began (its request was dropped) is dropped from the queue, so an
//!   abandoned request never writes later.
//! - **Failures.** When the database rolled the whole batch back
//!   ([`BatchFailure::RolledBack`]), nothing of it was written and each
//!   caller writes its row on its own, the store's single-row path
//!   ([`Batched::Undecided`]). When the batch may have committed
//!   ([`BatchFailure::InDoubt`]: the connection failed while it was in
//!   flight), each caller gets an error saying the outcome is unknown:
//!   retrying could book twice or refuse a booking that was made.
//! - **A task that ends early** (a panic while writing) clears its lane on
//!   the way out: its callers write on their own, and the next insert
//!   starts a new task.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cita_core::booking::AppointmentWriteError;
use tokio::sync::oneshot;

/// What a batch decided for one of its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Written and committed.
    Written,
    /// Refused: an active appointment of the provider blocks it (checked
    /// first, so also when the patient is busy too).
    SlotTaken,
    /// Refused: only an active appointment of the patient overlaps.
    PatientBusy,
}

impl Outcome {
    /// The port's answer for the row.
    ///
    /// # Errors
    /// [`AppointmentWriteError::SlotTaken`] or
    /// [`AppointmentWriteError::PatientBusy`] for a refused row.
    pub(crate) fn into_result(self) -> Result<(), AppointmentWriteError> {
        match self {
            Self::Written => Ok(()),
            Self::SlotTaken => Err(AppointmentWriteError::SlotTaken),
            Self::PatientBusy => Err(AppointmentWriteError::PatientBusy),
        }
    }
}

/// Why a batch answered for none of its rows.
#[derive(Debug)]
pub(crate) enum BatchFailure {
    /// Nothing of the batch was written (the database answered with an
    /// error and rolled it back, or the batch was never sent).
    RolledBack(anyhow::Error),
    /// The batch may or may not have committed.
    InDoubt(anyhow::Error),
}

/// What became of a queued row.
#[derive(Debug)]
pub(crate) enum Batched {
    /// Its batch decided it.
    Decided(Outcome),
    /// Nothing decided it (its batch was rolled back, or its task ended
    /// early): the caller writes it on its own.
    Undecided,
    /// Its batch may or may not have committed; why, as the driver said.
    InDoubt(Arc<str>),
}

impl Batched {
    /// The port's answer, or `None` when the caller must write the row on
    /// its own ([`Batched::Undecided`]).
    pub(crate) fn answer(self) -> Option<Result<(), AppointmentWriteError>> {
        match self {
            Self::Decided(outcome) => Some(outcome.into_result()),
            Self::Undecided => None,
            Self::InDoubt(why) => Some(Err(anyhow::anyhow!(
                "inserting an appointment: its batch failed in flight, so whether it was \
                 written is unknown: {why}"
            )
            .into())),
        }
    }
}

/// How many rows one batch takes (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rows {
    /// Any number up to this many.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    UpTo(usize),
    /// The largest power of two up to this many and the rows waiting (a
    /// longer queue takes several batches), so a few prepared statements
    /// cover every queue length.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    PowerOfTwoUpTo(usize),
}

/// How a writer's batches are formed.
pub(crate) struct Limits {
    /// Queues drained at once, each by a task of its own (at least 1).
    pub(crate) lanes: usize,
    pub(crate) rows: Rows,
    /// About the most bytes one batch sends, by [`BatchWriter::size`]; a
    /// batch takes its first row whatever its size.
    pub(crate) max_bytes: usize,
}

/// A dialect's batch write: everything of group commit that is not the
/// same for every dialect.
pub(crate) trait BatchWriter: Send + Sync + 'static {
    /// One queued insert, encoded for the batch.
    type Row: Send + Sync + 'static;

    const LIMITS: Limits;

    /// The text whose hash picks a row's lane; read only when there is more
    /// than one lane.
    fn lane_key(row: &Self::Row) -> &str;

    /// About how many bytes the row adds to the batch's message, for
    /// [`Limits::max_bytes`].
    fn size(row: &Self::Row) -> usize;

    /// Writes `rows` in one transaction and answers for each, in order.
    fn write(
        &self,
        rows: &[Self::Row],
    ) -> impl Future<Output = Result<Vec<Outcome>, BatchFailure>> + Send;
}

/// Inserts waiting for a batch, per lane, and the writer that writes them.
/// A store holds it in an [`Arc`] that its clones share.
pub(crate) struct GroupCommit<W: BatchWriter> {
    writer: W,
    lanes: Box<[Mutex<Lane<W::Row>>]>,
}

impl<W: BatchWriter> std::fmt::Debug for GroupCommit<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("lanes", &self.lanes.len())
            .finish_non_exhaustive()
    }
}

/// One lane's queue, and whether a task is writing it.
struct Lane<R> {
    waiting: Vec<Queued<R>>,
    draining: bool,
}

struct Queued<R> {
    row: R,
    answer: oneshot::Sender<Batched>,
}

impl<W: BatchWriter> GroupCommit<W> {
    /// Empty queues for `writer`'s batches.
    pub(crate) fn new(writer: W) -> Self {
        Self {
            writer,
            lanes: (0..W::LIMITS.lanes.max(1))
                .map(|_| {
                    Mutex::new(Lane {
                        waiting: Vec::new(),
                        draining: false,
                    })
                })
                .collect(),
        }
    }

    fn lane(&self, lane: usize) -> MutexGuard<'_, Lane<W::Row>> {
        self.lanes[lane]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `row` and waits for its batch.
    pub(crate) async fn insert(self: &Arc<Self>, row: W::Row) -> Batched {
        let lane = lane_of(&row, self.lanes.len(), W::lane_key);
        let (answer, reply) = oneshot::channel();
        let start_task = {
            let mut state = self.lane(lane);
            state.waiting.push(Queued { row, answer });
            !std::mem::replace(&mut state.draining, true)
        };
        if start_task {
            // A task of its own, so that no request being dropped can stop
            // the batch the other requests wait for.
            tokio::spawn(drain(Arc::clone(self), lane));
        }
        reply.await.unwrap_or(Batched::Undecided)
    }

    /// How many rows wait in `lane`.
    #[cfg(test)]
    fn waiting(&self, lane: usize) -> usize {
        self.lane(lane).waiting.len()
    }
}

/// The lane of `row`: FNV-1a of its key, so that it is the same in every
/// process and run.
fn lane_of<R>(row: &R, lanes: usize, key: fn(&R) -> &str) -> usize {
    if lanes <= 1 {
        return 0;
    }
    let hash = key(row).bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    usize::try_from(hash % lanes as u64).unwrap_or(0)
}

/// How many of the waiting rows (given by their sizes; at least one) the
/// next batch takes.
fn batch_len(limits: &Limits, sizes: impl Iterator<Item = usize>) -> usize {
    let (Rows::UpTo(most) | Rows::PowerOfTwoUpTo(most)) = limits.rows;
    let mut bytes = 0_usize;
    let mut n = 0;
    for size in sizes.take(most.max(1)) {
        bytes = bytes.saturating_add(size);
        if n > 0 && bytes > limits.max_bytes {
            break;
        }
        n += 1;
    }
    match limits.rows {
        Rows::UpTo(_) => n,
        Rows::PowerOfTwoUpTo(_) => 1 << n.max(1).ilog2(),
    }
}

/// Writes a lane's batches until nothing waits in it.
async fn drain<W: BatchWriter>(queue: Arc<GroupCommit<W>>, lane: usize) {
    let mut guard = Draining {
        queue: &queue,
        lane,
        done: false,
    };
    // Kept across batches, so that a busy lane allocates them once.
    let mut rows = Vec::new();
    let mut answers = Vec::new();
    loop {
        {
            let mut state = queue.lane(lane);
            state.waiting.retain(|q| !q.answer.is_closed());
            if state.waiting.is_empty() {
                state.draining = false;
                guard.done = true;
                return;
            }
            let n = batch_len(&W::LIMITS, state.waiting.iter().map(|q| W::size(&q.row)));
            for q in state.waiting.drain(..n) {
                rows.push(q.row);
                answers.push(q.answer);
            }
        }
        let written = queue.writer.write(&rows).await;
        answer(written, rows.len(), answers.drain(..));
        rows.clear();
    }
}

/// Tells each caller of a batch of `n` rows what became of its row.
fn answer(
    written: Result<Vec<Outcome>, BatchFailure>,
    n: usize,
    answers: impl Iterator<Item = oneshot::Sender<Batched>>,
) {
    let failure = match written {
        Ok(outcomes) if outcomes.len() == n => {
            for (answer, outcome) in answers.zip(outcomes) {
                let _ = answer.send(Batched::Decided(outcome));
            }
            return;
        }
        Ok(outcomes) => BatchFailure::InDoubt(anyhow::anyhow!(
            "the batch of {n} inserts answered {} outcomes",
            outcomes.len()
        )),
        Err(failure) => failure,
    };
    match failure {
        BatchFailure::RolledBack(e) => {
            tracing::debug!(error = %format!("{e:#}"), rows = n,
                "a batch of inserts was rolled back; writing its rows one by one");
            for answer in answers {
                let _ = answer.send(Batched::Undecided);
            }
        }
        BatchFailure::InDoubt(e) => {
            let why: Arc<str> = format!("{e:#}").into();
            tracing::warn!(error = %why, rows = n,
                "a batch of inserts failed in flight; its outcome is unknown");
            for answer in answers {
                let _ = answer.send(Batched::InDoubt(Arc::clone(&why)));
            }
        }
    }
}

/// Clears the lane if [`drain`] ends any other way than finding it empty
/// (a panic): the callers waiting then write on their own, and the next
/// insert starts a new task.
struct Draining<'a, W: BatchWriter> {
    queue: &'a GroupCommit<W>,
    lane: usize,
    done: bool,
}

impl<W: BatchWriter> Drop for Draining<'_, W> {
    fn drop(&mut self) {
        if !self.done {
            let mut state = self.queue.lane(self.lane);
            state.waiting.clear();
            state.draining = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;

    /// A queued row of the fake writer: an id, a lane key and a size.
    #[derive(Debug, Clone, Copy)]
    struct Row {
        id: u32,
        key: &'static str,
        size: usize,
    }

    fn row(id: u32, key: &'static str) -> Row {
        Row { id, key, size: 10 }
    }

    /// What the fake writer does with a batch.
    #[derive(Debug, Clone, Copy)]
    enum Script {
        /// Even ids written, odd ones refused (slot taken).
        Decide,
        RollBack,
        InDoubt,
        /// Answers one outcome too few.
        Short,
        /// Panics on the first batch, then decides.
        PanicOnce,
    }

    /// A writer with `LANES` lanes that records the ids of each batch and
    /// waits, before each batch of a row whose key is `"held"`, for a
    /// permit of `gate`.
    struct Fake<const LANES: usize> {
        script: Script,
        batches: Mutex<Vec<Vec<u32>>>,
        gate: Semaphore,
        started: tokio::sync::Notify,
    }

    impl<const LANES: usize> Fake<LANES> {
        fn new(script: Script) -> Self {
            Self {
                script,
                batches: Mutex::default(),
                gate: Semaphore::new(0),
                started: tokio::sync::Notify::new(),
            }
        }
    }

    impl<const LANES: usize> Fake<LANES> {
        async fn run(&self, rows: &[Row]) -> Result<Vec<Outcome>, BatchFailure> {
            let first = {
                let mut batches = self.batches.lock().unwrap();
                batches.push(rows.iter().map(|r| r.id).collect());
                batches.len() == 1
            };
            self.started.notify_one();
            if rows.iter().any(|r| r.key == "held") {
                self.gate.acquire().await.unwrap().forget();
            }
            let decide = || -> Vec<Outcome> {
                rows.iter()
                    .map(|r| {
                        if r.id % 2 == 0 {
                            Outcome::Written
                        } else {
                            Outcome::SlotTaken
                        }
                    })
                    .collect()
            };
            match self.script {
                Script::Decide => Ok(decide()),
                Script::RollBack => Err(BatchFailure::RolledBack(anyhow::anyhow!("deadlock"))),
                Script::InDoubt => Err(BatchFailure::InDoubt(anyhow::anyhow!("connection reset"))),
                Script::Short => Ok(decide().into_iter().skip(1).collect()),
                Script::PanicOnce => {
                    assert!(!first, "the writer fails while writing");
                    Ok(decide())
                }
            }
        }

        fn batches(&self) -> Vec<Vec<u32>> {
            self.batches.lock().unwrap().clone()
        }
    }

    const LIMITS: Limits = Limits {
        lanes: 1,
        rows: Rows::UpTo(4),
        max_bytes: 25,
    };

    impl<const LANES: usize> BatchWriter for Fake<LANES> {
        type Row = Row;
        const LIMITS: Limits = Limits {
            lanes: LANES,
            ..LIMITS
        };
        fn lane_key(row: &Row) -> &str {
            row.key
        }
        fn size(row: &Row) -> usize {
            row.size
        }
        fn write(
            &self,
            rows: &[Row],
        ) -> impl Future<Output = Result<Vec<Outcome>, BatchFailure>> + Send {
            self.run(rows)
        }
    }

    fn decided(b: &Batched) -> Option<Outcome> {
        match b {
            Batched::Decided(o) => Some(*o),
            _ => None,
        }
    }

    /// Waits until `n` rows wait in `lane`.
    async fn until_waiting<W: BatchWriter>(q: &GroupCommit<W>, lane: usize, n: usize) {
        while q.waiting(lane) != n {
            tokio::task::yield_now().await;
        }
    }

    #[test]
    fn batches_keep_to_the_rows_bytes_and_sizes_allowed() {
        let len = |limits: &Limits, sizes: &[usize]| batch_len(limits, sizes.iter().copied());
        // At most 4 rows, and 25 bytes unless the first row alone is larger.
        assert_eq!(len(&LIMITS, &[1; 9]), 4);
        assert_eq!(len(&LIMITS, &[10, 10, 10]), 2);
        assert_eq!(len(&LIMITS, &[100, 1]), 1);
        assert_eq!(len(&LIMITS, &[1]), 1);
        let powers = Limits {
            lanes: 1,
            rows: Rows::PowerOfTwoUpTo(32),
            max_bytes: usize::MAX,
        };
        assert_eq!(
            [1, 2, 3, 5, 31, 32, 33, 1000].map(|n| len(&powers, &vec![0; n])),
            [1, 2, 2, 4, 16, 32, 32, 32]
        );
    }

    #[tokio::test]
    async fn each_caller_gets_its_rows_outcome() {
        let q = Arc::new(GroupCommit::new(Fake::<1>::new(Script::Decide)));
        let answers = insert_all(&q, (0..6).map(|id| row(id, "a")).collect::<Vec<_>>()).await;
        assert_eq!(
            answers.iter().map(decided).collect::<Vec<_>>(),
            (0..6)
                .map(|id| Some(if id % 2 == 0 {
                    Outcome::Written
                } else {
                    Outcome::SlotTaken
                }))
                .collect::<Vec<_>>()
        );
        // Every row written exactly once, in batches the limits allow.
        let batches = q.writer.batches();
        let mut ids: Vec<u32> = batches.iter().flatten().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..6).collect::<Vec<_>>());
        assert!(batches.iter().all(|b| (1..=2).contains(&b.len())));
    }

    /// Inserts `rows` concurrently, each from its own task, and answers in
    /// their order.
    async fn insert_all<W: BatchWriter<Row = Row>>(
        q: &Arc<GroupCommit<W>>,
        rows: Vec<Row>,
    ) -> Vec<Batched> {
        let tasks: Vec<_> = rows
            .into_iter()
            .map(|r| {
                let q = Arc::clone(q);
                tokio::spawn(async move { q.insert(r).await })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        answers
    }

    #[tokio::test]
    async fn a_caller_that_gave_up_before_its_batch_is_never_written() {
        let q = Arc::new(GroupCommit::new(Fake::<1>::new(Script::Decide)));
        // The first batch waits at the gate.
        let first = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.insert(row(0, "held")).await }
        });
        q.writer.started.notified().await;
        // This caller gives up while the first batch is in flight.
        let gave_up = tokio::time::timeout(Duration::from_millis(5), q.insert(row(2, "a"))).await;
        assert!(gave_up.is_err());
        let waits = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.insert(row(4, "a")).await }
        });
        until_waiting(&q, 0, 2).await;
        q.writer.gate.add_permits(1);
        assert_eq!(decided(&first.await.unwrap()), Some(Outcome::Written));
        assert_eq!(decided(&waits.await.unwrap()), Some(Outcome::Written));
        assert_eq!(q.writer.batches(), vec![vec![0], vec![4]]);
    }

    #[tokio::test]
    async fn a_rolled_back_batch_leaves_each_row_to_its_caller() {
        let q = Arc::new(GroupCommit::new(Fake::<1>::new(Script::RollBack)));
        let answers = insert_all(&q, vec![row(0, "a"), row(1, "a"), row(2, "a")]).await;
        assert!(answers.iter().all(|b| matches!(b, Batched::Undecided)));
        assert!(answers.into_iter().all(|b| b.answer().is_none()));
    }

    #[tokio::test]
    async fn a_batch_in_doubt_is_an_error_for_each_caller() {
        for script in [Script::InDoubt, Script::Short] {
            let q = Arc::new(GroupCommit::new(Fake::<1>::new(script)));
            let answers = insert_all(&q, vec![row(0, "a"), row(2, "a")]).await;
            for b in answers {
                let Batched::InDoubt(why) = &b else {
                    panic!("{script:?}: in doubt, not {b:?}");
                };
                assert!(!why.is_empty());
                let Some(Err(AppointmentWriteError::Unexpected(e))) = b.answer() else {
                    panic!("{script:?}: an unexpected error");
                };
                assert!(e.to_string().contains("unknown"), "{e}");
            }
        }
    }

    #[tokio::test]
    async fn a_writer_that_panics_leaves_its_rows_to_their_callers() {
        let q = Arc::new(GroupCommit::new(Fake::<1>::new(Script::PanicOnce)));
        assert!(matches!(q.insert(row(0, "a")).await, Batched::Undecided));
        // The lane was cleared: the next insert starts a new task.
        assert_eq!(
            decided(&q.insert(row(2, "a")).await),
            Some(Outcome::Written)
        );
    }

    #[tokio::test]
    async fn lanes_are_written_apart() {
        let q = Arc::new(GroupCommit::new(Fake::<2>::new(Script::Decide)));
        let lane = |key: &'static str| lane_of(&row(0, key), 2, Fake::<2>::lane_key);
        let other = ["a", "b", "c", "d"]
            .into_iter()
            .find(|k| lane(k) != lane("held"))
            .unwrap();
        // A batch of one lane waits at the gate...
        let held = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.insert(row(0, "held")).await }
        });
        q.writer.started.notified().await;
        // ...while the other lane's rows are written.
        assert_eq!(
            decided(&q.insert(row(2, other)).await),
            Some(Outcome::Written)
        );
        assert!(!held.is_finished());
        q.writer.gate.add_permits(1);
        assert_eq!(decided(&held.await.unwrap()), Some(Outcome::Written));
        assert_eq!(q.writer.batches(), vec![vec![0], vec![2]]);
        // Keys map to lanes the same way every time.
        assert_eq!(lane("held"), lane("held"));
        assert_eq!(lane_of(&row(0, "x"), 1, Fake::<1>::lane_key), 0);
    }
}
