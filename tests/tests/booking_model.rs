//! Booking against a reference model.
//!
//! A proptest state machine runs random sequences of set-provider, book
//! (with and without idempotency keys), reschedule, cancel, confirm and
//! clock moves against a whole in-memory Cita and against a small reference
//! model written from API.md / ARCHITECTURE.md / EVENTS.md, and compares
//! every answer, the whole appointment table, the invariants (no provider or
//! patient overlaps, versions only move up) and the outbox after every step.
//!
//! Then: races of many concurrent bookings for one slot (with and without the
//! slot lock), and the in-memory pipeline end to end (country stores,
//! confirmations, stale confirmations).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock};

use cita_adapters::clock::ManualClock;
use cita_adapters::memory::{
    InMemoryAppointmentStore, InMemoryCita, InMemoryIdempotencyStore, InMemoryProviderStore,
};
use cita_adapters::pipeline::{InboxWorker, Shutdown, Step, Worker as _};
use cita_core::booking::{
    Appointment, AppointmentStatus, AppointmentStore, BookError, BookRequest, BookingService,
    CancelError, CancelReason, CancelRequest, ConfirmError, IdempotencyKey, Notes, Replay,
    RescheduleError, RescheduleRequest, SetProviderError,
};
use cita_core::clock::Clock;
use cita_core::country::{ConfirmOutcome, CountryStore};
use cita_core::events::{AppointmentSnapshot, EventEnvelope, EventType, Outbox};
use cita_core::ids::{AppointmentId, PatientId, ProviderId, Version};
use cita_core::providers::{ProviderDraft, ProviderName};
use cita_core::routing::{CountryCode, CountryRouter};
use cita_core::slots::{
    BufferMinutes, DayHours, HorizonDays, LocalInterval, NoticeMinutes, Schedule, SlotMinutes,
    WEEKDAYS, WallTime, Zone,
};
use jiff::civil::{Date, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------
// The world every case starts from
// ---------------------------------------------------------------------------

/// Monday 2026-11-23, 07:00 in Lima (UTC-5 all year).
const T0: &str = "2026-11-23T12:00:00Z";
const LIMA: &str = "America/Lima";
const FIRST_DAY: Date = date(2026, 11, 23);
/// Provider ids; only the first `SETTABLE` are ever set, so the last one is
/// always unknown.
const PROVIDERS: [&str; 4] = ["p0", "p1", "p2", "p3"];
const SETTABLE: usize = 3;
const PATIENTS: [&str; 3] = ["ana", "beto", "cira"];
const KEYS: [&str; 3] = ["k0", "k1", "k2"];
/// `None` and `Some("")` are different requests (different JSON bodies).
const NOTES: [Option<&str>; 3] = [None, Some(""), Some("hola")];
/// Working hours every day, minutes of the local day: 08:00–12:00, 13:00–17:00.
const HOURS: [(u16, u16); 2] = [(8 * 60, 12 * 60), (13 * 60, 17 * 60)];
/// How long an idempotent answer is replayed (API.md: 24 h).
const IDEMPOTENCY_TTL: SignedDuration = SignedDuration::from_hours(24);

static LIMA_TZ: LazyLock<TimeZone> =
    LazyLock::new(|| TimeZone::get(LIMA).expect("Lima is in the bundled database"));

fn t0() -> Timestamp {
    T0.parse().expect("an RFC 3339 instant")
}

fn mins(m: u32) -> SignedDuration {
    SignedDuration::from_mins(i64::from(m))
}

fn ar() -> CountryCode {
    CountryCode::parse("AR").expect("an assigned code")
}

fn version(v: u64) -> Version {
    Version::new(v).expect("versions start at 1")
}

fn wall(minute: u16) -> WallTime {
    WallTime::from_hm(minute / 60, minute % 60).expect("a time of day")
}

/// A schedule in `zone` working [`HOURS`] every day.
fn schedule(zone: &str, slot: u32, buffer: u32, notice: u32, horizon: u32) -> Schedule {
    let hours = DayHours::new(
        HOURS
            .iter()
            .map(|&(a, b)| LocalInterval::new(wall(a), wall(b)).expect("start before end"))
            .collect(),
    )
    .expect("no overlaps");
    let mut s = Schedule::new(Zone::parse(zone).expect("a bundled zone"));
    s.slot = SlotMinutes::new(slot).expect("in range");
    s.buffer = BufferMinutes::new(buffer).expect("in range");
    s.min_notice = NoticeMinutes::new(notice).expect("in range");
    s.horizon = HorizonDays::new(horizon).expect("in range");
    for day in WEEKDAYS {
        s.weekly.set(day, hours.clone());
    }
    s
}

fn draft(name: &str, country: CountryCode, schedule: Schedule) -> ProviderDraft {
    ProviderDraft {
        name: ProviderName::parse(name).expect("a valid name"),
        country,
        schedule,
    }
}

/// A local wall-clock time in `tz`, `day` days after [`FIRST_DAY`].
fn local(tz: &TimeZone, day: u8, minute: u16) -> Timestamp {
    let d = FIRST_DAY
        .checked_add(i64::from(day).days())
        .expect("a date in range");
    let h = i8::try_from(minute / 60).expect("an hour");
    let m = i8::try_from(minute % 60).expect("a minute");
    d.at(h, m, 0, 0)
        .to_zoned(tz.clone())
        .expect("a representable instant")
        .timestamp()
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// A candidate start: a local time in Lima `day` days after 2026-11-23.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Cand {
    day: u8,
    minute: u16,
}

impl Cand {
    fn at(self) -> Timestamp {
        local(&LIMA_TZ, self.day, self.minute)
    }
}

impl fmt::Debug for Cand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "d{}@{:02}:{:02}",
            self.day,
            self.minute / 60,
            self.minute % 60
        )
    }
}

/// An appointment an operation acts on: the n-th the model knows (modulo
/// how many there are), or an id nobody has.
#[derive(Debug, Clone, Copy)]
enum Target {
    Nth(usize),
    Unknown,
}

/// The version a caller sends, relative to the appointment's current one.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Any,
    Current,
    Older,
    Newer,
}

impl Expect {
    fn resolve(self, current: u64) -> Option<u64> {
        match self {
            Self::Any => None,
            Self::Current => Some(current),
            // At version 1 nothing is older: send a wrong version anyway.
            Self::Older if current > 1 => Some(current - 1),
            Self::Older => Some(current + 2),
            Self::Newer => Some(current + 1),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum NewStart {
    /// The start the appointment already has.
    Same,
    At(Cand),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct BookOp {
    provider: usize,
    patient: usize,
    start: Cand,
    country: Option<CountryCode>,
    notes: usize,
    key: Option<usize>,
}

#[derive(Debug, Clone)]
enum Op {
    SetProvider {
        provider: usize,
        country: CountryCode,
        slot: u32,
        buffer: u32,
        notice: u32,
        horizon: u32,
    },
    Book(BookOp),
    /// Sends an earlier `Book` again, key and all (index modulo how many).
    RepeatBook(usize),
    Reschedule {
        target: Target,
        start: NewStart,
        expected: Expect,
    },
    Cancel {
        target: Target,
        reason: bool,
        expected: Expect,
    },
    Confirm {
        target: Target,
        version: Expect,
    },
    Advance(u32),
}

fn cand() -> impl Strategy<Value = Cand> {
    let hm = |h: u16, m: u16| h * 60 + m;
    let day = prop_oneof![
        2 => Just(0u8),
        10 => Just(1u8),
        1 => Just(2u8),
        // Around the 30-day horizon: 2026-12-23 08:00 Lima is 1 h past it at T0.
        1 => Just(30u8),
        1 => Just(31u8),
    ];
    // Dense early-morning starts, on the grid of every slot length (08:00)
    // or of some only, so bookings clash often (also partially, through
    // different lengths and buffers); plus interval edges, starts whose slot
    // would cross an edge, the lunch gap and off-grid starts. Repeats in a
    // list weight the choice.
    let dense = select(vec![
        hm(8, 0),
        hm(8, 0),
        hm(8, 0),
        hm(8, 30),
        hm(8, 30),
        hm(9, 0),
        hm(9, 0),
        hm(8, 15),
        hm(8, 30),
        hm(8, 45),
        hm(9, 0),
        hm(9, 15),
        hm(9, 30),
        hm(9, 45),
        hm(10, 0),
    ]);
    let other = select(vec![
        hm(7, 45),
        hm(8, 5),
        hm(8, 10),
        hm(10, 15),
        hm(11, 0),
        hm(11, 15),
        hm(11, 30),
        hm(11, 45),
        hm(12, 0),
        hm(12, 45),
        hm(13, 0),
        hm(13, 45),
        hm(14, 30),
        hm(16, 0),
        hm(16, 15),
        hm(16, 30),
        hm(16, 45),
        hm(17, 0),
    ]);
    (day, prop_oneof![5 => dense, 1 => other]).prop_map(|(day, minute)| Cand { day, minute })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![8 => (0usize..64).prop_map(Target::Nth), 1 => Just(Target::Unknown)]
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        3 => Just(Expect::Any),
        3 => Just(Expect::Current),
        1 => Just(Expect::Older),
        1 => Just(Expect::Newer),
    ]
}

/// Sets one of the providers: Lima, 08:00–12:00 and 13:00–17:00 every day,
/// a random slot length and buffer, mostly no notice and a 30-day horizon.
fn set_provider(
    provider: impl Strategy<Value = usize>,
    country: impl Strategy<Value = CountryCode>,
) -> impl Strategy<Value = Op> {
    (
        provider,
        country,
        select(vec![15u32, 30, 45, 60]),
        select(vec![0u32, 10, 15]),
        prop_oneof![3 => Just(0u32), 1 => Just(60u32)],
        prop_oneof![4 => Just(30u32), 1 => Just(1u32)],
    )
        .prop_map(
            |(provider, country, slot, buffer, notice, horizon)| Op::SetProvider {
                provider,
                country,
                slot,
                buffer,
                notice,
                horizon,
            },
        )
}

/// A sequence: most providers are set first (each of those steps shrinks
/// away on its own), then up to 40 random operations.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let served = || prop_oneof![2 => Just(CountryCode::PE), 1 => Just(CountryCode::CL)];
    let setup: Vec<_> = (0..SETTABLE)
        .map(|p| proptest::option::weighted(0.9, set_provider(Just(p), served())))
        .collect();
    (setup, proptest::collection::vec(op(), 1..=40))
        .prop_map(|(setup, body)| setup.into_iter().flatten().chain(body).collect())
}

fn op() -> impl Strategy<Value = Op> {
    let country = prop_oneof![
        4 => Just(CountryCode::PE),
        2 => Just(CountryCode::CL),
        1 => Just(ar()),
    ];
    let set = set_provider(0..SETTABLE, country);
    let book = (
        // p0 is the busiest; p3 is never set.
        prop_oneof![4 => Just(0usize), 4 => 1..SETTABLE, 1 => Just(SETTABLE)],
        0..PATIENTS.len(),
        cand(),
        prop_oneof![
            6 => Just(None),
            1 => Just(Some(CountryCode::PE)),
            1 => Just(Some(CountryCode::CL)),
        ],
        prop_oneof![4 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)],
        prop_oneof![3 => Just(None), 1 => (0..KEYS.len()).prop_map(Some)],
    )
        .prop_map(|(provider, patient, start, country, notes, key)| {
            Op::Book(BookOp {
                provider,
                patient,
                start,
                country,
                notes,
                key,
            })
        });
    let reschedule = (
        target(),
        prop_oneof![1 => Just(NewStart::Same), 5 => cand().prop_map(NewStart::At)],
        expect(),
    )
        .prop_map(|(target, start, expected)| Op::Reschedule {
            target,
            start,
            expected,
        });
    let cancel =
        (target(), any::<bool>(), expect()).prop_map(|(target, reason, expected)| Op::Cancel {
            target,
            reason,
            expected,
        });
    let confirm = (
        target(),
        prop_oneof![
            3 => Just(Expect::Current),
            1 => Just(Expect::Older),
            1 => Just(Expect::Newer),
        ],
    )
        .prop_map(|(target, version)| Op::Confirm { target, version });
    let advance = prop_oneof![
        4 => select(vec![1u32, 10, 30, 60]),
        1 => select(vec![240u32, 720, 1440]),
    ]
    .prop_map(Op::Advance);
    prop_oneof![
        2 => set,
        6 => book,
        1 => (0usize..64).prop_map(Op::RepeatBook),
        3 => reschedule,
        2 => cancel,
        2 => confirm,
        1 => advance,
    ]
}

// ---------------------------------------------------------------------------
// What is compared
// ---------------------------------------------------------------------------

/// An answer reduced to what the contract fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Code {
    ProviderNotFound,
    CountryNotServed(CountryCode),
    CountryMismatch {
        provider: CountryCode,
        given: CountryCode,
    },
    SlotNotOffered,
    TooSoon(Timestamp),
    TooFar(Timestamp),
    SlotTaken,
    PatientBusy,
    IdempotencyKeyReused,
    NotFound,
    Cancelled,
    VersionMismatch(u64),
    Other(String),
}

fn book_code(e: &BookError) -> Code {
    match e {
        BookError::ProviderNotFound => Code::ProviderNotFound,
        BookError::CountryNotServed(c) => Code::CountryNotServed(*c),
        BookError::CountryMismatch { provider, given } => Code::CountryMismatch {
            provider: *provider,
            given: *given,
        },
        BookError::SlotNotOffered => Code::SlotNotOffered,
        BookError::TooSoon { earliest } => Code::TooSoon(*earliest),
        BookError::TooFar { latest } => Code::TooFar(*latest),
        BookError::SlotTaken => Code::SlotTaken,
        BookError::PatientBusy => Code::PatientBusy,
        BookError::IdempotencyKeyReused => Code::IdempotencyKeyReused,
        other => Code::Other(format!("{other:?}")),
    }
}

fn reschedule_code(e: &RescheduleError) -> Code {
    match e {
        RescheduleError::NotFound => Code::NotFound,
        RescheduleError::Cancelled => Code::Cancelled,
        RescheduleError::VersionMismatch { current } => Code::VersionMismatch(current.get()),
        RescheduleError::ProviderNotFound => Code::ProviderNotFound,
        RescheduleError::CountryNotServed(c) => Code::CountryNotServed(*c),
        RescheduleError::SlotNotOffered => Code::SlotNotOffered,
        RescheduleError::TooSoon { earliest } => Code::TooSoon(*earliest),
        RescheduleError::TooFar { latest } => Code::TooFar(*latest),
        RescheduleError::SlotTaken => Code::SlotTaken,
        RescheduleError::PatientBusy => Code::PatientBusy,
        other => Code::Other(format!("{other:?}")),
    }
}

fn cancel_code(e: &CancelError) -> Code {
    match e {
        CancelError::NotFound => Code::NotFound,
        CancelError::VersionMismatch { current } => Code::VersionMismatch(current.get()),
        other => Code::Other(format!("{other:?}")),
    }
}

fn confirm_code(e: &ConfirmError) -> Code {
    match e {
        ConfirmError::NotFound => Code::NotFound,
        other => Code::Other(format!("{other:?}")),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ConfirmObs {
    Confirmed {
        status: AppointmentStatus,
        version: u64,
    },
    AlreadyConfirmed,
    OtherVersion,
    Cancelled,
}

/// One operation's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Obs {
    Provider {
        version: u64,
        created: bool,
    },
    /// `id` only for replays (a fresh booking's id is the system's to choose).
    Booked {
        id: Option<AppointmentId>,
        provider: String,
        patient: String,
        start: Timestamp,
        end: Timestamp,
        status: AppointmentStatus,
        version: u64,
        replayed: bool,
    },
    /// A reschedule's or cancellation's appointment.
    Appointment {
        row: Row,
        changed: bool,
    },
    Confirm(ConfirmObs),
    Refused {
        code: Code,
        replayed: bool,
    },
    Nothing,
}

/// An appointment row reduced to what the contract fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    id: AppointmentId,
    provider: String,
    patient: String,
    country: CountryCode,
    start: Timestamp,
    end: Timestamp,
    buffer: u32,
    status: AppointmentStatus,
    version: u64,
    notes: Option<String>,
    cancel_reason: Option<String>,
}

impl From<&Appointment> for Row {
    fn from(a: &Appointment) -> Self {
        Self {
            id: a.id,
            provider: a.provider_id.to_string(),
            patient: a.patient_id.to_string(),
            country: a.country,
            start: a.start,
            end: a.end,
            buffer: a.buffer.get(),
            status: a.status,
            version: a.version.get(),
            notes: a.notes.as_ref().map(|n| n.as_str().to_owned()),
            cancel_reason: a.cancel_reason.as_ref().map(|r| r.as_str().to_owned()),
        }
    }
}

/// An event as expected: type, appointment, version.
type Ev = (EventType, AppointmentId, u64);

fn sort_events(v: &mut [Ev]) {
    v.sort_by_key(|(t, id, n)| (*id, *n, t.as_str()));
}

// ---------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct MProvider {
    country: CountryCode,
    slot: u32,
    buffer: u32,
    notice: u32,
    horizon: u32,
    version: u64,
}

#[derive(Debug, Clone)]
struct MAppt {
    /// Filled in from the system's answer once booked.
    id: AppointmentId,
    provider: usize,
    patient: usize,
    country: CountryCode,
    start: Timestamp,
    end: Timestamp,
    buffer: u32,
    status: AppointmentStatus,
    version: u64,
    notes: Option<String>,
    cancel_reason: Option<String>,
}

impl MAppt {
    fn active(&self) -> bool {
        self.status != AppointmentStatus::Cancelled
    }

    fn row(&self) -> Row {
        Row {
            id: self.id,
            provider: PROVIDERS[self.provider].to_owned(),
            patient: PATIENTS[self.patient].to_owned(),
            country: self.country,
            start: self.start,
            end: self.end,
            buffer: self.buffer,
            status: self.status,
            version: self.version,
            notes: self.notes.clone(),
            cancel_reason: self.cancel_reason.clone(),
        }
    }
}

/// What makes two booking requests "the same request" (the same JSON body).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestContent {
    provider: usize,
    patient: usize,
    start: Timestamp,
    country: Option<CountryCode>,
    notes: Option<&'static str>,
}

impl From<&BookOp> for RequestContent {
    fn from(b: &BookOp) -> Self {
        Self {
            provider: b.provider,
            patient: b.patient,
            start: b.start.at(),
            country: b.country,
            notes: NOTES[b.notes],
        }
    }
}

/// A booking's answer as remembered: the appointment as it was then.
#[derive(Debug, Clone, Copy)]
struct Booked {
    idx: usize,
    start: Timestamp,
    end: Timestamp,
}

#[derive(Debug, Clone)]
struct KeyRecord {
    request: RequestContent,
    created: Timestamp,
    answer: Result<Booked, Code>,
}

#[derive(Debug)]
struct Model {
    now: Timestamp,
    providers: BTreeMap<usize, MProvider>,
    appts: Vec<MAppt>,
    keys: HashMap<usize, KeyRecord>,
}

impl Model {
    fn new(now: Timestamp) -> Self {
        Self {
            now,
            providers: BTreeMap::new(),
            appts: Vec::new(),
            keys: HashMap::new(),
        }
    }

    fn set_provider(&mut self, op: &Op) -> Result<(u64, bool), Code> {
        let Op::SetProvider {
            provider,
            country,
            slot,
            buffer,
            notice,
            horizon,
        } = *op
        else {
            unreachable!("only called with SetProvider")
        };
        if country != CountryCode::PE && country != CountryCode::CL {
            return Err(Code::CountryNotServed(country));
        }
        let created = !self.providers.contains_key(&provider);
        let version = self.providers.get(&provider).map_or(1, |p| p.version + 1);
        self.providers.insert(
            provider,
            MProvider {
                country,
                slot,
                buffer,
                notice,
                horizon,
                version,
            },
        );
        Ok((version, created))
    }

    /// The grid slot starting at `c`, decided from the hours alone (Lima has
    /// no DST): inside a working interval, a whole number of slots after its
    /// start, and ending by its end.
    fn grid(p: &MProvider, c: Cand) -> Option<(Timestamp, Timestamp)> {
        let m = u32::from(c.minute);
        HOURS
            .iter()
            .any(|&(a, b)| {
                let (a, b) = (u32::from(a), u32::from(b));
                m >= a && (m - a) % p.slot == 0 && m + p.slot <= b
            })
            .then(|| (c.at(), c.at() + mins(p.slot)))
    }

    /// The booking rules after the provider and country checks, in the
    /// documented order; `except` is the appointment being moved.
    fn place(
        &self,
        provider: usize,
        patient: usize,
        c: Cand,
        except: Option<usize>,
    ) -> Result<(Timestamp, Timestamp), Code> {
        let p = &self.providers[&provider];
        let (s, e) = Self::grid(p, c).ok_or(Code::SlotNotOffered)?;
        let earliest = self.now + mins(p.notice);
        if s < earliest {
            return Err(Code::TooSoon(earliest));
        }
        let latest = self.now + SignedDuration::from_hours(24 * i64::from(p.horizon));
        if s > latest {
            return Err(Code::TooFar(latest));
        }
        let cur = mins(p.buffer);
        let others = || {
            self.appts
                .iter()
                .enumerate()
                .filter(move |&(i, a)| Some(i) != except && a.active())
                .map(|(_, a)| a)
        };
        for a in others().filter(|a| a.provider == provider) {
            // What availability shows: the provider's current buffer after
            // both the new slot and the existing appointment.
            let by_availability = a.start < e + cur && s < a.end + cur;
            // What the store refuses: each appointment's own buffer.
            let by_store = a.start < e + cur && s < a.end + mins(a.buffer);
            if by_availability || by_store {
                return Err(Code::SlotTaken);
            }
        }
        if others().any(|a| a.patient == patient && a.start < e && s < a.end) {
            return Err(Code::PatientBusy);
        }
        Ok((s, e))
    }

    fn book_once(&mut self, b: &BookOp) -> Result<Booked, Code> {
        let p = self
            .providers
            .get(&b.provider)
            .ok_or(Code::ProviderNotFound)?;
        if let Some(given) = b.country
            && given != p.country
        {
            return Err(Code::CountryMismatch {
                provider: p.country,
                given,
            });
        }
        let country = p.country;
        let buffer = p.buffer;
        let (start, end) = self.place(b.provider, b.patient, b.start, None)?;
        self.appts.push(MAppt {
            id: AppointmentId::new(),
            provider: b.provider,
            patient: b.patient,
            country,
            start,
            end,
            buffer,
            status: AppointmentStatus::Pending,
            version: 1,
            notes: NOTES[b.notes].map(str::to_owned),
            cancel_reason: None,
        });
        Ok(Booked {
            idx: self.appts.len() - 1,
            start,
            end,
        })
    }

    /// The answer and whether it is a replay.
    fn book(&mut self, b: &BookOp) -> (Result<Booked, Code>, bool) {
        let Some(key) = b.key else {
            return (self.book_once(b), false);
        };
        let request = RequestContent::from(b);
        if let Some(rec) = self.keys.get(&key)
            && self.now.duration_since(rec.created) < IDEMPOTENCY_TTL
        {
            if rec.request != request {
                return (Err(Code::IdempotencyKeyReused), false);
            }
            return (rec.answer.clone(), true);
        }
        let answer = self.book_once(b);
        self.keys.insert(
            key,
            KeyRecord {
                request,
                created: self.now,
                answer: answer.clone(),
            },
        );
        (answer, false)
    }

    /// The appointment and whether it changed.
    fn reschedule(
        &mut self,
        idx: Option<usize>,
        start: NewStart,
        expected: Option<u64>,
    ) -> Result<(usize, bool), Code> {
        let i = idx.ok_or(Code::NotFound)?;
        let a = &self.appts[i];
        if !a.active() {
            return Err(Code::Cancelled);
        }
        if expected.is_some_and(|v| v != a.version) {
            return Err(Code::VersionMismatch(a.version));
        }
        let c = match start {
            NewStart::At(c) if c.at() != a.start => c,
            _ => return Ok((i, false)),
        };
        let (provider, patient) = (a.provider, a.patient);
        let (s, e) = self.place(provider, patient, c, Some(i))?;
        let buffer = self.providers[&provider].buffer;
        let a = &mut self.appts[i];
        a.start = s;
        a.end = e;
        a.buffer = buffer;
        a.status = AppointmentStatus::Pending;
        a.version += 1;
        Ok((i, true))
    }

    fn cancel(
        &mut self,
        idx: Option<usize>,
        reason: Option<&str>,
        expected: Option<u64>,
    ) -> Result<(usize, bool), Code> {
        let i = idx.ok_or(Code::NotFound)?;
        let a = &mut self.appts[i];
        if !a.active() {
            return Ok((i, false));
        }
        if expected.is_some_and(|v| v != a.version) {
            return Err(Code::VersionMismatch(a.version));
        }
        a.status = AppointmentStatus::Cancelled;
        a.version += 1;
        a.cancel_reason = reason.map(str::to_owned);
        Ok((i, true))
    }

    fn confirm(&mut self, idx: Option<usize>, v: u64) -> Result<ConfirmObs, Code> {
        let i = idx.ok_or(Code::NotFound)?;
        let a = &mut self.appts[i];
        Ok(match a.status {
            AppointmentStatus::Cancelled => ConfirmObs::Cancelled,
            _ if a.version != v => ConfirmObs::OtherVersion,
            AppointmentStatus::Confirmed => ConfirmObs::AlreadyConfirmed,
            AppointmentStatus::Pending => {
                a.status = AppointmentStatus::Confirmed;
                ConfirmObs::Confirmed {
                    status: a.status,
                    version: a.version,
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------
// Running a sequence on both
// ---------------------------------------------------------------------------

struct Harness {
    cita: InMemoryCita,
    clock: Arc<ManualClock>,
    model: Model,
    /// Every `Book` so far, for `RepeatBook`.
    books: Vec<BookOp>,
    /// The store as it was after the previous step.
    seen: HashMap<AppointmentId, Appointment>,
}

fn fail(e: impl fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn book_request(b: &BookOp) -> BookRequest {
    let request = BookRequest {
        provider_id: ProviderId::parse(PROVIDERS[b.provider]).expect("a valid id"),
        patient_id: PatientId::parse(PATIENTS[b.patient]).expect("a valid id"),
        start: b.start.at(),
        country: b.country,
        notes: NOTES[b.notes].map(|n| Notes::parse(n).expect("short")),
        idempotency: None,
    };
    match b.key {
        None => request,
        Some(k) => {
            let fingerprint = request.fingerprint();
            BookRequest {
                idempotency: Some((
                    IdempotencyKey::parse(KEYS[k]).expect("a valid key"),
                    fingerprint,
                )),
                ..request
            }
        }
    }
}

fn changed_obs(a: &Appointment, changed: bool) -> Obs {
    Obs::Appointment {
        row: Row::from(a),
        changed,
    }
}

impl Harness {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(t0()));
        let cita = InMemoryCita::new(CountryRouter::default(), clock.clone());
        Self {
            cita,
            clock,
            model: Model::new(t0()),
            books: Vec::new(),
            seen: HashMap::new(),
        }
    }

    /// The model index and the id an operation targets.
    fn resolve(&self, target: Target) -> (Option<usize>, AppointmentId) {
        match target {
            Target::Nth(n) if !self.model.appts.is_empty() => {
                let i = n % self.model.appts.len();
                (Some(i), self.model.appts[i].id)
            }
            _ => (None, AppointmentId::new()),
        }
    }

    fn current_version(&self, idx: Option<usize>) -> u64 {
        idx.map_or(1, |i| self.model.appts[i].version)
    }

    /// Runs one operation on both; answers the events the model expects.
    async fn apply(&mut self, op: &Op) -> Result<(Obs, Obs, Vec<Ev>), TestCaseError> {
        let service = Arc::clone(&self.cita.service);
        Ok(match op {
            Op::SetProvider {
                provider,
                country,
                slot,
                buffer,
                notice,
                horizon,
            } => {
                let expected = match self.model.set_provider(op) {
                    Ok((version, created)) => Obs::Provider { version, created },
                    Err(code) => Obs::Refused {
                        code,
                        replayed: false,
                    },
                };
                let id = ProviderId::parse(PROVIDERS[*provider]).expect("a valid id");
                let d = draft(
                    "Provider",
                    *country,
                    schedule(LIMA, *slot, *buffer, *notice, *horizon),
                );
                let actual = match service.set_provider(id, d).await {
                    Ok(o) => Obs::Provider {
                        version: o.provider.version.get(),
                        created: o.created,
                    },
                    Err(SetProviderError::CountryNotServed(c)) => Obs::Refused {
                        code: Code::CountryNotServed(c),
                        replayed: false,
                    },
                    Err(e) => Obs::Refused {
                        code: Code::Other(format!("{e:?}")),
                        replayed: false,
                    },
                };
                (expected, actual, Vec::new())
            }
            Op::Book(b) => {
                self.books.push(b.clone());
                self.book(b).await
            }
            Op::RepeatBook(n) => {
                if self.books.is_empty() {
                    (Obs::Nothing, Obs::Nothing, Vec::new())
                } else {
                    let b = self.books[n % self.books.len()].clone();
                    self.book(&b).await
                }
            }
            Op::Reschedule {
                target,
                start,
                expected,
            } => {
                let (idx, id) = self.resolve(*target);
                let expected_version = expected.resolve(self.current_version(idx));
                let start_at = match start {
                    NewStart::At(c) => c.at(),
                    NewStart::Same => idx.map_or_else(t0, |i| self.model.appts[i].start),
                };
                let (want, events) = match self.model.reschedule(idx, *start, expected_version) {
                    Ok((i, changed)) => {
                        let a = &self.model.appts[i];
                        let events = if changed {
                            vec![(EventType::Rescheduled, a.id, a.version)]
                        } else {
                            Vec::new()
                        };
                        (
                            Obs::Appointment {
                                row: a.row(),
                                changed,
                            },
                            events,
                        )
                    }
                    Err(code) => (
                        Obs::Refused {
                            code,
                            replayed: false,
                        },
                        Vec::new(),
                    ),
                };
                let got = match service
                    .reschedule(RescheduleRequest {
                        id,
                        start: start_at,
                        expected: expected_version.map(version),
                    })
                    .await
                {
                    Ok(o) => changed_obs(&o.appointment, o.changed),
                    Err(e) => Obs::Refused {
                        code: reschedule_code(&e),
                        replayed: false,
                    },
                };
                (want, got, events)
            }
            Op::Cancel {
                target,
                reason,
                expected,
            } => {
                let (idx, id) = self.resolve(*target);
                let expected_version = expected.resolve(self.current_version(idx));
                let reason = reason.then_some("no puede venir");
                let (want, events) = match self.model.cancel(idx, reason, expected_version) {
                    Ok((i, changed)) => {
                        let a = &self.model.appts[i];
                        let events = if changed {
                            vec![(EventType::Cancelled, a.id, a.version)]
                        } else {
                            Vec::new()
                        };
                        (
                            Obs::Appointment {
                                row: a.row(),
                                changed,
                            },
                            events,
                        )
                    }
                    Err(code) => (
                        Obs::Refused {
                            code,
                            replayed: false,
                        },
                        Vec::new(),
                    ),
                };
                let got = match service
                    .cancel(CancelRequest {
                        id,
                        reason: reason.map(|r| CancelReason::parse(r).expect("short")),
                        expected: expected_version.map(version),
                    })
                    .await
                {
                    Ok(o) => changed_obs(&o.appointment, o.changed),
                    Err(e) => Obs::Refused {
                        code: cancel_code(&e),
                        replayed: false,
                    },
                };
                (want, got, events)
            }
            Op::Confirm {
                target,
                version: which,
            } => {
                let (idx, id) = self.resolve(*target);
                let current = self.current_version(idx);
                let v = which.resolve(current).unwrap_or(current);
                let (want, events) = match self.model.confirm(idx, v) {
                    Ok(c) => {
                        let events = match (&c, idx) {
                            (ConfirmObs::Confirmed { version, .. }, Some(i)) => {
                                vec![(EventType::Confirmed, self.model.appts[i].id, *version)]
                            }
                            _ => Vec::new(),
                        };
                        (Obs::Confirm(c), events)
                    }
                    Err(code) => (
                        Obs::Refused {
                            code,
                            replayed: false,
                        },
                        Vec::new(),
                    ),
                };
                let got = match self.cita.confirmation_handler().apply(id, version(v)).await {
                    Ok(ConfirmOutcome::Confirmed(a)) => Obs::Confirm(ConfirmObs::Confirmed {
                        status: a.status,
                        version: a.version.get(),
                    }),
                    Ok(ConfirmOutcome::AlreadyConfirmed) => {
                        Obs::Confirm(ConfirmObs::AlreadyConfirmed)
                    }
                    Ok(ConfirmOutcome::OtherVersion) => Obs::Confirm(ConfirmObs::OtherVersion),
                    Ok(ConfirmOutcome::Cancelled) => Obs::Confirm(ConfirmObs::Cancelled),
                    Err(e) => Obs::Refused {
                        code: confirm_code(&e),
                        replayed: false,
                    },
                };
                (want, got, events)
            }
            Op::Advance(m) => {
                self.clock.advance(mins(*m));
                self.model.now += mins(*m);
                (Obs::Nothing, Obs::Nothing, Vec::new())
            }
        })
    }

    async fn book(&mut self, b: &BookOp) -> (Obs, Obs, Vec<Ev>) {
        let (answer, replayed) = self.model.book(b);
        let (outcome, replay) = self.cita.service.book(book_request(b)).await;
        let was_replayed = replay == Replay::Replayed;
        let got = match &outcome {
            Ok(s) => Obs::Booked {
                id: was_replayed.then_some(s.id),
                provider: s.provider_id.to_string(),
                patient: s.patient_id.to_string(),
                start: s.start,
                end: s.end,
                status: s.status,
                version: s.version.get(),
                replayed: was_replayed,
            },
            Err(e) => Obs::Refused {
                code: book_code(e),
                replayed: was_replayed,
            },
        };
        let want = match answer {
            Ok(bk) => Obs::Booked {
                id: replayed.then(|| self.model.appts[bk.idx].id),
                provider: PROVIDERS[b.provider].to_owned(),
                patient: PATIENTS[b.patient].to_owned(),
                start: bk.start,
                end: bk.end,
                status: AppointmentStatus::Pending,
                version: 1,
                replayed,
            },
            Err(ref code) => Obs::Refused {
                code: code.clone(),
                replayed,
            },
        };
        let mut events = Vec::new();
        if let (Ok(bk), false, Ok(s)) = (&answer, replayed, &outcome) {
            // The model's new appointment takes the system's id.
            self.model.appts[bk.idx].id = s.id;
            events.push((EventType::Requested, s.id, 1));
        }
        (want, got, events)
    }

    /// The events written by this step, which are then marked published.
    async fn take_events(&self) -> Result<Vec<EventEnvelope>, TestCaseError> {
        let outbox = &self.cita.appointments;
        let entries = outbox.unpublished(usize::MAX).await.map_err(fail)?;
        let ids: Vec<_> = entries.iter().map(|e| e.event.event_id).collect();
        outbox.mark_published(&ids).await.map_err(fail)?;
        Ok(entries.into_iter().map(|e| e.event).collect())
    }

    async fn step(&mut self, n: usize, op: &Op) -> Result<(), TestCaseError> {
        let (want, got, mut want_events) = self.apply(op).await?;
        prop_assert_eq!(&got, &want, "step {}: {:?}", n, op);

        let all: HashMap<AppointmentId, Appointment> = self
            .cita
            .appointments
            .all()
            .into_iter()
            .map(|a| (a.id, a))
            .collect();

        // The store holds exactly what the model holds.
        let mut rows: Vec<Row> = all.values().map(Row::from).collect();
        rows.sort_by_key(|r| r.id);
        let mut model_rows: Vec<Row> = self.model.appts.iter().map(MAppt::row).collect();
        model_rows.sort_by_key(|r| r.id);
        prop_assert_eq!(&rows, &model_rows, "step {}: {:?}", n, op);

        // No two active appointments overlap per provider (each with its own
        // buffer) or per patient.
        let active: Vec<&Appointment> = all.values().filter(|a| a.status.is_active()).collect();
        for (i, a) in active.iter().enumerate() {
            for b in &active[i + 1..] {
                if a.provider_id == b.provider_id {
                    let overlap = a.start < b.end + b.buffer.duration()
                        && b.start < a.end + a.buffer.duration();
                    prop_assert!(!overlap, "step {}: provider overlap {:?} {:?}", n, a, b);
                }
                if a.patient_id == b.patient_id {
                    let overlap = a.start < b.end && b.start < a.end;
                    prop_assert!(!overlap, "step {}: patient overlap {:?} {:?}", n, a, b);
                }
            }
        }

        // Events: exactly what the model expects, each carrying the
        // appointment as it now is.
        let events = self.take_events().await?;
        let mut got_events: Vec<Ev> = events
            .iter()
            .map(|e| (e.event_type, e.appointment_id, e.version.get()))
            .collect();
        sort_events(&mut got_events);
        sort_events(&mut want_events);
        prop_assert_eq!(&got_events, &want_events, "step {}: {:?}", n, op);
        for e in &events {
            let a = &all[&e.appointment_id];
            prop_assert_eq!(&e.appointment, &AppointmentSnapshot::from(a));
            prop_assert_eq!(e.version, a.version);
            prop_assert_eq!(e.country_iso, a.country);
        }

        // Independently of the model: every change since the last step is
        // exactly one event with the new version, versions only ever go up
        // (by one per client change), and nothing else changed.
        let mut changes: Vec<Ev> = Vec::new();
        for a in all.values() {
            let Some(old) = self.seen.get(&a.id) else {
                prop_assert_eq!(a.version, Version::FIRST);
                prop_assert_eq!(a.status, AppointmentStatus::Pending);
                changes.push((EventType::Requested, a.id, 1));
                continue;
            };
            if old == a {
                continue;
            }
            let (was, now) = (old.version.get(), a.version.get());
            if now == was + 1 {
                let kind = match a.status {
                    AppointmentStatus::Cancelled => EventType::Cancelled,
                    AppointmentStatus::Pending => EventType::Rescheduled,
                    AppointmentStatus::Confirmed => {
                        return Err(fail(format!("step {n}: a new version came confirmed")));
                    }
                };
                changes.push((kind, a.id, now));
            } else {
                prop_assert_eq!(now, was, "step {}: version jumped for {:?}", n, a);
                prop_assert_eq!(old.status, AppointmentStatus::Pending);
                prop_assert_eq!(a.status, AppointmentStatus::Confirmed);
                prop_assert_eq!((a.start, a.end, a.buffer), (old.start, old.end, old.buffer));
                changes.push((EventType::Confirmed, a.id, now));
            }
        }
        prop_assert!(self.seen.keys().all(|id| all.contains_key(id)));
        sort_events(&mut changes);
        prop_assert_eq!(&changes, &got_events, "step {}: {:?}", n, op);
        self.seen = all;
        Ok(())
    }
}

async fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    for (n, op) in ops.iter().enumerate() {
        h.step(n, op).await?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn the_service_agrees_with_the_reference_model(
        ops in ops()
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(run(&ops))?;
    }
}

/// Found by the model: `BookRequest::fingerprint` once gave absent notes and
/// empty notes the same fingerprint, so a different request under a used key
/// was answered with the first request's replay.
#[tokio::test]
async fn a_key_reused_with_empty_instead_of_absent_notes_is_refused() {
    let cita = InMemoryCita::new(CountryRouter::default(), Arc::new(ManualClock::new(t0())));
    set_lima_provider(&cita.service, PROVIDERS[0], 30, 0).await;
    let first = BookOp {
        provider: 0,
        patient: 0,
        start: Cand {
            day: 1,
            minute: 8 * 60,
        },
        country: None,
        notes: 0,
        key: Some(0),
    };
    let (outcome, replay) = cita.service.book(book_request(&first)).await;
    assert!(outcome.is_ok() && replay == Replay::Fresh);
    let reply = cita
        .service
        .book(book_request(&BookOp {
            notes: 1,
            ..first.clone()
        }))
        .await;
    assert!(
        matches!(reply, (Err(BookError::IdempotencyKeyReused), Replay::Fresh)),
        "{reply:?}"
    );
    let (outcome, replay) = cita.service.book(book_request(&first)).await;
    assert!(outcome.is_ok() && replay == Replay::Replayed);
}

// ---------------------------------------------------------------------------
// Races
// ---------------------------------------------------------------------------

const RACERS: usize = 64;

async fn set_lima_provider(service: &BookingService, id: &str, slot: u32, buffer: u32) {
    service
        .set_provider(
            ProviderId::parse(id).expect("a valid id"),
            draft(
                "Racer",
                CountryCode::PE,
                schedule(LIMA, slot, buffer, 0, 30),
            ),
        )
        .await
        .expect("PE is served");
}

/// `RACERS` tasks, released together, each booking `starts[i % len]` for
/// `provider` with its own patient.
async fn race(
    service: &Arc<BookingService>,
    provider: &str,
    starts: &[Timestamp],
) -> Vec<Result<AppointmentSnapshot, BookError>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let service = Arc::clone(service);
            let barrier = Arc::clone(&barrier);
            let request = BookRequest {
                provider_id: ProviderId::parse(provider).expect("a valid id"),
                patient_id: PatientId::parse(&format!("patient-{i}")).expect("a valid id"),
                start: starts[i % starts.len()],
                country: None,
                notes: None,
                idempotency: None,
            };
            tokio::spawn(async move {
                barrier.wait().await;
                service.book(request).await.0
            })
        })
        .collect();
    let mut results = Vec::with_capacity(RACERS);
    for t in tasks {
        results.push(t.await.expect("a booking task does not panic"));
    }
    results
}

/// Exactly one booking won, every other one was refused as `SlotTaken`, and
/// the store holds exactly that one appointment and its one event.
async fn assert_one_winner(
    results: Vec<Result<AppointmentSnapshot, BookError>>,
    store: &InMemoryAppointmentStore,
) {
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let losers = results
        .iter()
        .filter(|r| matches!(r, Err(BookError::SlotTaken)))
        .count();
    assert_eq!(losers, RACERS - 1, "{results:?}");
    let all = store.all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, winners[0].id);
    let events = store.unpublished(usize::MAX).await.expect("memory");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.event_type, EventType::Requested);
    assert_eq!(events[0].event.appointment_id, winners[0].id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bookings_of_one_slot_have_one_winner_with_the_slot_lock() {
    let cita = InMemoryCita::new(CountryRouter::default(), Arc::new(ManualClock::new(t0())));
    set_lima_provider(&cita.service, "p0", 30, 0).await;
    let start = local(&LIMA_TZ, 1, 9 * 60);
    let results = race(&cita.service, "p0", &[start]).await;
    assert_one_winner(results, &cita.appointments).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bookings_of_one_slot_have_one_winner_without_a_slot_lock() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(t0()));
    let appointments = Arc::new(InMemoryAppointmentStore::new());
    let service = Arc::new(BookingService::new(
        Arc::new(InMemoryProviderStore::new()),
        appointments.clone(),
        Arc::new(InMemoryIdempotencyStore::new()),
        CountryRouter::default(),
        clock,
    ));
    set_lima_provider(&service, "p0", 30, 0).await;
    let start = local(&LIMA_TZ, 1, 9 * 60);
    let results = race(&service, "p0", &[start]).await;
    assert_one_winner(results, &appointments).await;
}

/// Slots with different starts take different locks; the buffer still makes
/// them clash, so only the store can decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bookings_of_slots_that_clash_through_the_buffer_have_one_winner() {
    let cita = InMemoryCita::new(CountryRouter::default(), Arc::new(ManualClock::new(t0())));
    // 30-minute slots with a 15-minute buffer: 09:00 holds until 09:45, so
    // 09:00 and 09:30 exclude each other.
    set_lima_provider(&cita.service, "p0", 30, 15).await;
    let starts = [local(&LIMA_TZ, 1, 9 * 60), local(&LIMA_TZ, 1, 9 * 60 + 30)];
    let results = race(&cita.service, "p0", &starts).await;
    assert_one_winner(results, &cita.appointments).await;
}

// ---------------------------------------------------------------------------
// The in-memory pipeline end to end
// ---------------------------------------------------------------------------

async fn stored(cita: &InMemoryCita, id: AppointmentId) -> Appointment {
    cita.appointments
        .get(id)
        .await
        .expect("memory")
        .expect("the appointment exists")
}

async fn country_row(
    cita: &InMemoryCita,
    country: CountryCode,
    id: AppointmentId,
) -> Option<AppointmentSnapshot> {
    cita.countries[&country].get(id).await.expect("memory")
}

#[tokio::test]
async fn the_in_memory_pipeline_confirms_each_country_in_its_own_store() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cita = InMemoryCita::new(CountryRouter::default(), clock.clone());
    let santiago = TimeZone::get("America/Santiago").expect("bundled");
    cita.service
        .set_provider(
            ProviderId::parse("ana").expect("valid"),
            draft("Dra. Ana", CountryCode::PE, schedule(LIMA, 30, 0, 0, 30)),
        )
        .await
        .expect("PE is served");
    cita.service
        .set_provider(
            ProviderId::parse("bea").expect("valid"),
            draft(
                "Dra. Bea",
                CountryCode::CL,
                schedule("America/Santiago", 30, 0, 0, 30),
            ),
        )
        .await
        .expect("CL is served");
    let book = |provider: &str, patient: &str, start: Timestamp| BookRequest {
        provider_id: ProviderId::parse(provider).expect("valid"),
        patient_id: PatientId::parse(patient).expect("valid"),
        start,
        country: None,
        notes: None,
        idempotency: None,
    };
    let pe = cita
        .service
        .book(book("ana", "p-1", local(&LIMA_TZ, 1, 9 * 60)))
        .await
        .0
        .expect("booked in PE");
    let cl = cita
        .service
        .book(book("bea", "p-2", local(&santiago, 1, 9 * 60)))
        .await
        .0
        .expect("booked in CL");
    assert_eq!(
        (pe.country_iso, cl.country_iso),
        (CountryCode::PE, CountryCode::CL)
    );

    let pipeline = cita.pipeline();
    pipeline.drain().await.expect("drained");
    for snap in [&pe, &cl] {
        let a = stored(&cita, snap.id).await;
        assert_eq!(
            (a.status, a.version),
            (AppointmentStatus::Confirmed, Version::FIRST)
        );
    }
    // Each country holds its own appointment only.
    let pe_row = country_row(&cita, CountryCode::PE, pe.id)
        .await
        .expect("PE row");
    assert_eq!(pe_row.version, Version::FIRST);
    assert_eq!(pe_row.start, pe.start);
    assert!(country_row(&cita, CountryCode::PE, cl.id).await.is_none());
    let cl_row = country_row(&cita, CountryCode::CL, cl.id)
        .await
        .expect("CL row");
    assert_eq!(cl_row.version, Version::FIRST);
    assert!(country_row(&cita, CountryCode::CL, pe.id).await.is_none());
    assert_eq!(cita.countries[&CountryCode::PE].len(), 1);
    assert_eq!(cita.countries[&CountryCode::CL].len(), 1);

    // Reschedule the PE one: pending at v2 until the country records v2.
    let new_start = local(&LIMA_TZ, 1, 10 * 60);
    let moved = cita
        .service
        .reschedule(RescheduleRequest {
            id: pe.id,
            start: new_start,
            expected: Some(Version::FIRST),
        })
        .await
        .expect("moved");
    assert!(moved.changed);
    assert_eq!(
        (moved.appointment.status, moved.appointment.version),
        (AppointmentStatus::Pending, version(2))
    );

    // A confirmation of v1 delivered late, after the reschedule, changes nothing.
    let stale = EventEnvelope::confirmation_of(&pe, clock.now());
    cita.bus.confirmations().send(stale.clone());
    let confirmer = InboxWorker::new(cita.bus.confirmations(), cita.confirmation_handler());
    assert_eq!(
        confirmer
            .process_one(&Shutdown::never())
            .await
            .expect("in memory"),
        Step::Processed
    );
    let a = stored(&cita, pe.id).await;
    assert_eq!(
        (a.status, a.version),
        (AppointmentStatus::Pending, version(2))
    );
    assert!(cita.bus.confirmations().is_empty());
    assert!(cita.bus.confirmations().dead_letters().is_empty());

    // The country records v2 and confirms it.
    pipeline.drain().await.expect("drained");
    let a = stored(&cita, pe.id).await;
    assert_eq!(
        (a.status, a.version, a.start),
        (AppointmentStatus::Confirmed, version(2), new_start)
    );
    let pe_row = country_row(&cita, CountryCode::PE, pe.id)
        .await
        .expect("PE row");
    assert_eq!((pe_row.version, pe_row.start), (version(2), new_start));

    // The stale v1 confirmation again, now after v2 was confirmed: no rollback.
    cita.bus.confirmations().send(stale);
    pipeline.drain().await.expect("drained");
    let a = stored(&cita, pe.id).await;
    assert_eq!(
        (a.status, a.version),
        (AppointmentStatus::Confirmed, version(2))
    );

    // Cancel: the country's row follows.
    let cancelled = cita
        .service
        .cancel(CancelRequest {
            id: pe.id,
            reason: Some(CancelReason::parse("viaje").expect("short")),
            expected: Some(version(2)),
        })
        .await
        .expect("cancelled");
    assert!(cancelled.changed);
    pipeline.drain().await.expect("drained");
    let a = stored(&cita, pe.id).await;
    assert_eq!(
        (a.status, a.version),
        (AppointmentStatus::Cancelled, version(3))
    );
    let pe_row = country_row(&cita, CountryCode::PE, pe.id)
        .await
        .expect("PE row");
    assert_eq!(
        (
            pe_row.status,
            pe_row.version,
            pe_row.cancel_reason.as_deref()
        ),
        (AppointmentStatus::Cancelled, version(3), Some("viaje"))
    );

    // The CL appointment was never touched.
    let c = stored(&cita, cl.id).await;
    assert_eq!(
        (c.status, c.version),
        (AppointmentStatus::Confirmed, Version::FIRST)
    );
    assert_eq!(
        country_row(&cita, CountryCode::CL, cl.id)
            .await
            .map(|r| r.version),
        Some(Version::FIRST)
    );
    for country in [CountryCode::PE, CountryCode::CL] {
        let q = cita.bus.country_queue(country).expect("a queue");
        assert!(q.is_empty() && q.dead_letters().is_empty());
    }
    assert!(cita.bus.confirmations().dead_letters().is_empty());
}
