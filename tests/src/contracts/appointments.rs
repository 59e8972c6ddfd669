//! The [`AppointmentStore`] + [`Outbox`] contract. The two ports share one
//! store: every accepted write puts its event in the outbox in the same
//! transaction, and a refused write leaves neither.

use std::sync::Arc;

use cita_core::booking::{
    Appointment, AppointmentQuery, AppointmentStatus, AppointmentStore, AppointmentWriteError,
    CancelReason, Confirmation, Notes,
};
use cita_core::events::{EventEnvelope, EventType, Outbox, OutboxBacklog};
use cita_core::ids::{AppointmentId, EventId, PatientId, ProviderId, Version};
use cita_core::slots::BufferMinutes;
use jiff::{SignedDuration, Timestamp};

use super::{appointment, at, event, mins, now_ms, patient_id, provider_id};

/// How many outbox entries the suite reads to find its own: enough for a
/// shared database with a backlog of other runs' events.
const OUTBOX_SCAN: usize = 100_000;

/// Concurrent writers of one slot in the race cases.
const RACERS: usize = 64;

/// Runs every case of the [`AppointmentStore`] and [`Outbox`] contract
/// against a store and its outbox (usually the same object twice):
///
/// - **outbox** (run first): accepted writes appear oldest first, each entry
///   exactly the event given with `created_at` = the appointment's
///   `updated_at`; an update without an event writes none; `mark_published`
///   removes entries and ignores unknown or repeated ids; `backlog` counts
///   what is left and gives the oldest entry's time. Exact counts and
///   `unpublished(limit)` are checked when the outbox is empty at the start
///   (a fresh store); on a shared store only the suite's own entries are.
/// - **round trip**: `get` returns exactly what was written (notes, cancel
///   reason, millisecond instants); an unknown id is `Ok(None)`.
/// - **provider overlaps** use each appointment's `[start, end + buffer)`:
///   exact, partial, enclosing and enclosed overlaps of different lengths,
///   overlaps caused by either side's buffer → `SlotTaken`; adjacent holds
///   are allowed; another provider is not affected; an appointment of the
///   maximum length and buffer still blocks up to its last minute.
/// - **patient overlaps** use `[start, end)` (no buffers) → `PatientBusy`,
///   adjacent allowed, including across the maximum length.
/// - the provider is checked first: a write clashing on both → `SlotTaken`.
/// - **the current buffer** (`Appointment::blocks_booking`): an insert
///   whose own buffer, put after an existing appointment's end, reaches its
///   start is refused (`SlotTaken`) though the two holds do not meet; one
///   buffer later is free; an update (a confirmation, a reschedule) is
///   checked against the holds alone.
/// - **cancelled** appointments block nothing, and updating a cancelled one
///   is not checked for overlaps.
/// - **rescheduling**: moving within or overlapping its own old time is
///   allowed, a confirmation without an event is allowed; moving onto
///   another appointment → `SlotTaken`/`PatientBusy` with nothing changed;
///   the old time is free after a move.
/// - **versions**: a wrong expected version or a missing id →
///   `VersionConflict`, nothing written.
/// - **refused writes** leave no appointment change and no outbox entry.
/// - **`active_in_range`**: active appointments of that provider whose
///   `[start, end)` intersects `[from, until)`, ordered by start, including
///   one that started up to the maximum length before `from`.
/// - **listing**: ordered by start then id (ties broken by id even against
///   insertion order), filtered by patient, provider, both, `from`
///   (inclusive), `until` (exclusive), status and the `after` cursor
///   (strictly after a (start, id) position, combined with `from`), at most
///   `limit`; paging with `limit` and `after` reproduces the full listing.
/// - **races**: 64 concurrent inserts of one provider's slot → exactly one
///   `Ok` and 63 `SlotTaken`; 64 of one patient's time at different
///   providers → one `Ok`, 63 `PatientBusy`; 64 of one provider's and
///   patient's time → one `Ok`, 63 `SlotTaken` (the provider first); only
///   the winners' events are in the outbox.
/// - **racing refusals say why**: 64 concurrent inserts against one booked
///   appointment, mixed — its provider's time (`SlotTaken`), its patient's
///   at another provider (`PatientBusy`), both (`SlotTaken`) and free
///   times (`Ok`) — each get their own answer, whatever they share a batch
///   or a transaction with.
///
/// # Panics
/// On the first broken promise, naming it.
pub async fn appointment_store_contract(store: Arc<dyn AppointmentStore>, outbox: Arc<dyn Outbox>) {
    let s = store.as_ref();
    let o = outbox.as_ref();
    outbox_order_and_backlog(s, o).await;
    unknown_id_is_none(s).await;
    round_trips_every_field(s, o).await;
    provider_overlaps(s, o).await;
    provider_overlap_looks_back_the_longest_hold(s, o).await;
    patient_overlaps(s, o).await;
    provider_is_checked_first(s, o).await;
    current_buffer(s, o).await;
    cancelled_appointments_block_nothing(s, o).await;
    rescheduling(s, o).await;
    version_checks(s, o).await;
    active_in_range(s).await;
    listing(s).await;
    racing_inserts_of_one_slot(&store, o).await;
    racing_inserts_of_one_patient(&store, o).await;
    racing_inserts_of_one_provider_and_patient(&store, o).await;
    racing_refusals_say_why(&store, o).await;
}

/// A write's result as a short name, for assertions that print well.
fn kind(r: &Result<(), AppointmentWriteError>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(AppointmentWriteError::SlotTaken) => "slot_taken".into(),
        Err(AppointmentWriteError::PatientBusy) => "patient_busy".into(),
        Err(AppointmentWriteError::VersionConflict) => "version_conflict".into(),
        Err(AppointmentWriteError::Unexpected(e)) => format!("unexpected: {e:#}"),
    }
}

/// The ids of the events waiting in `outbox` (the first 100,000).
///
/// # Panics
/// When the outbox cannot be read.
pub async fn pending_events(outbox: &dyn Outbox) -> Vec<EventId> {
    outbox
        .unpublished(OUTBOX_SCAN)
        .await
        .expect("unpublished succeeds")
        .into_iter()
        .map(|e| e.event.event_id)
        .collect()
}

async fn in_outbox(outbox: &dyn Outbox, id: EventId) -> bool {
    pending_events(outbox).await.contains(&id)
}

async fn get(store: &dyn AppointmentStore, id: AppointmentId) -> Option<Appointment> {
    store.get(id).await.expect("get succeeds")
}

/// Inserts `a` and checks the result is `expected`; a refusal must leave no
/// appointment and no event.
async fn expect_insert(
    store: &dyn AppointmentStore,
    outbox: &dyn Outbox,
    a: &Appointment,
    expected: &str,
    case: &str,
) {
    let ev = event(EventType::Requested, a);
    let r = store.insert(a, &ev).await;
    assert_eq!(kind(&r), expected, "{case}");
    if r.is_ok() {
        return;
    }
    assert_eq!(
        get(store, a.id).await,
        None,
        "{case}: a refused insert writes no appointment"
    );
    assert!(
        !in_outbox(outbox, ev.event_id).await,
        "{case}: a refused insert writes no outbox entry"
    );
}

async fn insert_ok(store: &dyn AppointmentStore, a: &Appointment, case: &str) {
    let r = store.insert(a, &event(EventType::Requested, a)).await;
    assert_eq!(kind(&r), "ok", "{case}");
}

/// Updates `to` from `expected` with an event of `ev_kind` (if any) and
/// checks the result is `expected_result`; a refusal must leave the stored
/// appointment as it was and write no event.
async fn expect_update(
    store: &dyn AppointmentStore,
    outbox: &dyn Outbox,
    to: &Appointment,
    expected: Version,
    ev_kind: Option<EventType>,
    expected_result: &str,
    case: &str,
) {
    let before = get(store, to.id).await;
    let ev = ev_kind.map(|k| event(k, to));
    let r = store.update(to, expected, ev.as_ref()).await;
    assert_eq!(kind(&r), expected_result, "{case}");
    if r.is_ok() {
        assert_eq!(
            get(store, to.id).await.as_ref(),
            Some(to),
            "{case}: the update reads back"
        );
        return;
    }
    assert_eq!(
        get(store, to.id).await,
        before,
        "{case}: a refused update changes nothing"
    );
    if let Some(ev) = ev {
        assert!(
            !in_outbox(outbox, ev.event_id).await,
            "{case}: a refused update writes no outbox entry"
        );
    }
}

fn moved(a: &Appointment, start: Timestamp, minutes: i64, buffer: u32) -> Appointment {
    a.reschedule(
        start,
        start + mins(minutes),
        BufferMinutes::new(buffer).expect("valid buffer"),
        a.updated_at + SignedDuration::from_millis(1),
    )
    .expect("not cancelled")
}

fn cancelled(a: &Appointment, reason: Option<&str>) -> Appointment {
    a.cancel(
        reason.map(|r| CancelReason::parse(r).expect("valid reason")),
        a.updated_at + SignedDuration::from_millis(1),
    )
    .expect("not cancelled yet")
}

fn confirmed(a: &Appointment) -> Appointment {
    match a.confirm(a.version, a.updated_at + SignedDuration::from_millis(1)) {
        Confirmation::Applies(c) => c,
        other => panic!("fixture: confirmation does not apply: {other:?}"),
    }
}

async fn outbox_order_and_backlog(store: &dyn AppointmentStore, outbox: &dyn Outbox) {
    let alone = outbox.backlog().await.expect("backlog succeeds").pending == 0;
    let p = provider_id();
    let mut a = appointment(&p, &patient_id(), at(600), 30, 0);
    // Real time, strictly increasing, so an outbox ordered by time instead
    // of write order would still pass only if it is right.
    a.updated_at = now_ms();
    a.created_at = a.updated_at;
    let e1 = event(EventType::Requested, &a);
    store.insert(&a, &e1).await.expect("insert succeeds");
    let a2 = moved(&a, at(660), 30, 0);
    let e2 = event(EventType::Rescheduled, &a2);
    store
        .update(&a2, a.version, Some(&e2))
        .await
        .expect("update succeeds");
    let mut b = appointment(&p, &patient_id(), at(720), 30, 0);
    b.updated_at = a2.updated_at + SignedDuration::from_millis(1);
    b.created_at = b.updated_at;
    let e3 = event(EventType::Requested, &b);
    store.insert(&b, &e3).await.expect("insert succeeds");
    // A confirmation writes no event of the store's own.
    let a3 = confirmed(&a2);
    store
        .update(&a3, a2.version, None)
        .await
        .expect("update without an event succeeds");

    let ours = [e1.event_id, e2.event_id, e3.event_id];
    let entries: Vec<_> = outbox
        .unpublished(OUTBOX_SCAN)
        .await
        .expect("unpublished succeeds")
        .into_iter()
        .filter(|e| e.event.appointment_id == a.id || e.event.appointment_id == b.id)
        .collect();
    assert_eq!(
        entries.iter().map(|e| &e.event).collect::<Vec<_>>(),
        vec![&e1, &e2, &e3],
        "outbox: the written events exactly, oldest first, and none for an update without one"
    );
    assert_eq!(
        entries.iter().map(|e| e.created_at).collect::<Vec<_>>(),
        vec![a.updated_at, a2.updated_at, b.updated_at],
        "outbox: created_at is the appointment's updated_at"
    );

    let backlog = outbox.backlog().await.expect("backlog succeeds");
    if alone {
        let first_two: Vec<_> = outbox
            .unpublished(2)
            .await
            .expect("unpublished succeeds")
            .into_iter()
            .map(|e| e.event.event_id)
            .collect();
        assert_eq!(
            first_two,
            ours[..2],
            "outbox: unpublished(2) is the oldest two"
        );
        assert_eq!(
            backlog,
            OutboxBacklog {
                pending: 3,
                oldest: Some(a.updated_at)
            },
            "outbox: backlog of a store holding three pending events"
        );
    } else {
        assert!(
            backlog.pending >= 3,
            "outbox: backlog counts ours: {backlog:?}"
        );
        assert!(
            backlog.oldest.is_some_and(|t| t <= a.updated_at),
            "outbox: the oldest pending entry is no newer than ours: {backlog:?}"
        );
    }

    outbox
        .mark_published(&[e1.event_id])
        .await
        .expect("mark_published succeeds");
    let pending = pending_events(outbox).await;
    assert_eq!(
        ours.iter().filter(|id| pending.contains(id)).count(),
        2,
        "outbox: a published entry is no longer pending"
    );
    assert!(!pending.contains(&e1.event_id), "outbox: e1 was published");
    if alone {
        assert_eq!(
            outbox.backlog().await.expect("backlog succeeds"),
            OutboxBacklog {
                pending: 2,
                oldest: Some(a2.updated_at)
            },
            "outbox: the backlog after publishing the oldest"
        );
    }

    outbox
        .mark_published(&[e1.event_id, e2.event_id, EventId::new()])
        .await
        .expect("mark_published ignores repeated and unknown ids");
    outbox
        .mark_published(&[])
        .await
        .expect("mark_published of nothing succeeds");
    let pending = pending_events(outbox).await;
    assert_eq!(
        ours.iter()
            .filter(|id| pending.contains(id))
            .collect::<Vec<_>>(),
        vec![&e3.event_id],
        "outbox: only e3 is left"
    );
    outbox
        .mark_published(&[e3.event_id])
        .await
        .expect("mark_published succeeds");
    let pending = pending_events(outbox).await;
    assert!(
        ours.iter().all(|id| !pending.contains(id)),
        "outbox: everything of ours is published"
    );
    if alone {
        assert_eq!(
            outbox.backlog().await.expect("backlog succeeds"),
            OutboxBacklog::default(),
            "outbox: an empty backlog has no oldest entry"
        );
    }
}

async fn unknown_id_is_none(store: &dyn AppointmentStore) {
    assert_eq!(
        get(store, AppointmentId::new()).await,
        None,
        "get of an unknown id is Ok(None)"
    );
}

async fn round_trips_every_field(store: &dyn AppointmentStore, outbox: &dyn Outbox) {
    let mut a = appointment(&provider_id(), &patient_id(), at(600), 45, 15);
    a.notes = Some(
        Notes::parse("primera consulta — ñandú \"quoted\" 'x' 👍\nline two").expect("valid notes"),
    );
    a.created_at = now_ms() - SignedDuration::from_millis(3_723_004);
    a.updated_at = a.created_at + SignedDuration::from_millis(1);
    // Instants are millisecond-precise, starts included.
    a.start += SignedDuration::from_millis(7);
    a.end = a.start + mins(45) + SignedDuration::from_millis(1);
    insert_ok(store, &a, "round trip: insert").await;
    let got = get(store, a.id)
        .await
        .expect("the inserted appointment exists");
    assert_eq!(got.start, a.start, "round trip: start to the millisecond");
    assert_eq!(got.end, a.end, "round trip: end to the millisecond");
    assert_eq!(got.created_at, a.created_at, "round trip: created_at");
    assert_eq!(got.updated_at, a.updated_at, "round trip: updated_at");
    assert_eq!(got.buffer, a.buffer, "round trip: buffer");
    assert_eq!(got.notes, a.notes, "round trip: notes");
    assert_eq!(got, a, "round trip: the whole appointment");

    let c = cancelled(&a, Some("enfermedad — 😷"));
    expect_update(
        store,
        outbox,
        &c,
        a.version,
        Some(EventType::Cancelled),
        "ok",
        "round trip: cancel with a reason",
    )
    .await;
    let mut none = appointment(&provider_id(), &patient_id(), at(600), 5, 0);
    none.notes = None;
    insert_ok(store, &none, "round trip: no notes").await;
    assert_eq!(
        get(store, none.id).await,
        Some(none),
        "round trip: no notes"
    );
}

async fn provider_overlaps(store: &dyn AppointmentStore, outbox: &dyn Outbox) {
    let p = provider_id();
    // Holds the provider over [10:00, 10:40): 30 minutes and a 10-minute buffer.
    let base = appointment(&p, &patient_id(), at(600), 30, 10);
    insert_ok(store, &base, "provider overlaps: the first appointment").await;

    let refused: [(i64, i64, u32, &str); 9] = [
        (600, 30, 0, "the exact same slot"),
        (615, 30, 0, "a later partial overlap"),
        (590, 15, 0, "an earlier partial overlap"),
        (605, 10, 0, "a shorter appointment inside"),
        (570, 120, 0, "a longer appointment around it"),
        (630, 30, 0, "a start inside the other's buffer"),
        (
            639,
            5,
            0,
            "a start in the last minute of the other's buffer",
        ),
        (
            575,
            20,
            10,
            "an earlier appointment whose own buffer reaches it",
        ),
        (596, 5, 0, "a short appointment ending one minute into it"),
    ];
    for (start, minutes, buffer, case) in refused {
        let a = appointment(&p, &patient_id(), at(start), minutes, buffer);
        expect_insert(
            store,
            outbox,
            &a,
            "slot_taken",
            &format!("provider overlaps: {case}"),
        )
        .await;
    }

    let after = appointment(&p, &patient_id(), at(640), 30, 0);
    expect_insert(
        store,
        outbox,
        &after,
        "ok",
        "provider overlaps: adjacent after the other's buffer",
    )
    .await;
    let before = appointment(&p, &patient_id(), at(570), 20, 10);
    expect_insert(
        store,
        outbox,
        &before,
        "ok",
        "provider overlaps: adjacent before, own buffer ending at the other's start",
    )
    .await;
    let elsewhere = appointment(&provider_id(), &patient_id(), at(600), 30, 10);
    expect_insert(
        store,
        outbox,
        &elsewhere,
        "ok",
        "provider overlaps: another provider at the same time",
    )
    .await;
}

async fn provider_overlap_looks_back_the_longest_hold(
    store: &dyn AppointmentStore,
    outbox: &dyn Outbox,
) {
    let p = provider_id();
    // 480 minutes and a 240-minute buffer: the longest hold, [00:00, 12:00).
    let long = appointment(&p, &patient_id(), at(0), 480, 240);
    insert_ok(store, &long, "longest hold: insert").await;
    let last_minute = appointment(&p, &patient_id(), at(719), 5, 0);
    expect_insert(
        store,
        outbox,
        &last_minute,
        "slot_taken",
        "longest hold: a start in its last buffer minute, 11h59 after its start",
    )
    .await;
    let adjacent = appointment(&p, &patient_id(), at(720), 5, 0);
    expect_insert(
        store,
        outbox,
        &adjacent,
        "ok",
        "longest hold: a start at the end of its buffer",
    )
    .await;
}

async fn patient_overlaps(store: &dyn AppointmentStore, outbox: &dyn Outbox) {
    let x = patient_id();
    // The patient is busy over [10:00, 10:30); the provider's buffer is not the patient's.
    let base = appointment(&provider_id(), &x, at(600), 30, 30);
    insert_ok(store, &base, "patient overlaps: the first appointment").await;

    let refused: [(i64, i64, &str); 5] = [
        (600, 30, "the exact same time"),
        (615, 30, "a later partial overlap"),
        (590, 15, "an earlier partial overlap"),
        (605, 10, "a shorter appointment inside"),
        (570, 120, "a longer appointment around it"),
    ];
    for (start, minutes, case) in refused {
        let a = appointment(&provider_id(), &x, at(start), minutes, 0);
        expect_insert(
            store,
            outbox,
            &a,
            "patient_busy",
            &format!("patient overlaps: {case}"),
        )
        .await;
    }

    let after = appointment(&provider_id(), &x, at(630), 30, 30);
    expect_insert(
        store,
        outbox,
        &after,
        "ok",
        "patient overlaps: adjacent after (the provider's buffer does not hold the patient)",
    )
    .await;
    let before = appointment(&provider_id(), &x, at(570), 30, 30);
    expect_insert(
        store,
        outbox,
        &before,
        "ok",
        "patient overlaps: adjacent before (its own buffer does not hold the patient)",
    )
    .await;

    let y = patient_id();
    let long = appointment(&provider_id(), &y, at(0), 480, 0);
    insert_ok(store, &long, "patient overlaps: the longest appointment").await;
    let last_minute = appointment(&provider_id(), &y, at(479), 5, 0);
    expect_insert(
        store,
        outbox,
        &last_minute,
        "patient_busy",
        "patient overlaps: a start in the last minute of the longest appointment",
    )
    .await;
    let adjacent = appointment(&provider_id(), &y, at(480), 5, 0);
    expect_insert(
        store,
        outbox,
        &adjacent,
        "ok",
        "patient overlaps: a start at the end of the longest appointment",
    )
    .await;
}

async fn provider_is_checked_first(store: &dyn AppointmentStore, outbox: &dyn Outbox) {
    let (p, x) = (provider_id(), patient_id());
    let a = appointment(&p, &x, at(600), 30, 0);
    insert_ok(store, &a, "provider first: insert").await;
    let same = appointment(&p, &x, at(600), 30, 0);
    expect_insert(
        store,
        outbox,
        &same,
        "slot_taken",
        "provider first: same provider and patient, same time",
    )
    .await;
    let partial = appointment(&p, &x, at(615), 30, 0);
    expect_insert(
        store,
        outbox,
        &partial,
        "slot_taken",
        "provider first: same provider and patient, overlapping",
    )
    .await;
}

async fn current_buffer(store: &dyn AppointmentStore, outbox: &dyn Outbox) {
    let (p, x) = (provider_id(), patient_id());
    // Booked when the provider had no buffer: 10:00–10:30, held until 10:30.
    let a = appointment(&p, &x, at(600), 30, 0);
    insert_ok(store, &a, "current buffer: insert without a buffer").await;
    // The provider's buffer is 15 minutes now: 10:30 is within 15 minutes of
    // the earlier appointment's end, 10:45 is not.
    let right_after = appointment(&p, &patient_id(), at(630), 30, 15);
    expect_insert(
        store,
        outbox,
        &right_after,
        "slot_taken",
        "current buffer: the new buffer after the earlier end",
    )
    .await;
    let one_buffer_later = appointment(&p, &patient_id(), at(645), 30, 15);
    expect_insert(
        store,
        outbox,
        &one_buffer_later,
        "ok",
        "current buffer: one buffer after the earlier end",
    )
    .await;
    // An update is checked against the holds alone: confirming the earlier
    // appointment (no buffer) beside the later one (15 minutes) is allowed.
    let b = appointment(&p, &patient_id(), at(720), 30, 15);
    insert_ok(
        store,
        &b,
        "current buffer: a later appointment with a buffer",
    )
    .await;
    let before_b = appointment(&p, &patient_id(), at(690), 30, 0);
    insert_ok(
        store,
        &before_b,
        "current buffer: no buffer of its own, right before the later one",
    )
    .await;
    let now = before_b.updated_at + SignedDuration::from_millis(1);
    let cita_core::booking::Confirmation::Applies(confirmed) =
        before_b.confirm(before_b.version, now)
    else {
        panic!("a pending appointment confirms");
    };
    expect_update(
        store,
        outbox,
        &confirmed,
        before_b.version,
        None,
        "ok",
        "current buffer: confirming is checked against the holds alone",
    )
    .await;
    // Before it, the new buffer runs into the earlier start either way.
    let before = appointment(&p, &patient_id(), at(570), 30, 15);
    expect_insert(
        store,
        outbox,
        &before,
        "slot_taken",
        "current buffer: the new buffer into the earlier start",
    )
    .await;
}

async fn cancelled_appointments_block_nothing(store: &dyn AppointmentStore, outbox: &dyn Outbox) {
    let (p, x) = (provider_id(), patient_id());
    let a = appointment(&p, &x, at(600), 30, 10);
    insert_ok(store, &a, "cancelled: insert").await;
    let a_cancelled = cancelled(&a, None);
    expect_update(
        store,
        outbox,
        &a_cancelled,
        a.version,
        Some(EventType::Cancelled),
        "ok",
        "cancelled: cancel",
    )
    .await;
    let b = appointment(&p, &x, at(600), 30, 10);
    expect_insert(
        store,
        outbox,
        &b,
        "ok",
        "cancelled: the same provider and patient book the cancelled time",
    )
    .await;

    // Updating a cancelled appointment is not checked for overlaps: it holds no time.
    let again = Appointment {
        cancel_reason: Some(CancelReason::parse("later note").expect("valid")),
        version: a_cancelled.version.next(),
        updated_at: a_cancelled.updated_at + SignedDuration::from_millis(1),
        ..a_cancelled.clone()
    };
    expect_update(
        store,
        outbox,
        &again,
        a_cancelled.version,
        None,
        "ok",
        "cancelled: updating a cancelled appointment whose time is taken",
    )
    .await;

    // Rescheduling onto a cancelled appointment's time.
    let c = appointment(&p, &patient_id(), at(700), 30, 0);
    insert_ok(store, &c, "cancelled: second insert").await;
    expect_update(
        store,
        outbox,
        &cancelled(&c, Some("no")),
        c.version,
        Some(EventType::Cancelled),
        "ok",
        "cancelled: cancel the second",
    )
    .await;
    let d = appointment(&p, &patient_id(), at(800), 30, 0);
    insert_ok(store, &d, "cancelled: third insert").await;
    expect_update(
        store,
        outbox,
        &moved(&d, at(700), 30, 0),
        d.version,
        Some(EventType::Rescheduled),
        "ok",
        "cancelled: reschedule onto a cancelled appointment's time",
    )
    .await;
}

async fn rescheduling(store: &dyn AppointmentStore, outbox: &dyn Outbox) {
    let (p, x) = (provider_id(), patient_id());
    let a = appointment(&p, &x, at(600), 30, 10);
    insert_ok(store, &a, "reschedule: insert").await;
    let b = appointment(&p, &patient_id(), at(700), 30, 0);
    insert_ok(store, &b, "reschedule: provider's other appointment").await;
    let c = appointment(&provider_id(), &x, at(800), 30, 0);
    insert_ok(store, &c, "reschedule: patient's other appointment").await;

    let a1 = moved(&a, at(615), 30, 10);
    expect_update(
        store,
        outbox,
        &a1,
        a.version,
        Some(EventType::Rescheduled),
        "ok",
        "reschedule: overlapping its own old time",
    )
    .await;
    let a1c = confirmed(&a1);
    expect_update(
        store,
        outbox,
        &a1c,
        a1.version,
        None,
        "ok",
        "reschedule: a confirmation in its own slot, without an event",
    )
    .await;
    let a2 = moved(&a1c, at(615), 30, 10);
    expect_update(
        store,
        outbox,
        &a2,
        a1c.version,
        Some(EventType::Rescheduled),
        "ok",
        "reschedule: within its own slot",
    )
    .await;

    expect_update(
        store,
        outbox,
        &moved(&a2, at(690), 30, 10),
        a2.version,
        Some(EventType::Rescheduled),
        "slot_taken",
        "reschedule: onto the provider's other appointment",
    )
    .await;
    expect_update(
        store,
        outbox,
        &moved(&a2, at(665), 30, 10),
        a2.version,
        Some(EventType::Rescheduled),
        "slot_taken",
        "reschedule: its new buffer reaching the provider's other appointment",
    )
    .await;
    expect_update(
        store,
        outbox,
        &moved(&a2, at(810), 30, 0),
        a2.version,
        Some(EventType::Rescheduled),
        "patient_busy",
        "reschedule: onto the patient's other appointment",
    )
    .await;

    let a3 = moved(&a2, at(740), 30, 0);
    expect_update(
        store,
        outbox,
        &a3,
        a2.version,
        Some(EventType::Rescheduled),
        "ok",
        "reschedule: to a free time",
    )
    .await;
    let taker = appointment(&p, &x, at(615), 30, 10);
    expect_insert(
        store,
        outbox,
        &taker,
        "ok",
        "reschedule: the old time is free after the move",
    )
    .await;
}

async fn version_checks(store: &dyn AppointmentStore, outbox: &dyn Outbox) {
    let a = appointment(&provider_id(), &patient_id(), at(600), 30, 0);
    insert_ok(store, &a, "versions: insert").await;
    let a2 = moved(&a, at(660), 30, 0);
    expect_update(
        store,
        outbox,
        &a2,
        Version::FIRST.next(),
        Some(EventType::Rescheduled),
        "version_conflict",
        "versions: an expected version ahead of the stored one",
    )
    .await;
    expect_update(
        store,
        outbox,
        &a2,
        a.version,
        Some(EventType::Rescheduled),
        "ok",
        "versions: the right expected version",
    )
    .await;
    expect_update(
        store,
        outbox,
        &moved(&a, at(720), 30, 0),
        a.version,
        Some(EventType::Rescheduled),
        "version_conflict",
        "versions: a stale expected version",
    )
    .await;
    expect_update(
        store,
        outbox,
        &cancelled(&a, None),
        a.version,
        None,
        "version_conflict",
        "versions: a stale expected version without an event",
    )
    .await;

    let missing = appointment(&provider_id(), &patient_id(), at(600), 30, 0);
    expect_update(
        store,
        outbox,
        &missing,
        missing.version,
        Some(EventType::Rescheduled),
        "version_conflict",
        "versions: an appointment that does not exist",
    )
    .await;
    assert_eq!(
        get(store, missing.id).await,
        None,
        "versions: updating a missing appointment does not create it"
    );
}

async fn active_in_range(store: &dyn AppointmentStore) {
    let p = provider_id();
    let x = patient_id();
    let new = |start, minutes| appointment(&p, &patient_id(), at(start), minutes, 0);
    // Inserted out of order; the answer is ordered by start.
    let d = new(660, 60); // [11:00, 12:00)
    let b = new(540, 30); // [09:00, 09:30)
    let long = new(0, 480); // [00:00, 08:00)
    let a = appointment(&p, &x, at(480), 30, 0); // [08:00, 08:30)
    let c = new(600, 30); // [10:00, 10:30), cancelled below
    let r = new(800, 30); // rescheduled to [15:00, 15:30) below
    for appt in [&d, &b, &long, &a, &c, &r] {
        insert_ok(store, appt, "active_in_range: insert").await;
    }
    let c2 = cancelled(&c, None);
    store
        .update(&c2, c.version, Some(&event(EventType::Cancelled, &c2)))
        .await
        .expect("cancel succeeds");
    let r2 = moved(&r, at(900), 30, 0);
    store
        .update(&r2, r.version, Some(&event(EventType::Rescheduled, &r2)))
        .await
        .expect("reschedule succeeds");
    // Another provider at the same times, and a patient's appointment elsewhere.
    insert_ok(
        store,
        &appointment(&provider_id(), &patient_id(), at(540), 30, 0),
        "active_in_range: other provider",
    )
    .await;
    insert_ok(
        store,
        &appointment(&provider_id(), &x, at(540), 30, 0),
        "active_in_range: the patient elsewhere",
    )
    .await;

    let cases: [(i64, i64, Vec<&Appointment>, &str); 8] = [
        (
            510,
            660,
            vec![&b],
            "[08:30, 11:00): one ending at `from` and one starting at `until` are out, cancelled is out",
        ),
        (509, 661, vec![&a, &b, &d], "[08:29, 11:01)"),
        (
            479,
            481,
            vec![&long, &a],
            "[07:59, 08:01): one that started 8 hours before `from`",
        ),
        (0, 1440, vec![&long, &a, &b, &d, &r2], "the whole day"),
        (600, 630, vec![], "only a cancelled appointment"),
        (800, 830, vec![], "a rescheduled appointment's old time"),
        (900, 901, vec![&r2], "a rescheduled appointment's new time"),
        (720, 800, vec![], "a free range"),
    ];
    for (from, until, expected, case) in cases {
        let got = store
            .active_in_range(&p, at(from), at(until))
            .await
            .expect("active_in_range succeeds");
        let expected: Vec<Appointment> = expected.into_iter().cloned().collect();
        assert_eq!(got, expected, "active_in_range: {case}");
    }
    let other = store
        .active_in_range(&provider_id(), at(0), at(1440))
        .await
        .expect("active_in_range succeeds");
    assert!(
        other.is_empty(),
        "active_in_range: an unknown provider has none"
    );
}

fn query(
    patient: Option<&PatientId>,
    provider: Option<&ProviderId>,
    limit: usize,
) -> AppointmentQuery {
    AppointmentQuery::new(patient.cloned(), provider.cloned(), limit).expect("an owner is given")
}

async fn list(store: &dyn AppointmentStore, q: &AppointmentQuery) -> Vec<Appointment> {
    store.list(q).await.expect("list succeeds")
}

async fn listing(store: &dyn AppointmentStore) {
    let (p, q) = (provider_id(), provider_id());
    let (x, y) = (patient_id(), patient_id());

    // Two appointments of `p` at 10:00 (one cancelled): the one with the
    // smaller id is inserted second, so only an order by id puts it first.
    let (lo, hi) = {
        let (i, j) = (AppointmentId::new(), AppointmentId::new());
        (i.min(j), i.max(j))
    };
    let a1 = Appointment {
        id: hi,
        ..appointment(&p, &x, at(600), 30, 0)
    };
    insert_ok(store, &a1, "listing: a1").await;
    let a1 = {
        let c = cancelled(&a1, Some("x"));
        store
            .update(&c, a1.version, Some(&event(EventType::Cancelled, &c)))
            .await
            .expect("cancel succeeds");
        c
    };
    let a2 = Appointment {
        id: lo,
        ..appointment(&p, &y, at(600), 30, 0)
    };
    insert_ok(store, &a2, "listing: a2").await;
    let a3 = appointment(&p, &x, at(700), 30, 0);
    insert_ok(store, &a3, "listing: a3").await;
    let a3 = {
        let c = confirmed(&a3);
        store
            .update(&c, a3.version, None)
            .await
            .expect("confirm succeeds");
        c
    };
    let a4 = appointment(&q, &x, at(650), 30, 0);
    let a5 = appointment(&p, &y, at(800), 30, 0);
    let a6 = appointment(&q, &y, at(900), 30, 0);
    let a7 = appointment(&p, &x, at(1000), 60, 0);
    for a in [&a7, &a6, &a5, &a4] {
        insert_ok(store, a, "listing: insert").await;
    }

    let by_p = query(None, Some(&p), 100);
    let with = |f: &dyn Fn(&mut AppointmentQuery)| {
        let mut q = by_p.clone();
        f(&mut q);
        q
    };
    let cases: Vec<(AppointmentQuery, Vec<&Appointment>, &str)> = vec![
        (
            by_p.clone(),
            vec![&a2, &a1, &a3, &a5, &a7],
            "a provider's, by start then id, cancelled included",
        ),
        (
            query(Some(&x), None, 100),
            vec![&a1, &a4, &a3, &a7],
            "a patient's, across providers",
        ),
        (
            query(Some(&x), Some(&p), 100),
            vec![&a1, &a3, &a7],
            "a patient's with a provider",
        ),
        (
            query(None, Some(&q), 100),
            vec![&a4, &a6],
            "another provider's",
        ),
        (
            query(Some(&patient_id()), None, 100),
            vec![],
            "an unknown patient's",
        ),
        (
            with(&|q| q.from = Some(at(700))),
            vec![&a3, &a5, &a7],
            "from (inclusive)",
        ),
        (
            with(&|q| q.until = Some(at(800))),
            vec![&a2, &a1, &a3],
            "until (exclusive)",
        ),
        (
            with(&|q| {
                q.from = Some(at(600));
                q.until = Some(at(700));
            }),
            vec![&a2, &a1],
            "from and until",
        ),
        (
            with(&|q| q.status = Some(AppointmentStatus::Cancelled)),
            vec![&a1],
            "status cancelled",
        ),
        (
            with(&|q| q.status = Some(AppointmentStatus::Pending)),
            vec![&a2, &a5, &a7],
            "status pending",
        ),
        (
            with(&|q| q.status = Some(AppointmentStatus::Confirmed)),
            vec![&a3],
            "status confirmed",
        ),
        (
            with(&|q| q.after = Some((at(600), lo))),
            vec![&a1, &a3, &a5, &a7],
            "after the first of two equal starts",
        ),
        (
            with(&|q| q.after = Some((at(600), hi))),
            vec![&a3, &a5, &a7],
            "after the second of two equal starts",
        ),
        (
            with(&|q| q.after = Some((at(650), AppointmentId::new()))),
            vec![&a3, &a5, &a7],
            "after a position between appointments",
        ),
        (
            with(&|q| {
                q.after = Some((at(600), lo));
                q.from = Some(at(700));
            }),
            vec![&a3, &a5, &a7],
            "after, with a later from",
        ),
        (
            with(&|q| {
                q.after = Some((a3.start, a3.id));
                q.from = Some(at(600));
            }),
            vec![&a5, &a7],
            "after, with an earlier from",
        ),
        (
            with(&|q| {
                q.after = Some((at(600), lo));
                q.until = Some(at(800));
                q.status = Some(AppointmentStatus::Cancelled);
            }),
            vec![&a1],
            "after, until and status together",
        ),
        (with(&|q| q.limit = 2), vec![&a2, &a1], "limit"),
        (with(&|q| q.limit = 0), vec![], "limit 0"),
        (
            {
                let mut q = query(Some(&x), None, 1);
                q.status = Some(AppointmentStatus::Pending);
                q
            },
            vec![&a4],
            "a patient's pending, limit 1",
        ),
    ];
    for (q, expected, case) in cases {
        let expected: Vec<Appointment> = expected.into_iter().cloned().collect();
        assert_eq!(list(store, &q).await, expected, "listing: {case}");
    }

    // Paging with `after` = the last item reproduces the whole listing.
    let mut paged = Vec::new();
    let mut page_q = with(&|q| q.limit = 2);
    loop {
        let page = list(store, &page_q).await;
        let Some(last) = page.last() else { break };
        page_q.after = Some((last.start, last.id));
        let n = page.len();
        paged.extend(page);
        assert!(paged.len() <= 5, "listing: paging terminates");
        if n < 2 {
            break;
        }
    }
    assert_eq!(
        paged,
        vec![a2, a1, a3, a5, a7],
        "listing: pages of 2 make up the whole listing"
    );
}

async fn racing_inserts_of_one_slot(store: &Arc<dyn AppointmentStore>, outbox: &dyn Outbox) {
    let p = provider_id();
    let candidates: Vec<_> = (0..RACERS)
        .map(|_| appointment(&p, &patient_id(), at(600), 30, 0))
        .collect();
    let results = race(store, &candidates).await;
    assert_eq!(
        tally(&results),
        vec![("ok".to_owned(), 1), ("slot_taken".to_owned(), RACERS - 1)],
        "race on one slot: exactly one insert wins, every other is SlotTaken"
    );
    check_only_winner_written(
        store.as_ref(),
        outbox,
        &candidates,
        &results,
        "race on one slot",
    )
    .await;
    let listed = list(store.as_ref(), &query(None, Some(&p), 100)).await;
    assert_eq!(
        listed.len(),
        1,
        "race on one slot: the provider has one appointment"
    );
}

async fn racing_inserts_of_one_patient(store: &Arc<dyn AppointmentStore>, outbox: &dyn Outbox) {
    let x = patient_id();
    let candidates: Vec<_> = (0..RACERS)
        .map(|i| {
            // Different providers and overlapping (not equal) times.
            let start = i64::try_from(i % 20).unwrap_or(0);
            appointment(&provider_id(), &x, at(600 + start), 30, 0)
        })
        .collect();
    let results = race(store, &candidates).await;
    assert_eq!(
        tally(&results),
        vec![
            ("ok".to_owned(), 1),
            ("patient_busy".to_owned(), RACERS - 1)
        ],
        "race on one patient: exactly one insert wins, every other is PatientBusy"
    );
    check_only_winner_written(
        store.as_ref(),
        outbox,
        &candidates,
        &results,
        "race on one patient",
    )
    .await;
}

async fn racing_inserts_of_one_provider_and_patient(
    store: &Arc<dyn AppointmentStore>,
    outbox: &dyn Outbox,
) {
    let (p, x) = (provider_id(), patient_id());
    let candidates: Vec<_> = (0..RACERS)
        .map(|_| appointment(&p, &x, at(600), 30, 0))
        .collect();
    let results = race(store, &candidates).await;
    assert_eq!(
        tally(&results),
        vec![("ok".to_owned(), 1), ("slot_taken".to_owned(), RACERS - 1)],
        "race on one provider and patient: exactly one insert wins, every other is \
         SlotTaken (the provider is checked first)"
    );
    check_only_winner_written(
        store.as_ref(),
        outbox,
        &candidates,
        &results,
        "race on one provider and patient",
    )
    .await;
}

async fn racing_refusals_say_why(store: &Arc<dyn AppointmentStore>, outbox: &dyn Outbox) {
    let (p, x) = (provider_id(), patient_id());
    let booked = appointment(&p, &x, at(600), 30, 0);
    insert_ok(store.as_ref(), &booked, "racing refusals: insert").await;
    let (candidates, expected): (Vec<_>, Vec<_>) = (0..RACERS)
        .map(|i| match i % 4 {
            0 => (appointment(&p, &patient_id(), at(610), 30, 0), "slot_taken"),
            1 => (
                appointment(&provider_id(), &x, at(610), 30, 0),
                "patient_busy",
            ),
            2 => (appointment(&p, &x, at(615), 30, 0), "slot_taken"),
            _ => (
                appointment(&provider_id(), &patient_id(), at(600), 30, 0),
                "ok",
            ),
        })
        .unzip();
    let results = race(store, &candidates).await;
    let answers: Vec<&str> = results.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        answers, expected,
        "racing refusals: each insert is answered for its own clash (provider only, \
         patient only, both, none, in turn)"
    );
    check_only_winner_written(
        store.as_ref(),
        outbox,
        &candidates,
        &results,
        "racing refusals",
    )
    .await;
}

/// Inserts every candidate concurrently, each from its own task.
async fn race(
    store: &Arc<dyn AppointmentStore>,
    candidates: &[Appointment],
) -> Vec<(String, EventEnvelope)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(candidates.len()));
    let tasks: Vec<_> = candidates
        .iter()
        .cloned()
        .map(|a| {
            let store = Arc::clone(store);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let ev = event(EventType::Requested, &a);
                barrier.wait().await;
                let r = store.insert(&a, &ev).await;
                (kind(&r), ev)
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await.expect("racing task does not panic"));
    }
    results
}

/// How many results of each kind, sorted by kind.
fn tally(results: &[(String, EventEnvelope)]) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (k, _) in results {
        *counts.entry(k.clone()).or_default() += 1;
    }
    counts.into_iter().collect()
}

async fn check_only_winner_written(
    store: &dyn AppointmentStore,
    outbox: &dyn Outbox,
    candidates: &[Appointment],
    results: &[(String, EventEnvelope)],
    case: &str,
) {
    let pending = pending_events(outbox).await;
    for (a, (k, ev)) in candidates.iter().zip(results) {
        let won = k == "ok";
        assert_eq!(
            get(store, a.id).await.is_some(),
            won,
            "{case}: only the winner's appointment is stored"
        );
        assert_eq!(
            pending.contains(&ev.event_id),
            won,
            "{case}: only the winner's event is in the outbox"
        );
    }
}
