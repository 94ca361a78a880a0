//! The command line of the `bootmatrix` binary (not part of the library): the clap
//! definition and what is generated from it.

pub mod args;
pub mod keys;
pub mod lint;
pub mod merge;
pub mod pages;
pub mod plan_json;
pub mod progress;
pub mod run;
pub mod template;
pub mod verify;
