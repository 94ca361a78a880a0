//! bootmatrix: boot QEMU/OVMF guests for every firmware descriptor on a machine and check that
//! the firmware keeps the security promises its descriptor makes.
//!
//! Data flows one way: [`discover`] -> [`plan`] -> [`prepare`] -> [`boot`] -> [`observe`] ->
//! [`judge`] -> [`report`]. `plan` and `judge` are pure; only `boot` (and the capability probes
//! in `discover`) start processes.

pub mod boot;
pub mod descriptor;
pub mod discover;
pub mod explain;
pub mod host;
pub mod judge;
pub mod observe;
pub mod optionrom;
pub mod pe;
pub mod plan;
pub mod prepare;
pub mod qemu;
pub mod report;
pub mod run;
pub mod scenario;
pub mod tools;
