//! What tests/ci_templates.rs runs the templates' steps with: a temporary machine with
//! `bootmatrix` in PATH, bounded shells, artifacts copied, the templates' YAML read, and what
//! a shard's and a merge's reports must hold.
// Shared by tests/ci_templates.rs and tests/ci_kubernetes.rs, each of which uses a part.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bootmatrix::judge::VerdictKind;
use bootmatrix::report::record::Report;
use bootmatrix::tools::{run_bounded, Bounded, Ended, Output};
use regex::Regex;
use yaml_rust2::{Yaml, YamlLoader};

/// The bound of one step (a shard of the slice takes about a second).
pub const STEP_LIMIT: Duration = Duration::from_secs(120);
/// Words that install or build: never in a step this test runs.
pub const INSTALLS: &[&str] = &["apt-get", "cargo ", "rustup", "ci/setup", "curl ", "pip "];

pub fn templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/templates")
}

/// A temporary folder with `bin/bootmatrix` (this build) and a folder per CI job.
pub struct Machine {
    tmp: tempfile::TempDir,
}

impl Machine {
    pub fn new() -> Machine {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("bin")).unwrap();
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_bootmatrix"),
            tmp.path().join("bin/bootmatrix"),
        )
        .unwrap();
        Machine { tmp }
    }

    /// A new empty folder, `name`.
    pub fn folder(&self, name: &str) -> PathBuf {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// What every step sees: `bootmatrix` first in PATH, HOME (bootmatrix's cache of kernels
    /// and chains), nothing else of the test's environment.
    pub fn env(&self) -> BTreeMap<String, String> {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        let mut env = BTreeMap::from([(
            "PATH".to_string(),
            format!("{}:{path}", self.tmp.path().join("bin").display()),
        )]);
        for key in ["HOME", "XDG_CACHE_HOME"] {
            if let Ok(value) = std::env::var(key) {
                env.insert(key.to_string(), value);
            }
        }
        env
    }
}

/// Runs `cmd` in `cwd` with exactly `env`, bounded; fails naming `what` when it cannot start
/// or outlives [`STEP_LIMIT`].
pub fn bounded(mut cmd: Command, cwd: &Path, env: &BTreeMap<String, String>, what: &str) -> Output {
    cmd.current_dir(cwd).env_clear().envs(env);
    let started = Instant::now();
    let out = Bounded::new(&mut cmd, what, STEP_LIMIT)
        .run()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    println!("{what}: {:.1} s", started.elapsed().as_secs_f64());
    out
}

/// A step's shell `script` (`sh -e` for GitLab, `bash -e` for GitHub); fails unless it exits 0.
pub fn shell(shell: &str, script: &str, cwd: &Path, env: &BTreeMap<String, String>, what: &str) {
    let mut cmd = Command::new(shell);
    cmd.args(["-e", "-c", script]);
    let out = bounded(cmd, cwd, env, what);
    assert_success(&out, &format!("{what}: {script}"));
}

pub fn assert_success(out: &Output, what: &str) {
    assert!(
        matches!(out.ended, Ended::Exited(s) if s.success()),
        "{what}: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.ended,
        out.stdout,
        out.stderr
    );
}

/// `cp -a FROM/. TO/`: a folder's contents into another (made when missing), or one file.
pub fn copy(from: &Path, to: &Path) {
    assert!(from.exists(), "nothing to copy at {}", from.display());
    let mut cmd = Command::new("cp");
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        cmd.arg("-a").arg(from.join(".")).arg(to.join("."));
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        cmd.arg("-a").arg(from).arg(to);
    }
    let what = format!("cp {} {}", from.display(), to.display());
    let out = bounded(cmd, Path::new("/"), &BTreeMap::new(), &what);
    assert_success(&out, &what);
}

// --- YAML ---------------------------------------------------------------------------------

pub fn load(name: &str) -> Yaml {
    let path = templates().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(docs.len(), 1, "{name}: one YAML document");
    docs.remove(0)
}

/// The keys of a mapping, in file order; fails on anything but a mapping of strings.
pub fn keys(node: &Yaml, what: &str) -> Vec<String> {
    let hash = node
        .as_hash()
        .unwrap_or_else(|| panic!("{what}: not a mapping: {node:?}"));
    hash.keys()
        .map(|k| k.as_str().unwrap_or_else(|| panic!("{what}: key {k:?}")))
        .map(str::to_string)
        .collect()
}

/// Fails naming every key of `node` that is not in `known`.
pub fn only_keys(node: &Yaml, known: &[&str], what: &str) {
    let unknown: Vec<String> = keys(node, what)
        .into_iter()
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "{what}: keys this test does not know how to run or skip: {unknown:?}"
    );
}

/// A scalar as text (strings and integers).
pub fn text(node: &Yaml, what: &str) -> String {
    match node {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        other => panic!("{what}: not a scalar: {other:?}"),
    }
}

/// A GitLab script: its lines, with the nested lists that anchors make flattened.
pub fn lines(node: &Yaml, what: &str) -> Vec<String> {
    match node {
        Yaml::BadValue => Vec::new(),
        Yaml::Array(items) => items.iter().flat_map(|i| lines(i, what)).collect(),
        other => vec![text(other, what)],
    }
}

/// Fails when a line invokes bootmatrix (a step that is skipped must not).
pub fn assert_no_bootmatrix(lines: &[String], what: &str) {
    let invokes = Regex::new(r"(^|[;&|]\s*)bootmatrix\s").unwrap();
    for line in lines {
        assert!(
            !invokes.is_match(line),
            "{what} is not run by this test, but runs bootmatrix: {line}"
        );
    }
}

/// Fails unless a shard's script passes BOOTMATRIX_FILTER on: without it, the whole matrix
/// would boot here.
pub fn assert_narrowed(script: &str, what: &str) {
    assert!(
        script.contains("--filter \"$BOOTMATRIX_FILTER\""),
        "{what}: the shard runs without --filter \"$BOOTMATRIX_FILTER\": {script}"
    );
}

/// Fails when a line installs or builds (a step that is run must not).
pub fn assert_installs_nothing(lines: &[String], what: &str) {
    for line in lines {
        for word in INSTALLS {
            assert!(
                !line.contains(word),
                "{what} is run by this test, but installs or builds ({word}): {line}"
            );
        }
    }
}

// --- What a merge must hold ----------------------------------------------------------------

/// The ids `bootmatrix plan --json ARGS` plans, with `env` as the steps have it.
pub fn planned(m: &Machine, args: &[&str]) -> BTreeSet<String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootmatrix"));
    cmd.args(["plan", "--json"])
        .args(args)
        .env_clear()
        .envs(m.env());
    let json = run_bounded(&mut cmd, STEP_LIMIT, "bootmatrix plan").unwrap();
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ids: BTreeSet<String> = plan["cells"]
        .as_array()
        .expect("plan --json has cells")
        .iter()
        .map(|c| c["id"].as_str().expect("a cell id").to_string())
        .collect();
    assert!(!ids.is_empty(), "plan {args:?} has no cell");
    ids
}

/// A shard's report: it is shard `index` of `total`, of the plan `planned`.
pub fn check_shard(report: &Path, index: usize, total: usize, planned: &BTreeSet<String>) {
    let report = Report::read(report).unwrap();
    let run = report
        .run
        .as_ref()
        .expect("a shard's report records its run");
    let shard = run.shard.as_ref().expect("the run was a shard");
    assert_eq!((shard.index, shard.total), (index, total));
    let of: BTreeSet<String> = run.planned.iter().cloned().collect();
    assert_eq!(&of, planned, "shard {index}/{total} planned another matrix");
}

/// The merge's folder: report.json holds every planned cell exactly once and nothing else,
/// from `shards` shards; junit.xml and report.html are there.
pub fn check_merged(merged: &Path, planned: &BTreeSet<String>, shards: usize) {
    let report = Report::read(&merged.join("report.json")).unwrap();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for cell in &report.cells {
        *seen.entry(cell.id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "cells merged more than once: {twice:?}");
    let ids: BTreeSet<String> = seen.keys().map(|s| s.to_string()).collect();
    let missing: Vec<_> = planned.difference(&ids).collect();
    let extra: Vec<_> = ids.difference(planned).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "merged report vs plan: missing {missing:?}, not planned {extra:?}"
    );
    assert_eq!(report.shards.len(), shards, "the merge records each shard");
    // The booted cells' logs came along with the shards' artifacts, and the merge found them.
    let logs: Vec<&Path> = report
        .cells
        .iter()
        .filter_map(|c| c.log_dir.as_deref())
        .collect();
    assert!(!logs.is_empty(), "no cell of the slice booted");
    for dir in logs {
        assert!(
            dir.join("argv.txt").is_file(),
            "no logs at {}",
            dir.display()
        );
    }
    let verdicts: BTreeSet<VerdictKind> = report.cells.iter().map(|c| c.verdict).collect();
    assert!(
        verdicts.contains(&VerdictKind::Pass) && verdicts.contains(&VerdictKind::Skip),
        "the slice should hold decided passes and skips: {verdicts:?}"
    );
    let read = |name: &str| {
        let path = merged.join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let junit = read("junit.xml");
    assert!(junit.contains("<testsuite"), "junit.xml: {junit}");
    let first = &report.cells[0].id;
    let junit_cases = junit.matches("<testcase").count();
    assert_eq!(junit_cases, planned.len(), "one JUnit test case per cell");
    let html = read("report.html");
    assert!(
        html.to_lowercase().contains("<html") && html.contains(first.as_str()),
        "report.html names no cell ({first})"
    );
}
