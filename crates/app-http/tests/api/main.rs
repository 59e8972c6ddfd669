//! Black-box tests of `cita-http`: each test spawns the application on port 0
//! with its own data directory and speaks HTTP to it, checking the contract
//! of `API.md` (statuses, headers, bodies, problem codes).
//!
//! One test binary (zero2prod's layout) so the crate is linked once.

// A test binary exports nothing: `pub` here only means "shared between modules".
#![allow(unreachable_pub)]

mod appointments;
mod availability;
mod edges;
mod embedded;
mod errors;
mod helpers;
mod operations;
mod outages;
mod providers;
mod races;
mod server_stores;
mod serving;
