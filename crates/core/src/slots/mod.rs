//! Schedules and slots: the values a schedule is made of and the pure slot
//! generator.

mod generate;
mod models;

pub use generate::{AvailabilityRequest, Busy, DaySlots, Slot, available_slots, grid_slot_at};
pub use models::{
    BufferMinutes, DayHours, HorizonDays, LAST_DATE, LocalInterval, MAX_APPOINTMENT, NoticeMinutes,
    OutOfRange, OverlappingIntervals, Schedule, SlotMinutes, StartNotBeforeEnd, UnknownZone,
    WEEKDAYS, WallTime, WallTimeError, WeeklyHours, Zone,
};
