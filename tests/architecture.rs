//! The shape of the code, checked: data flows one way through the stages, and no file hides a
//! stage's steps in more than 600 lines of non-test code.
//!
//! Stages are the folders (or files) directly under `harness/src/`, in pipeline order. A module
//! may use its own stage and earlier ones, never a later one: `boot` may use `plan`, `plan` may
//! not use `boot`. `main.rs` (the CLI) sits after every stage; `lib.rs` only declares them.

use std::fs;
use std::path::{Path, PathBuf};

use regex::Regex;

/// The pipeline, first to last. `tools` (bounded processes, the external tools) serves all.
const STAGES: &[&str] = &[
    "tools", "matrix", "discover", "scenario", "plan", "lint", "prepare", "boot", "observe",
    "judge", "run", "report",
];

/// What may import any stage: the crate root, and the CLI (`main.rs` and its `cli/` modules),
/// which comes after every stage.
const OUTSIDE: &[&str] = &["lib", "main", "cli"];

const MAX_LINES: usize = 600;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("harness/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read harness/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The stage a file under `harness/src/` belongs to: its top folder, or its own name.
fn stage_of(relative: &Path) -> Option<&str> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    Some(first.strip_suffix(".rs").unwrap_or(first))
}

fn rank(stage: &str) -> Option<usize> {
    STAGES.iter().position(|s| *s == stage)
}

/// Every backward import in one file's text: `(line number, the later stage used)`.
fn backward_imports(stage: &str, text: &str) -> Vec<(usize, String)> {
    let own = rank(stage).unwrap_or_else(|| panic!("stage {stage:?} is not in STAGES"));
    let path = Regex::new(r"\bcrate::([a-z_]+)").unwrap();
    let group = Regex::new(r"\bcrate::\{([^}]*)\}").unwrap();
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut used: Vec<String> = path.captures_iter(code).map(|c| c[1].to_string()).collect();
        for c in group.captures_iter(code) {
            used.extend(
                c[1].split(',')
                    .filter_map(|item| item.trim().split("::").next())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        }
        for stage_used in used {
            if let Some(r) = rank(&stage_used) {
                if r > own {
                    found.push((n + 1, stage_used));
                }
            }
        }
    }
    found
}

/// Lines of a file before its first `#[cfg(test)]` item (tests sit at the end of a file).
fn code_lines(text: &str) -> usize {
    text.lines()
        .take_while(|l| l.trim_start() != "#[cfg(test)]")
        .count()
}

#[test]
fn no_stage_imports_from_a_later_stage() {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&root).unwrap();
        let stage = stage_of(relative).unwrap();
        if OUTSIDE.contains(&stage) {
            continue;
        }
        assert!(
            rank(stage).is_some(),
            "harness/src/{} is in no stage: add its stage to STAGES in tests/architecture.rs \
             (in pipeline order) or move it into one",
            relative.display()
        );
        let text = fs::read_to_string(file).unwrap();
        for (line, later) in backward_imports(stage, &text) {
            problems.push(format!(
                "harness/src/{}:{line}: {stage} uses crate::{later}, a later stage",
                relative.display()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "backward imports (order: {}):\n{}",
        STAGES.join(" -> "),
        problems.join("\n")
    );
}

#[test]
fn every_stage_in_the_order_exists() {
    for stage in STAGES {
        let dir = src().join(stage);
        let file = src().join(format!("{stage}.rs"));
        assert!(
            dir.is_dir() || file.is_file(),
            "stage {stage} has neither harness/src/{stage}/ nor harness/src/{stage}.rs"
        );
    }
}

#[test]
fn no_file_is_over_600_lines_of_code() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = code_lines(&fs::read_to_string(f).unwrap());
            (n > MAX_LINES).then(|| format!("{} ({n} lines before its tests)", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checker_finds_a_backward_import() {
    let text = "use std::fmt;\nuse crate::plan::RunSpec;\nuse crate::judge::Verdict;\n";
    assert_eq!(
        backward_imports("boot", text),
        vec![(3, "judge".to_string())]
    );
    assert_eq!(
        backward_imports("plan", "use crate::{matrix::Check, observe::Evidence};"),
        vec![(1, "observe".to_string())]
    );
    assert!(backward_imports("report", text).is_empty());
    // A comment that names a later stage is not an import.
    assert!(backward_imports("boot", "// see crate::judge for the verdicts").is_empty());
}

#[test]
fn the_line_count_stops_at_the_tests() {
    let text = "fn a() {}\nfn b() {}\n#[cfg(test)]\nmod tests {\n}\n";
    assert_eq!(code_lines(text), 2);
    assert_eq!(code_lines("fn a() {}\n"), 1);
}
