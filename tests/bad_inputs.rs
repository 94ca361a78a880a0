//! Hostile and broken inputs: descriptor files and the files they name, `--kernel` and
//! `--shim`. The corpus is `tests/data/bad-inputs/` (one descriptor per file, and `layers/`
//! for duplicates and masking across search folders); what cannot be committed (FIFOs, links
//! to devices, symlink loops, huge files, names that are not UTF-8) is made here at test time.
//!
//! The built binary runs `list` and `plan` over them with a time limit (killed after it) and
//! must: finish, not panic, name each bad file with the reason (the table's substring), keep
//! using the good descriptor beside them, and print nothing from a file raw (no control
//! characters, no endless lines).

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_qemu;
use wait_timeout::ChildExt;

/// Every run must end within this; it is killed after it.
const LIMIT: Duration = Duration::from_secs(10);

/// Each file of the corpus, with a substring of what `list` must say about it.
const CORPUS: &[(&str, &str)] = &[
    (
        "type-description-null.json",
        "description: expected a string, found null",
    ),
    (
        "type-description-boolean.json",
        "description: expected a string, found a boolean",
    ),
    (
        "type-description-number.json",
        "description: expected a string, found a number",
    ),
    (
        "type-description-array.json",
        "description: expected a string, found an array",
    ),
    (
        "type-description-object.json",
        "description: expected a string, found an object",
    ),
    (
        "type-interface-types-null.json",
        "interface-types: expected an array, found null",
    ),
    (
        "type-interface-types-boolean.json",
        "interface-types: expected an array, found a boolean",
    ),
    (
        "type-interface-types-number.json",
        "interface-types: expected an array, found a number",
    ),
    (
        "type-interface-types-string.json",
        "interface-types: expected an array, found a string",
    ),
    (
        "type-interface-types-object.json",
        "interface-types: expected an array, found an object",
    ),
    (
        "type-interface-types0-null.json",
        "interface-types[0]: expected a string, found null",
    ),
    (
        "type-interface-types0-boolean.json",
        "interface-types[0]: expected a string, found a boolean",
    ),
    (
        "type-interface-types0-number.json",
        "interface-types[0]: expected a string, found a number",
    ),
    (
        "type-interface-types0-array.json",
        "interface-types[0]: expected a string, found an array",
    ),
    (
        "type-interface-types0-object.json",
        "interface-types[0]: expected a string, found an object",
    ),
    (
        "type-mapping-null.json",
        "mapping: expected an object, found null",
    ),
    (
        "type-mapping-boolean.json",
        "mapping: expected an object, found a boolean",
    ),
    (
        "type-mapping-number.json",
        "mapping: expected an object, found a number",
    ),
    (
        "type-mapping-string.json",
        "mapping: expected an object, found a string",
    ),
    (
        "type-mapping-array.json",
        "mapping: expected an object, found an array",
    ),
    (
        "type-mapping.device-null.json",
        "mapping.device: expected a string, found null",
    ),
    (
        "type-mapping.device-boolean.json",
        "mapping.device: expected a string, found a boolean",
    ),
    (
        "type-mapping.device-number.json",
        "mapping.device: expected a string, found a number",
    ),
    (
        "type-mapping.device-array.json",
        "mapping.device: expected a string, found an array",
    ),
    (
        "type-mapping.device-object.json",
        "mapping.device: expected a string, found an object",
    ),
    (
        "type-mapping.mode-null.json",
        "mapping.mode: expected a string, found null",
    ),
    (
        "type-mapping.mode-boolean.json",
        "mapping.mode: expected a string, found a boolean",
    ),
    (
        "type-mapping.mode-number.json",
        "mapping.mode: expected a string, found a number",
    ),
    (
        "type-mapping.mode-array.json",
        "mapping.mode: expected a string, found an array",
    ),
    (
        "type-mapping.mode-object.json",
        "mapping.mode: expected a string, found an object",
    ),
    (
        "type-mapping.executable-null.json",
        "mapping.executable: expected an object, found null",
    ),
    (
        "type-mapping.executable-boolean.json",
        "mapping.executable: expected an object, found a boolean",
    ),
    (
        "type-mapping.executable-number.json",
        "mapping.executable: expected an object, found a number",
    ),
    (
        "type-mapping.executable-string.json",
        "mapping.executable: expected an object, found a string",
    ),
    (
        "type-mapping.executable-array.json",
        "mapping.executable: expected an object, found an array",
    ),
    (
        "type-mapping.executable.filename-null.json",
        "mapping.executable.filename: expected a string, found null",
    ),
    (
        "type-mapping.executable.filename-boolean.json",
        "mapping.executable.filename: expected a string, found a boolean",
    ),
    (
        "type-mapping.executable.filename-number.json",
        "mapping.executable.filename: expected a string, found a number",
    ),
    (
        "type-mapping.executable.filename-array.json",
        "mapping.executable.filename: expected a string, found an array",
    ),
    (
        "type-mapping.executable.filename-object.json",
        "mapping.executable.filename: expected a string, found an object",
    ),
    (
        "type-mapping.executable.format-null.json",
        "mapping.executable.format: expected a string, found null",
    ),
    (
        "type-mapping.executable.format-boolean.json",
        "mapping.executable.format: expected a string, found a boolean",
    ),
    (
        "type-mapping.executable.format-number.json",
        "mapping.executable.format: expected a string, found a number",
    ),
    (
        "type-mapping.executable.format-array.json",
        "mapping.executable.format: expected a string, found an array",
    ),
    (
        "type-mapping.executable.format-object.json",
        "mapping.executable.format: expected a string, found an object",
    ),
    (
        "type-mapping.nvram-template-null.json",
        "mapping.nvram-template: expected an object, found null",
    ),
    (
        "type-mapping.nvram-template-boolean.json",
        "mapping.nvram-template: expected an object, found a boolean",
    ),
    (
        "type-mapping.nvram-template-number.json",
        "mapping.nvram-template: expected an object, found a number",
    ),
    (
        "type-mapping.nvram-template-string.json",
        "mapping.nvram-template: expected an object, found a string",
    ),
    (
        "type-mapping.nvram-template-array.json",
        "mapping.nvram-template: expected an object, found an array",
    ),
    (
        "type-mapping.nvram-template.filename-null.json",
        "mapping.nvram-template.filename: expected a string, found null",
    ),
    (
        "type-mapping.nvram-template.filename-boolean.json",
        "mapping.nvram-template.filename: expected a string, found a boolean",
    ),
    (
        "type-mapping.nvram-template.filename-number.json",
        "mapping.nvram-template.filename: expected a string, found a number",
    ),
    (
        "type-mapping.nvram-template.filename-array.json",
        "mapping.nvram-template.filename: expected a string, found an array",
    ),
    (
        "type-mapping.nvram-template.filename-object.json",
        "mapping.nvram-template.filename: expected a string, found an object",
    ),
    (
        "type-mapping.nvram-template.format-null.json",
        "mapping.nvram-template.format: expected a string, found null",
    ),
    (
        "type-mapping.nvram-template.format-boolean.json",
        "mapping.nvram-template.format: expected a string, found a boolean",
    ),
    (
        "type-mapping.nvram-template.format-number.json",
        "mapping.nvram-template.format: expected a string, found a number",
    ),
    (
        "type-mapping.nvram-template.format-array.json",
        "mapping.nvram-template.format: expected a string, found an array",
    ),
    (
        "type-mapping.nvram-template.format-object.json",
        "mapping.nvram-template.format: expected a string, found an object",
    ),
    (
        "type-targets-null.json",
        "targets: expected an array, found null",
    ),
    (
        "type-targets-boolean.json",
        "targets: expected an array, found a boolean",
    ),
    (
        "type-targets-number.json",
        "targets: expected an array, found a number",
    ),
    (
        "type-targets-string.json",
        "targets: expected an array, found a string",
    ),
    (
        "type-targets-object.json",
        "targets: expected an array, found an object",
    ),
    (
        "type-targets0-null.json",
        "targets[0]: expected an object, found null",
    ),
    (
        "type-targets0-boolean.json",
        "targets[0]: expected an object, found a boolean",
    ),
    (
        "type-targets0-number.json",
        "targets[0]: expected an object, found a number",
    ),
    (
        "type-targets0-string.json",
        "targets[0]: expected an object, found a string",
    ),
    (
        "type-targets0-array.json",
        "targets[0]: expected an object, found an array",
    ),
    (
        "type-targets0.architecture-null.json",
        "targets[0].architecture: expected a string, found null",
    ),
    (
        "type-targets0.architecture-boolean.json",
        "targets[0].architecture: expected a string, found a boolean",
    ),
    (
        "type-targets0.architecture-number.json",
        "targets[0].architecture: expected a string, found a number",
    ),
    (
        "type-targets0.architecture-array.json",
        "targets[0].architecture: expected a string, found an array",
    ),
    (
        "type-targets0.architecture-object.json",
        "targets[0].architecture: expected a string, found an object",
    ),
    (
        "type-targets0.machines-null.json",
        "targets[0].machines: expected an array, found null",
    ),
    (
        "type-targets0.machines-boolean.json",
        "targets[0].machines: expected an array, found a boolean",
    ),
    (
        "type-targets0.machines-number.json",
        "targets[0].machines: expected an array, found a number",
    ),
    (
        "type-targets0.machines-string.json",
        "targets[0].machines: expected an array, found a string",
    ),
    (
        "type-targets0.machines-object.json",
        "targets[0].machines: expected an array, found an object",
    ),
    (
        "type-targets0.machines0-null.json",
        "targets[0].machines[0]: expected a string, found null",
    ),
    (
        "type-targets0.machines0-boolean.json",
        "targets[0].machines[0]: expected a string, found a boolean",
    ),
    (
        "type-targets0.machines0-number.json",
        "targets[0].machines[0]: expected a string, found a number",
    ),
    (
        "type-targets0.machines0-array.json",
        "targets[0].machines[0]: expected a string, found an array",
    ),
    (
        "type-targets0.machines0-object.json",
        "targets[0].machines[0]: expected a string, found an object",
    ),
    (
        "type-features-null.json",
        "features: expected an array, found null",
    ),
    (
        "type-features-boolean.json",
        "features: expected an array, found a boolean",
    ),
    (
        "type-features-number.json",
        "features: expected an array, found a number",
    ),
    (
        "type-features-string.json",
        "features: expected an array, found a string",
    ),
    (
        "type-features-object.json",
        "features: expected an array, found an object",
    ),
    (
        "type-features0-null.json",
        "features[0]: expected a string, found null",
    ),
    (
        "type-features0-boolean.json",
        "features[0]: expected a string, found a boolean",
    ),
    (
        "type-features0-number.json",
        "features[0]: expected a string, found a number",
    ),
    (
        "type-features0-array.json",
        "features[0]: expected a string, found an array",
    ),
    (
        "type-features0-object.json",
        "features[0]: expected a string, found an object",
    ),
    ("syntax-bom.json", "byte order mark (BOM"),
    (
        "syntax-number-out-of-range.json",
        "number 1e400 out of range",
    ),
    (
        "syntax-negative-number-out-of-range.json",
        "number -9.9e999 out of range",
    ),
    ("syntax-nul-in-string.json", "control character"),
    ("syntax-nul-after-json.json", "trailing characters"),
    ("syntax-not-utf8.json", "not UTF-8 text: invalid byte 0xff"),
    (
        "syntax-utf16.json",
        "not UTF-8 text: invalid byte 0xff at offset 0",
    ),
    (
        "syntax-latin1-description.json",
        "not UTF-8 text: invalid byte 0xe9",
    ),
    ("syntax-deep-nesting.json", "recursion limit exceeded"),
    (
        "syntax-deep-nesting-in-field.json",
        "recursion limit exceeded",
    ),
    ("syntax-truncated.json", "EOF while parsing"),
    ("syntax-whitespace-only.json", "EOF while parsing"),
    ("syntax-trailing-comma.json", "invalid JSON"),
    ("syntax-comment.json", "invalid JSON"),
    ("syntax-single-quotes.json", "invalid JSON"),
    ("syntax-two-documents.json", "trailing characters"),
    ("root-array.json", "expected an object, found an array"),
    ("root-string.json", "expected an object, found a string"),
    ("root-null.json", "expected an object, found null"),
    (
        "root-empty-object.json",
        "missing mandatory key \"description\"",
    ),
    (
        "missing-interface-types.json",
        "interface-types: missing mandatory key \"interface-types\"",
    ),
    (
        "missing-mapping.json",
        "mapping: missing mandatory key \"mapping\"",
    ),
    (
        "missing-targets.json",
        "targets: missing mandatory key \"targets\"",
    ),
    (
        "missing-features.json",
        "features: missing mandatory key \"features\"",
    ),
    (
        "missing-mapping.device.json",
        "mapping.device: missing mandatory key",
    ),
    (
        "missing-mapping.executable.json",
        "mapping.executable: missing mandatory key",
    ),
    (
        "missing-mapping.nvram-template.json",
        "required in split mode",
    ),
    (
        "missing-targets0.machines.json",
        "targets[0].machines: missing mandatory key",
    ),
    ("value-unknown-device.json", "unknown device \"rom\""),
    ("value-unknown-mode.json", "unknown mode \"hybrid\""),
    ("value-unknown-format.json", "unknown format \"vmdk\""),
    (
        "value-unknown-architecture.json",
        "unknown architecture \"mips64el\"",
    ),
    (
        "value-unknown-interface.json",
        "unknown interface type \"efi\"",
    ),
    (
        "value-escape-in-unknown-format.json",
        "unknown format \"raw\\x1b[2J\\nFORGED\"",
    ),
    (
        "value-nvram-in-combined-mode.json",
        "must be absent in combined mode",
    ),
    (
        "value-empty-executable-path.json",
        "mapping.executable.filename: empty path",
    ),
    (
        "value-empty-nvram-path.json",
        "mapping.nvram-template.filename: empty path",
    ),
    (
        "value-empty-memory-path.json",
        "mapping.filename: empty path",
    ),
    ("value-duplicate-key.json", "duplicate key, last wins"),
    (
        "text-escape-codes-in-description.json",
        "\\x1b[2J\\x1b[31mred\\x1b[0m",
    ),
    (
        "text-newline-forges-a-line.json",
        "fine\\n  skipped broken descriptor /FORGED.json",
    ),
    ("text-bidi-override.json", "abc\\u{202e}dcba"),
    (
        "text-escape-in-feature.json",
        "x\\x1b]0;title\\x07 (unknown)",
    ),
    (
        "text-escape-in-executable-path.json",
        "/nonexistent/\\x1b[2J\\n.fd",
    ),
    ("text-long-description.json", "… (5000 bytes, cut)"),
    (
        "file-executable-dev-zero.json",
        "executable: /dev/zero: not a regular file but a character device",
    ),
    (
        "file-executable-folder.json",
        "executable: /: not a regular file but a folder",
    ),
    (
        "file-executable-missing.json",
        "executable: /nonexistent/bootmatrix/gone.fd: cannot read: No such file",
    ),
    (
        "file-executable-dev-null.json",
        "executable: /dev/null: not a regular file but a character device",
    ),
    (
        "file-executable-relative.json",
        "executable: relative/CODE.fd: cannot read",
    ),
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad-inputs")
}

struct Ran {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs bootmatrix with the fake QEMU only, in `cwd`, killed after [`LIMIT`] (a failure).
fn bootmatrix(args: &[&std::ffi::OsStr], cwd: &Path) -> Ran {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bootmatrix starts");
    // Read while waiting: a full pipe must not look like a hang.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = match child.wait_timeout(LIMIT).expect("wait") {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "bootmatrix {:?} hung: killed after {LIMIT:?}; stderr: {}",
                args,
                stderr.join().unwrap_or_default()
            );
        }
    };
    let ran = Ran {
        status: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    assert!(
        !ran.stderr.contains("panicked") && ran.status != Some(101),
        "bootmatrix {args:?} panicked after {:?}: {}",
        started.elapsed(),
        ran.stderr
    );
    ran
}

/// `list` or `plan` over one descriptor folder.
fn discover(verb: &str, dir: &Path, cwd: &Path) -> Ran {
    let qemu = fake_qemu();
    let args = [
        verb.as_ref(),
        "--descriptors".as_ref(),
        dir.as_os_str(),
        "--no-path-qemu".as_ref(),
        "--qemu".as_ref(),
        qemu.as_os_str(),
    ];
    let ran = bootmatrix(&args, cwd);
    assert_eq!(ran.status, Some(0), "{verb}: {}{}", ran.stdout, ran.stderr);
    assert_shown_safely(&ran.stdout);
    ran
}

/// No control character but the line ends, and no line so long that a file was printed whole.
fn assert_shown_safely(stdout: &str) {
    if let Some(c) = stdout.chars().find(|c| c.is_control() && *c != '\n') {
        panic!("raw control character {c:?} in the output:\n{stdout}");
    }
    for line in stdout.lines() {
        assert!(
            line.chars().count() < 2000,
            "a line of {} characters: {}...",
            line.len(),
            &line[..200]
        );
    }
}

/// A usable descriptor beside the bad ones, naming a real (tiny) executable: the bad ones must
/// not stop it from being listed and planned.
fn add_good(dir: &Path, scratch: &Path) {
    let code = scratch.join("CODE.fd");
    fs::write(&code, b"firmware").unwrap();
    let vars = scratch.join("VARS.fd");
    fs::write(&vars, b"vars").unwrap();
    let text = serde_json::json!({
        "description": "the good one",
        "interface-types": ["uefi"],
        "mapping": {
            "device": "flash",
            "executable": {"filename": code, "format": "raw"},
            "nvram-template": {"filename": vars, "format": "raw"}
        },
        "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
        "features": ["secure-boot"]
    });
    fs::write(dir.join("99-good.json"), text.to_string()).unwrap();
}

/// `list`'s output in entries: a line that is not indented by four spaces starts one.
fn entries(stdout: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in stdout.lines() {
        match out.last_mut() {
            Some(entry) if line.starts_with("    ") => {
                entry.push('\n');
                entry.push_str(line);
            }
            _ => out.push(line.to_string()),
        }
    }
    out
}

/// Asserts that `list` names `shown` (a path as bootmatrix shows it) in an entry that says
/// `expected`, and that the good descriptor was listed and planned all the same.
fn assert_named(list: &Ran, plan: &Ran, shown: &str, expected: &str) {
    let about: Vec<String> = entries(&list.stdout)
        .into_iter()
        .filter(|e| e.contains(shown))
        .collect();
    assert!(
        about.iter().any(|e| e.contains(expected)),
        "{shown}: expected {expected:?} in what list says about it: {about:#?}\nlist:\n{}",
        list.stdout
    );
    assert!(
        list.stdout.contains("99-good.json  ["),
        "the good descriptor was not listed:\n{}",
        list.stdout
    );
    assert!(
        regex::Regex::new("99-good(@[^/ ]*)?/")
            .unwrap()
            .is_match(&plan.stdout),
        "the good descriptor was not planned:\n{}",
        plan.stdout
    );
}

fn shown_path(path: &Path) -> String {
    bootmatrix::tools::shown_name(path.as_os_str())
}

#[test]
fn the_table_and_the_corpus_agree() {
    let mut on_disk: Vec<String> = fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "every corpus file has one row, every row a file"
    );
    assert!(CORPUS.len() >= 60);
}

/// All the corpus files side by side in one search folder, with one good descriptor.
#[test]
fn each_bad_descriptor_is_named_with_its_reason_and_stops_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("descriptors");
    fs::create_dir(&dir).unwrap();
    for (name, _) in CORPUS {
        fs::copy(corpus().join(name), dir.join(name)).unwrap();
    }
    add_good(&dir, tmp.path());
    let list = discover("list", &dir, tmp.path());
    let plan = discover("plan", &dir, tmp.path());
    for (name, expected) in CORPUS {
        assert_named(&list, &plan, &shown_path(&dir.join(name)), expected);
    }
    // Neither the forged line nor the long description got through.
    assert!(
        !list
            .stdout
            .lines()
            .any(|l| l.starts_with("  skipped broken descriptor /FORGED")),
        "{}",
        list.stdout
    );
    assert!(
        !list.stdout.contains(&"L".repeat(201)),
        "a long field was not cut"
    );
}

/// Makes one hostile entry in a descriptor folder (and what it needs in `scratch`); returns the
/// path `list` must name.
type Setup = fn(dir: &Path, scratch: &Path) -> PathBuf;

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path and has no other preconditions.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// A valid descriptor naming `executable`, with `description`.
fn descriptor(executable: &Path, description: &str) -> String {
    serde_json::json!({
        "description": description,
        "interface-types": ["uefi"],
        "mapping": {"device": "flash", "mode": "combined",
            "executable": {"filename": executable, "format": "raw"}},
        "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
        "features": []
    })
    .to_string()
}

fn fifo_named_json(dir: &Path, _: &Path) -> PathBuf {
    let path = dir.join("10-fifo.json");
    mkfifo(&path);
    path
}

fn link_to_dev_zero(dir: &Path, _: &Path) -> PathBuf {
    let path = dir.join("10-zero.json");
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    path
}

fn link_to_dev_urandom(dir: &Path, _: &Path) -> PathBuf {
    let path = dir.join("10-urandom.json");
    std::os::unix::fs::symlink("/dev/urandom", &path).unwrap();
    path
}

fn symlink_loop(dir: &Path, _: &Path) -> PathBuf {
    let path = dir.join("10-loop.json");
    std::os::unix::fs::symlink(dir.join("10-loop-b.json"), &path).unwrap();
    std::os::unix::fs::symlink(&path, dir.join("10-loop-b.json")).unwrap();
    path
}

fn dangling_link(dir: &Path, scratch: &Path) -> PathBuf {
    let path = dir.join("10-dangling.json");
    std::os::unix::fs::symlink(scratch.join("gone.json"), &path).unwrap();
    path
}

fn folder_named_json(dir: &Path, _: &Path) -> PathBuf {
    let path = dir.join("10-folder.json");
    fs::create_dir(&path).unwrap();
    path
}

fn executable_is_a_fifo(dir: &Path, scratch: &Path) -> PathBuf {
    let fifo = scratch.join("CODE-fifo.fd");
    mkfifo(&fifo);
    let path = dir.join("10-executable-fifo.json");
    fs::write(&path, descriptor(&fifo, "executable is a FIFO")).unwrap();
    path
}

fn executable_links_to_dev_zero(dir: &Path, scratch: &Path) -> PathBuf {
    let link = scratch.join("CODE-zero.fd");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let path = dir.join("10-executable-zero-link.json");
    fs::write(&path, descriptor(&link, "executable links to /dev/zero")).unwrap();
    path
}

/// A sparse file: large to read, nothing on disk.
fn sparse(path: &Path, size: u64) {
    fs::File::create(path).unwrap().set_len(size).unwrap();
}

fn executable_over_its_limit(dir: &Path, scratch: &Path) -> PathBuf {
    let code = scratch.join("CODE-huge.fd");
    sparse(&code, (256 << 20) + 1);
    let path = dir.join("10-executable-huge.json");
    fs::write(&path, descriptor(&code, "executable of 256 MiB and a byte")).unwrap();
    path
}

fn descriptor_over_its_limit(dir: &Path, scratch: &Path) -> PathBuf {
    let path = dir.join("10-huge.json");
    let description = "D".repeat(50 << 20);
    fs::write(&path, descriptor(&scratch.join("CODE.fd"), &description)).unwrap();
    path
}

fn descriptor_sparse_over_its_limit(dir: &Path, _: &Path) -> PathBuf {
    let path = dir.join("10-sparse.json");
    sparse(&path, 4 << 30);
    path
}

fn name_with_escape_codes(dir: &Path, scratch: &Path) -> PathBuf {
    let path = dir.join("10-\u{1b}[2J\nskipped broken descriptor FORGED.json");
    fs::write(&path, descriptor(&scratch.join("CODE.fd"), "hostile name")).unwrap();
    path
}

fn name_not_utf8(dir: &Path, _: &Path) -> PathBuf {
    let path = dir.join(std::ffi::OsStr::from_bytes(b"10-\xff.json"));
    fs::write(&path, "{ broken").unwrap();
    path
}

#[test]
fn special_files_huge_files_and_hostile_names_are_named_and_never_read() {
    let cases: &[(&str, Setup, &str)] = &[
        (
            "FIFO named *.json",
            fifo_named_json,
            ": not a regular file but a FIFO",
        ),
        (
            "link to /dev/zero",
            link_to_dev_zero,
            ": not a regular file but a character device",
        ),
        (
            "link to /dev/urandom",
            link_to_dev_urandom,
            ": not a regular file but a character device",
        ),
        (
            "symlink loop",
            symlink_loop,
            "Too many levels of symbolic links",
        ),
        (
            "dangling link",
            dangling_link,
            "cannot read: No such file or directory",
        ),
        (
            "folder named *.json",
            folder_named_json,
            ": not a regular file but a folder",
        ),
        (
            "executable is a FIFO",
            executable_is_a_fifo,
            "CODE-fifo.fd: not a regular file but a FIFO",
        ),
        (
            "executable links to /dev/zero",
            executable_links_to_dev_zero,
            "CODE-zero.fd: not a regular file but a character device",
        ),
        (
            "executable over 256 MiB",
            executable_over_its_limit,
            "268435457 bytes, over the 256 MiB limit",
        ),
        (
            "descriptor of 50 MiB",
            descriptor_over_its_limit,
            "bytes, over the 1 MiB limit",
        ),
        (
            "sparse descriptor of 4 GiB",
            descriptor_sparse_over_its_limit,
            "4294967296 bytes, over the 1 MiB limit",
        ),
        (
            "escape codes in the name",
            name_with_escape_codes,
            "hostile name",
        ),
        ("name not UTF-8", name_not_utf8, "invalid JSON"),
    ];
    for (what, setup, expected) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("descriptors");
        fs::create_dir(&dir).unwrap();
        add_good(&dir, tmp.path());
        let path = setup(&dir, tmp.path());
        let started = Instant::now();
        let list = discover("list", &dir, tmp.path());
        let plan = discover("plan", &dir, tmp.path());
        eprintln!("{what}: list and plan in {:?}", started.elapsed());
        assert_named(&list, &plan, &shown_path(&path), expected);
    }
}

#[test]
fn names_that_differ_only_in_bytes_that_are_not_utf8_stay_two_descriptors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("descriptors");
    fs::create_dir(&dir).unwrap();
    add_good(&dir, tmp.path());
    let code = tmp.path().join("CODE.fd");
    for (byte, description) in [(b'\xfe', "first"), (b'\xff', "second")] {
        let name = [b"20-".as_slice(), &[byte], b".json"].concat();
        let path = dir.join(std::ffi::OsStr::from_bytes(&name));
        fs::write(path, descriptor(&code, description)).unwrap();
    }
    let list = discover("list", &dir, tmp.path());
    assert!(
        list.stdout.contains("descriptors: 3 usable, 0 broken"),
        "{}",
        list.stdout
    );
    let entries = entries(&list.stdout);
    for (name, description) in [
        (r"20-\xfe.json  [", "first"),
        (r"20-\xff.json  [", "second"),
    ] {
        assert!(
            entries
                .iter()
                .any(|e| e.starts_with(name) && e.contains(description)),
            "{name} {description}:\n{}",
            list.stdout
        );
    }
}

/// Duplicates and masking across search folders (general to specific).
#[test]
fn list_says_what_overrides_masks_and_masks_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = corpus().join("layers");
    let dirs: Vec<PathBuf> = ["usr", "etc", "user"]
        .iter()
        .map(|d| layers.join(d))
        .collect();
    let qemu = fake_qemu();
    let mut args: Vec<&std::ffi::OsStr> = vec!["list".as_ref()];
    for dir in &dirs {
        args.extend(["--descriptors".as_ref(), dir.as_os_str()]);
    }
    args.extend([
        "--no-path-qemu".as_ref(),
        "--qemu".as_ref(),
        qemu.as_os_str(),
    ]);
    let list = bootmatrix(&args, tmp.path());
    assert_eq!(list.status, Some(0), "{}{}", list.stdout, list.stderr);
    let file = |dir: usize, name: &str| dirs[dir].join(name).display().to_string();
    let lines: Vec<&str> = list.stdout.lines().collect();
    for expected in [
        format!(
            "{} overrides {}",
            file(1, "50-duplicate.json"),
            file(0, "50-duplicate.json")
        ),
        format!(
            "{} masks {}",
            file(1, "60-masked.json"),
            file(0, "60-masked.json")
        ),
        format!("{} masks nothing", file(2, "70-masks-nothing.json")),
        format!("{} masks nothing", file(1, "90-empty-under-empty.json")),
        format!(
            "{} overrides {}",
            file(2, "80-broken-override.json"),
            file(0, "80-broken-override.json")
        ),
        format!(
            "skipped broken descriptor {}: invalid JSON",
            file(2, "80-broken-override.json")
        ),
    ] {
        assert!(
            lines.iter().any(|l| l.contains(&expected)),
            "expected {expected:?} in:\n{}",
            list.stdout
        );
    }
    assert!(list.stdout.contains("etc copy, used"), "{}", list.stdout);
    assert!(!list.stdout.contains("usr copy"), "{}", list.stdout);
}

/// `--kernel` and `--shim` are refused at once, exit 2, naming the option and the file.
#[test]
fn kernel_and_shim_that_are_no_regular_files_are_refused_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("vmlinuz-fifo");
    mkfifo(&fifo);
    let huge = tmp.path().join("vmlinuz-huge");
    sparse(&huge, (512 << 20) + 1);
    let empty = tmp.path().join("descriptors");
    fs::create_dir(&empty).unwrap();
    let qemu = fake_qemu();
    let fifo = fifo.display().to_string();
    let huge = huge.display().to_string();
    let cases: &[(&str, &str, &str)] = &[
        (
            "plan",
            "--kernel=/dev/zero",
            "--kernel /dev/zero: not a regular file but a character device",
        ),
        (
            "list",
            "--kernel=/dev/zero",
            "--kernel /dev/zero: not a regular file but a character device",
        ),
        (
            "plan",
            &format!("--kernel={fifo}"),
            &format!("--kernel {fifo}: not a regular file but a FIFO"),
        ),
        (
            "plan",
            &format!("--kernel={huge}"),
            "536870913 bytes, over the 512 MiB limit",
        ),
        (
            "plan",
            "--kernel=/",
            "--kernel /: not a regular file but a folder",
        ),
        (
            "run",
            "--shim=/dev/zero",
            "--shim /dev/zero: not a regular file but a character device",
        ),
        (
            "run",
            &format!("--shim={fifo}"),
            &format!("--shim {fifo}: not a regular file but a FIFO"),
        ),
    ];
    for (verb, option, expected) in cases {
        let out = tmp.path().join("out");
        let args: Vec<&std::ffi::OsStr> = vec![
            verb.as_ref(),
            option.as_ref(),
            "--descriptors".as_ref(),
            empty.as_os_str(),
            "--no-path-qemu".as_ref(),
            "--qemu".as_ref(),
            qemu.as_os_str(),
        ];
        let args: Vec<&std::ffi::OsStr> = if *verb == "run" {
            args.into_iter()
                .chain(["--out".as_ref(), out.as_os_str()])
                .collect()
        } else {
            args
        };
        let started = Instant::now();
        let ran = bootmatrix(&args, tmp.path());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{verb} {option}: slow"
        );
        assert_eq!(
            ran.status,
            Some(2),
            "{verb} {option}: {}{}",
            ran.stdout,
            ran.stderr
        );
        assert!(
            ran.stderr.contains(expected),
            "{verb} {option}: {}",
            ran.stderr
        );
    }
}

/// A package tree (`dpkg-deb -x`) whose descriptors and links lead out of it: each escape is a
/// broken descriptor naming the file, the field and the path; an absolute link is followed
/// inside the tree, never to the host file of its name; the good descriptor beside them stays.
#[test]
fn a_package_tree_whose_paths_lead_out_is_named_and_never_read_outside() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let scratch = fs::canonicalize(tmp.path()).unwrap();
    let root = scratch.join("tree");
    let dir = root.join("usr/share/qemu/firmware");
    let ovmf = root.join("usr/share/OVMF");
    fs::create_dir_all(&dir).unwrap();
    fs::create_dir_all(&ovmf).unwrap();
    fs::write(ovmf.join("CODE.fd"), b"firmware").unwrap();
    fs::write(ovmf.join("VARS.fd"), b"vars").unwrap();
    let write = |name: &str, device: &str, code: &str| {
        let mapping = match device {
            "flash" => serde_json::json!({
                "device": "flash",
                "executable": {"filename": code, "format": "raw"},
                "nvram-template": {"filename": "/usr/share/OVMF/VARS.fd", "format": "raw"}
            }),
            _ => serde_json::json!({"device": device, "filename": code}),
        };
        let text = serde_json::json!({
            "description": name,
            "interface-types": ["uefi"],
            "mapping": mapping,
            "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
            "features": ["secure-boot"]
        });
        fs::write(dir.join(name), text.to_string()).unwrap();
        dir.join(name)
    };
    write("99-good.json", "flash", "/usr/share/OVMF/CODE.fd");
    let dotdot = write("10-dotdot.json", "flash", "/usr/share/../../../etc/passwd");
    symlink("../escape/CODE.fd", ovmf.join("chain.fd")).unwrap();
    symlink("../../..", root.join("usr/share/escape")).unwrap();
    let chain = write("11-chain.json", "flash", "/usr/share/OVMF/chain.fd");
    symlink("/usr/share/OVMF/loop.fd", ovmf.join("loop.fd")).unwrap();
    let looped = write("12-loop.json", "flash", "/usr/share/OVMF/loop.fd");
    let memory = write("13-memory.json", "memory", "/../bios.bin");
    // A descriptor linking to a good one on the host: the tree has no such file.
    let host = scratch.join("host.json");
    fs::copy(dir.join("99-good.json"), &host).unwrap();
    let to_host = dir.join("14-to-host.json");
    symlink(&host, &to_host).unwrap();
    let up = dir.join("15-up.json");
    symlink("../../../../../../../../../../../etc/hostname", &up).unwrap();

    let list = discover("list", &dir, &scratch);
    let plan = discover("plan", &dir, &scratch);
    let out = format!("leads out of the package tree {}", shown_path(&root));
    for (path, expected) in [
        (
            &dotdot,
            format!(
                "mapping.executable.filename: /usr/share/../../../etc/passwd {}",
                out
            ),
        ),
        (
            &chain,
            format!(
                "mapping.executable.filename: /usr/share/OVMF/chain.fd {}",
                out
            ),
        ),
        (&looped, "more than 40 symbolic links".to_string()),
        (&memory, format!("mapping.filename: /../bios.bin {}", out)),
        (
            &to_host,
            "cannot read: No such file or directory".to_string(),
        ),
        (&up, out.clone()),
    ] {
        assert_named(&list, &plan, &shown_path(path), &expected);
    }
    assert!(
        list.stdout.contains("descriptors: 1 usable, 6 broken"),
        "{}",
        list.stdout
    );
}
