//! bootmatrix: boot QEMU/OVMF guests for every firmware descriptor on a machine and check that
//! the firmware keeps the security promises its descriptor makes.
//!
//! Data flows one way, one folder per stage, and no stage imports from a later one
//! (`tests/architecture.rs` fails on a backward import):
//!
//! 1. [`matrix`]: the vocabulary every stage speaks (checks, variants, outcomes, profiles);
//! 2. [`discover`]: firmware descriptors, QEMU binaries, what the host can do;
//! 3. [`scenario`]: the expectations, as data from `scenarios/`;
//! 4. [`plan`]: the cells, each with its argv or the reason it is skipped (pure);
//!    [`lint`] judges a runtime's own QEMU command line against the descriptors (no boot);
//! 5. [`prepare`]: keys, signed payloads, option ROMs and varstores in the run folder;
//! 6. [`boot`]: starts QEMU and hands every console line to a watcher (the only stage that
//!    starts guests);
//! 7. [`observe`]: turns console lines into facts with their evidence;
//! 8. [`judge`]: turns facts and an expectation into a verdict (pure);
//! 9. [`run`]: drives one cell through prepare -> boot -> observe -> judge, cells in parallel;
//! 10. [`report`]: report.json, JUnit, the summary and `explain`.
//!
//! [`tools`] (bounded external processes and the tools they need) is used by every stage.

pub mod tools;

pub mod matrix;

pub mod discover;

pub mod scenario;

pub mod plan;

pub mod lint;

pub mod prepare;

pub mod boot;

pub mod observe;

pub mod judge;

pub mod run;

pub mod report;
