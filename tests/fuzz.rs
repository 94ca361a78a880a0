//! Property-based fuzzing of the three readers of untrusted text, on stable Rust: the
//! descriptor parser, the console watcher and the scenario loader. Inputs start from the seed
//! corpus in `tests/data/fuzz-seeds/` and are mutated (JSON values replaced, removed, spliced
//! with words the seeds use; bytes cut, inserted and flipped; console lines split, merged,
//! moved between consoles, cut into partial lines and ticks), or are arbitrary text.
//!
//! The invariants are in `tests/fuzzing/mod.rs`, shared with the libFuzzer targets in `fuzz/`.
//! Budget: `FUZZ_CASES` cases per target (default 64, for `cargo test`), stopping early once
//! `FUZZ_SECONDS` have passed in that target; `FUZZ_SEED` (a number) repeats a run. Each
//! target prints how many inputs it ran. `./ci/fuzz` runs them with a larger budget.

mod fuzzing;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bootmatrix::boot::Console;
use fuzzing::Step;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

fn seeds(kind: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz-seeds")
        .join(kind);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{}: too few seeds", dir.display());
    files
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

/// Runs `test` on inputs from `strategy` until the budget is spent; prints and returns how many
/// ran. A failing input is shrunk to a minimal one, which the panic shows.
fn fuzz<S: Strategy>(target: &str, strategy: S, test: impl Fn(S::Value) -> &'static str) -> u64
where
    S::Value: std::fmt::Debug,
{
    let cases = env_number("FUZZ_CASES").unwrap_or(64);
    let budget = env_number("FUZZ_SECONDS").map(Duration::from_secs);
    let seed = env_number("FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let name = &target.as_bytes()[..target.len().min(24)];
    key[8..8 + name.len()].copy_from_slice(name);
    let mut runner = TestRunner::new_with_rng(
        Config {
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &key),
    );
    let start = Instant::now();
    let mut ran = 0u64;
    let mut words = BTreeMap::<&str, u64>::new();
    let fails = |value: S::Value| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(value))).is_err()
    };
    while ran < cases && budget.is_none_or(|b| start.elapsed() <= b) {
        let mut tree = strategy.new_tree(&mut runner).expect("an input");
        ran += 1;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(tree.current()))) {
            Ok(word) => *words.entry(word).or_default() += 1,
            Err(_) => {
                let quiet = std::panic::take_hook();
                std::panic::set_hook(Box::new(|_| {}));
                let mut minimal = tree.current();
                let mut steps = 0;
                if tree.simplify() {
                    while steps < 4096 {
                        steps += 1;
                        if fails(tree.current()) {
                            minimal = tree.current();
                            if !tree.simplify() {
                                break;
                            }
                        } else if !tree.complicate() {
                            break;
                        }
                    }
                }
                std::panic::set_hook(quiet);
                eprintln!(
                    "\nfuzz {target}: input {ran} failed (FUZZ_SEED={seed}); minimal input:\n\
                     {minimal:#?}"
                );
                test(minimal);
                panic!("fuzz {target}: the minimal input passed on its own (FUZZ_SEED={seed})");
            }
        }
    }
    eprintln!(
        "\nfuzz {target}: {ran} inputs in {:.1} s (seed {seed}): {words:?}",
        start.elapsed().as_secs_f64()
    );
    ran
}

// ---- mutations shared by the JSON inputs ----

/// One change to a JSON document; the numbers pick the node and the word.
#[derive(Debug, Clone)]
enum JsonEdit {
    Replace(usize, Replacement),
    Remove(usize),
    Splice(usize, usize),
    Rename(usize, usize),
}

#[derive(Debug, Clone)]
enum Replacement {
    Word(usize),
    Text(String),
    Number(f64),
    Int(i64),
    Bool(bool),
    Null,
    EmptyList,
    EmptyObject,
    Nested(usize),
}

fn replacement() -> impl Strategy<Value = Replacement> {
    prop_oneof![
        4 => any::<usize>().prop_map(Replacement::Word),
        2 => "\\PC{0,40}".prop_map(Replacement::Text),
        1 => any::<f64>().prop_map(Replacement::Number),
        1 => any::<i64>().prop_map(Replacement::Int),
        1 => any::<bool>().prop_map(Replacement::Bool),
        1 => Just(Replacement::Null),
        1 => Just(Replacement::EmptyList),
        1 => Just(Replacement::EmptyObject),
        1 => (0usize..200).prop_map(Replacement::Nested),
    ]
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        4 => (any::<usize>(), replacement()).prop_map(|(n, r)| JsonEdit::Replace(n, r)),
        2 => any::<usize>().prop_map(JsonEdit::Remove),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| JsonEdit::Splice(a, b)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| JsonEdit::Rename(a, b)),
    ]
}

/// One change to the bytes of a text.
#[derive(Debug, Clone)]
enum ByteEdit {
    Cut(usize),
    Insert(usize, Vec<u8>),
    Flip(usize, u8),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        1 => any::<usize>().prop_map(ByteEdit::Cut),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, b)| ByteEdit::Insert(at, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| ByteEdit::Flip(at, b)),
    ]
}

/// Every string and key of the seeds, the words that matter to the readers.
fn words_of(seeds: &[(String, String)]) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| {
                out.push(k.clone());
                walk(x, out);
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (_, text) in seeds {
        if let Ok(v) = serde_json::from_str::<Value>(json_part(text)) {
            walk(&v, &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A scenario seed starts with its file name; the JSON follows.
fn json_part(text: &str) -> &str {
    match text.find(['{', '[']) {
        Some(i) => &text[i..],
        None => text,
    }
}

/// The paths of every node, parents before children.
fn node_paths(v: &Value) -> Vec<Vec<String>> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(path.clone());
        match v {
            Value::Array(a) => (0..a.len()).for_each(|i| {
                path.push(i.to_string());
                walk(&a[i], path, out);
                path.pop();
            }),
            Value::Object(o) => o.iter().for_each(|(k, x)| {
                path.push(k.clone());
                walk(x, path, out);
                path.pop();
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn node_mut<'v>(v: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter().try_fold(v, |v, key| match v {
        Value::Array(a) => a.get_mut(key.parse::<usize>().ok()?),
        Value::Object(o) => o.get_mut(key),
        _ => None,
    })
}

fn apply_json(v: &mut Value, edit: &JsonEdit, words: &[String]) {
    let paths = node_paths(v);
    let pick = |n: usize| paths[n % paths.len()].clone();
    let word = |n: usize| words[n % words.len()].clone();
    match edit {
        JsonEdit::Replace(n, r) => {
            let new = match r {
                Replacement::Word(w) => Value::String(word(*w)),
                Replacement::Text(t) => Value::String(t.clone()),
                Replacement::Number(f) => serde_json::Number::from_f64(*f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                Replacement::Int(i) => Value::from(*i),
                Replacement::Bool(b) => Value::Bool(*b),
                Replacement::Null => Value::Null,
                Replacement::EmptyList => Value::Array(Vec::new()),
                Replacement::EmptyObject => Value::Object(Default::default()),
                Replacement::Nested(depth) => {
                    let mut x = Value::String(word(*depth));
                    for _ in 0..*depth {
                        x = Value::Array(vec![x]);
                    }
                    x
                }
            };
            if let Some(node) = node_mut(v, &pick(*n)) {
                *node = new;
            }
        }
        JsonEdit::Remove(n) => {
            let path = pick(*n);
            if let Some((last, parent)) = path.split_last() {
                match node_mut(v, parent) {
                    Some(Value::Object(o)) => {
                        o.remove(last);
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(i) = last.parse::<usize>() {
                            if i < a.len() {
                                a.remove(i);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        JsonEdit::Splice(from, to) => {
            let source = node_mut(v, &pick(*from)).map(|x| x.clone());
            if let (Some(source), Some(target)) = (source, node_mut(v, &pick(*to))) {
                match target {
                    Value::Array(a) => a.push(source),
                    other => *other = source,
                }
            }
        }
        JsonEdit::Rename(n, w) => {
            let path = pick(*n);
            if let Some((last, parent)) = path.split_last() {
                if let Some(Value::Object(o)) = node_mut(v, parent) {
                    if let Some(x) = o.remove(last) {
                        o.insert(word(*w), x);
                    }
                }
            }
        }
    }
}

fn apply_bytes(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    let at = |n: usize, len: usize| if len == 0 { 0 } else { n % (len + 1) };
    match edit {
        ByteEdit::Cut(n) => bytes.truncate(at(*n, bytes.len())),
        ByteEdit::Insert(n, b) => {
            let i = at(*n, bytes.len());
            bytes.splice(i..i, b.iter().copied());
        }
        ByteEdit::Flip(n, b) => {
            if !bytes.is_empty() {
                let i = *n % bytes.len();
                bytes[i] ^= b | 1;
            }
        }
    }
}

/// A seed's JSON with `json` edits, then its text with `bytes` edits.
fn mutated_json(text: &str, json: &[JsonEdit], bytes: &[ByteEdit], words: &[String]) -> Vec<u8> {
    let mut out = match serde_json::from_str::<Value>(json_part(text)) {
        Ok(mut v) => {
            json.iter().for_each(|e| apply_json(&mut v, e, words));
            serde_json::to_vec_pretty(&v).unwrap()
        }
        Err(_) => text.as_bytes().to_vec(),
    };
    bytes.iter().for_each(|e| apply_bytes(&mut out, e));
    out
}

/// Which seed, then its JSON edits and its byte edits.
type JsonMutation = (usize, Vec<JsonEdit>, Vec<ByteEdit>);

/// A seed, a few JSON edits, a few byte edits (rarely: byte edits spoil most inputs).
fn json_input(seeds: &[(String, String)]) -> impl Strategy<Value = JsonMutation> {
    (
        0..seeds.len(),
        proptest::collection::vec(json_edit(), 0..6),
        prop_oneof![3 => Just(Vec::new()), 1 => proptest::collection::vec(byte_edit(), 1..4)],
    )
}

// ---- the targets ----

#[test]
fn fuzz_descriptor_parser() {
    let seeds = seeds("descriptor");
    let words = words_of(&seeds);
    let strategy = prop_oneof![
        8 => json_input(&seeds).prop_map(Some),
        1 => Just(None),
    ];
    let arbitrary = "\\PC{0,200}";
    let ran = fuzz(
        "descriptor",
        (strategy, arbitrary),
        |(mutation, free): (Option<JsonMutation>, String)| {
            let text = match mutation {
                Some((seed, json, bytes)) => {
                    let out = mutated_json(&seeds[seed].1, &json, &bytes, &words);
                    String::from_utf8_lossy(&out).into_owned()
                }
                None => free,
            };
            fuzzing::check_descriptor(&text)
        },
    );
    assert!(ran > 0);
}

#[test]
fn fuzz_scenario_loader() {
    let seeds = seeds("scenario");
    let words = words_of(&seeds);
    let names: Vec<String> = seeds
        .iter()
        .map(|(_, t)| fuzzing::split_scenario_input(t).0)
        .chain(["zz-extra.json".to_string()])
        .collect();
    let ran = fuzz(
        "scenario",
        (json_input(&seeds), 0..names.len()),
        |((seed, json, bytes), name)| {
            let out = mutated_json(&seeds[seed].1, &json, &bytes, &words);
            fuzzing::check_scenario(&names[name], &out)
        },
    );
    assert!(ran > 0);
}

/// One change to a console transcript.
#[derive(Debug, Clone)]
enum ConsoleEdit {
    /// Insert a line the seeds contain (or a free one) at a place, on a console.
    Insert(usize, usize, bool, Option<String>),
    Remove(usize),
    /// Cut a line's text at a char position.
    Truncate(usize, usize),
    /// A line becomes partial lines growing to it, then the line.
    Partials(usize, usize),
    /// Two neighbouring lines become one.
    Merge(usize),
    /// A line moves to the other console.
    Switch(usize),
    Tick(usize),
    Duplicate(usize),
}

fn console_edit() -> impl Strategy<Value = ConsoleEdit> {
    prop_oneof![
        4 => (any::<usize>(), any::<usize>(), any::<bool>(), prop::option::weighted(0.2, "\\PC{0,80}"))
            .prop_map(|(a, b, c, d)| ConsoleEdit::Insert(a, b, c, d)),
        2 => any::<usize>().prop_map(ConsoleEdit::Remove),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| ConsoleEdit::Truncate(a, b)),
        2 => (any::<usize>(), 1usize..5).prop_map(|(a, b)| ConsoleEdit::Partials(a, b)),
        1 => any::<usize>().prop_map(ConsoleEdit::Merge),
        1 => any::<usize>().prop_map(ConsoleEdit::Switch),
        2 => any::<usize>().prop_map(ConsoleEdit::Tick),
        1 => any::<usize>().prop_map(ConsoleEdit::Duplicate),
    ]
}

fn text_of(step: &Step) -> Option<&str> {
    match step {
        Step::Line(_, _, t) | Step::Partial(_, t) => Some(t),
        Step::Tick(_) => None,
    }
}

fn apply_console(steps: &mut Vec<Step>, edit: &ConsoleEdit, lines: &[String]) {
    let len = steps.len();
    let at = |n: usize| if len == 0 { 0 } else { n % len };
    match edit {
        ConsoleEdit::Insert(n, w, debug, free) => {
            let text = free
                .clone()
                .unwrap_or_else(|| lines[w % lines.len()].clone());
            let console = if *debug {
                Console::Debug
            } else {
                Console::Serial
            };
            steps.insert(at(*n).min(len), Step::Line(console, 0, text));
        }
        ConsoleEdit::Remove(n) if len > 0 => {
            steps.remove(at(*n));
        }
        ConsoleEdit::Truncate(n, c) if len > 0 => match &mut steps[at(*n)] {
            Step::Line(_, _, t) | Step::Partial(_, t) => {
                let keep = t.chars().count();
                *t = t
                    .chars()
                    .take(if keep == 0 { 0 } else { c % keep })
                    .collect();
            }
            Step::Tick(_) => {}
        },
        ConsoleEdit::Partials(n, parts) if len > 0 => {
            let i = at(*n);
            if let Step::Line(Console::Serial, _, t) = &steps[i] {
                let chars: Vec<char> = t.chars().collect();
                let partials: Vec<Step> = (1..=*parts)
                    .map(|k| chars[..chars.len() * k / (parts + 1)].iter().collect())
                    .map(|s: String| Step::Partial(0, s))
                    .collect();
                steps.splice(i..i, partials);
            }
        }
        ConsoleEdit::Merge(n) if len > 1 => {
            let i = at(*n).min(len - 2);
            if let (Some(a), Some(b)) = (text_of(&steps[i]), text_of(&steps[i + 1])) {
                let joined = format!("{a}{b}");
                steps.remove(i + 1);
                steps[i] = Step::Line(Console::Serial, 0, joined);
            }
        }
        ConsoleEdit::Switch(n) if len > 0 => {
            if let Step::Line(c, _, _) = &mut steps[at(*n)] {
                *c = match c {
                    Console::Serial => Console::Debug,
                    Console::Debug => Console::QemuLog,
                    Console::QemuLog | Console::Varstore | Console::Runner => Console::Serial,
                };
            }
        }
        ConsoleEdit::Tick(n) => steps.insert(at(*n).min(len), Step::Tick(0)),
        ConsoleEdit::Duplicate(n) if len > 0 => {
            let s = steps[at(*n)].clone();
            steps.insert(at(*n), s);
        }
        _ => {}
    }
}

/// New times: each step `gap` ms after the one before (the runner's clock only goes on).
fn retime(steps: &mut [Step], gaps: &[u64]) {
    let mut now = 0u64;
    for (i, s) in steps.iter_mut().enumerate() {
        now += gaps.get(i).copied().unwrap_or(50);
        match s {
            Step::Line(_, at, _) | Step::Partial(at, _) | Step::Tick(at) => *at = now,
        }
    }
}

#[test]
fn fuzz_console_watcher() {
    let seeds = seeds("console");
    let transcripts: Vec<Vec<Step>> = seeds
        .iter()
        .map(|(_, t)| fuzzing::parse_transcript(t.trim_end()))
        .collect();
    let mut lines: Vec<String> = transcripts
        .iter()
        .flatten()
        .filter_map(|s| text_of(s).map(str::to_string))
        .collect();
    lines.sort();
    lines.dedup();
    let ends = fuzzing::ends();
    let keep_times = prop_oneof![1 => Just(None), 3 => proptest::collection::vec(
        prop_oneof![4 => 0u64..200, 1 => 0u64..20_000], 0..40).prop_map(Some)];
    let ran = fuzz(
        "console",
        (
            0..transcripts.len(),
            proptest::collection::vec(console_edit(), 0..12),
            keep_times,
            0..ends.len(),
        ),
        |(seed, edits, gaps, end)| {
            let mut steps = transcripts[seed].clone();
            edits
                .iter()
                .for_each(|e| apply_console(&mut steps, e, &lines));
            if let Some(gaps) = gaps {
                retime(&mut steps, &gaps);
            } else if edits
                .iter()
                .any(|e| !matches!(e, ConsoleEdit::Truncate(..)))
            {
                retime(&mut steps, &[]);
            }
            fuzzing::check_console(&steps, &ends[end])
        },
    );
    assert!(ran > 0);
}

#[test]
fn transcripts_read_back_as_written() {
    for (name, text) in seeds("console") {
        let steps = fuzzing::parse_transcript(text.trim_end());
        assert_eq!(fuzzing::transcript(&steps), text.trim_end(), "{name}");
        assert!(
            steps.iter().any(|s| !matches!(s, Step::Tick(_))),
            "{name}: no line"
        );
    }
}

/// The seeds themselves decide what the observe tests say they decide: the harness feeds the
/// watcher the way the runner does, or the fuzzing proves nothing.
#[test]
fn console_seeds_reach_decisions() {
    use bootmatrix::matrix::{Check, Outcome};
    let seed = |name: &str| {
        let text = seeds("console")
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1;
        fuzzing::parse_transcript(text.trim_end())
    };
    let end = &fuzzing::ends()[0];
    let outcome = |check, name: &str| {
        fuzzing::watch(check, &seed(name), end)
            .0
            .map(|o| o.outcome)
            .map_err(|u| u.reason)
    };
    assert_eq!(
        outcome(Check::SecureBoot, "probe-runs.txt"),
        Ok(Outcome::Runs)
    );
    assert_eq!(
        outcome(Check::SecureBoot, "own-refusal-gave-up.txt"),
        Ok(Outcome::Refused)
    );
    assert!(outcome(Check::SecureBoot, "debugcon-decides-nothing.txt").is_err());
    assert_eq!(
        outcome(Check::OptionRom, "oprom-split-marker.txt"),
        Ok(Outcome::Executed)
    );
    assert_eq!(
        outcome(Check::KernelBoot, "kernel-refused.txt"),
        Ok(Outcome::Refused)
    );
    for (name, text) in seeds("console") {
        fuzzing::check_console(&fuzzing::parse_transcript(text.trim_end()), end);
        let _ = name;
    }
}

#[test]
fn descriptor_and_scenario_seeds_pass_their_checks() {
    let mut words = BTreeMap::new();
    for (_, text) in seeds("descriptor") {
        *words.entry(fuzzing::check_descriptor(&text)).or_insert(0) += 1;
    }
    assert!(words["ok"] >= 5 && words["error"] >= 3, "{words:?}");
    for (_, text) in seeds("scenario") {
        let (name, json) = fuzzing::split_scenario_input(&text);
        assert_eq!(
            fuzzing::check_scenario(&name, json.as_bytes()),
            "ok",
            "{name}"
        );
    }
    // A broken file is an error naming that file.
    assert_eq!(fuzzing::check_scenario("secure-boot.json", b"{"), "error");
}
