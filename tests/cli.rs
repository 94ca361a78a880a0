//! The `bootmatrix` command line itself: help, version, usage errors and their exit status,
//! the generated completions and man pages, and the invocations the other tests, the CI
//! scripts and the README use. Nothing here boots a guest: where a command discovers, it sees
//! only the fake QEMU (`tests/fixtures/fake-qemu`) and an empty descriptor folder.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::fake_qemu;
use rstest::rstest;

fn bootmatrix(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bootmatrix"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("bootmatrix starts")
}

struct Ran {
    status: i32,
    stdout: String,
    stderr: String,
}

fn ran(args: &[&str]) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let out = bootmatrix(args, dir.path());
    Ran {
        status: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The option names (`--jobs`) a help text lists.
fn options_in(help: &str) -> Vec<&str> {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect()
}

#[test]
fn version_prints_the_crate_version() {
    let r = ran(&["--version"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.trim(),
        format!("bootmatrix {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Every subcommand the README's command line section names has a help that exits 0, and
/// the top-level help lists it.
#[test]
fn each_documented_subcommand_has_help() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let top = ran(&["--help"]);
    assert_eq!(top.status, 0, "{}", top.stderr);
    for sub in [
        "list",
        "plan",
        "run",
        "explain",
        "lint",
        "completions",
        "man",
    ] {
        assert!(
            readme.contains(&format!("bootmatrix {sub} ")),
            "the README does not name `bootmatrix {sub}`"
        );
        assert!(
            top.stdout.lines().any(|l| l.trim_start().starts_with(sub)),
            "`bootmatrix --help` does not list {sub}:\n{}",
            top.stdout
        );
        for help in [&[sub, "--help"][..], &[sub, "-h"], &["help", sub]] {
            let r = ran(help);
            assert_eq!(r.status, 0, "{help:?}: {}", r.stderr);
            assert!(
                r.stdout.contains(&format!("Usage: bootmatrix {sub}")),
                "{help:?}:\n{}",
                r.stdout
            );
        }
    }
}

#[test]
fn each_subcommand_offers_only_its_own_options() {
    let help = |sub: &str| {
        let r = ran(&[sub, "--help"]);
        assert_eq!(r.status, 0, "{}", r.stderr);
        r.stdout
    };
    let run = help("run");
    let run_options = options_in(&run);
    for option in [
        "--descriptors",
        "--root",
        "--qemu",
        "--no-path-qemu",
        "--accel",
        "--filter",
        "--scenarios",
        "--profile",
        "--kernel",
        "--shim",
        "--out",
        "--jobs",
        "--timeout-scale",
        "--report-json",
        "--junit",
    ] {
        assert!(run_options.contains(&option), "run lacks {option}:\n{run}");
    }
    assert!(
        !run.contains("<CELL>"),
        "run shows explain's argument:\n{run}"
    );
    assert!(
        run.contains("Exit status: 0 when no cell failed or errored, 1 otherwise, 2 on bad usage"),
        "{run}"
    );

    let explain = help("explain");
    assert!(explain.contains("<CELL>"), "{explain}");
    let list = help("list");
    let plan = help("plan");
    for (sub, text, absent) in [
        (
            "explain",
            &explain,
            &["--junit", "--report-json", "--jobs", "--filter"][..],
        ),
        (
            "plan",
            &plan,
            &["--junit", "--report-json", "--jobs", "--timeout-scale"],
        ),
        (
            "list",
            &list,
            &["--junit", "--filter", "--out", "--profile", "--accel"],
        ),
    ] {
        let offered = options_in(text);
        for option in absent {
            assert!(!offered.contains(option), "{sub} offers {option}:\n{text}");
        }
    }
    // ... and refuses them, not only hides them.
    for wrong in [
        &["list", "--junit", "j.xml"][..],
        &["plan", "--junit=j.xml"],
        &["explain", "some-cell", "--report-json", "r.json"],
        &["list", "--filter", "x"],
    ] {
        let r = ran(wrong);
        assert_eq!(r.status, 2, "{wrong:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("unexpected argument"),
            "{wrong:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn a_misspelled_option_is_a_short_error_with_a_tip() {
    let r = ran(&["run", "--jbos", "2"]);
    assert_eq!(r.status, 2);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(r.stderr.contains("'--jbos'"), "{}", r.stderr);
    assert!(r.stderr.contains("'--jobs'"), "no tip: {}", r.stderr);
    assert!(
        r.stderr.lines().count() < 15,
        "the whole help, not a short error:\n{}",
        r.stderr
    );

    // An option given before the subcommand it belongs to points there.
    let r = ran(&["--filter", "x", "run"]);
    assert_eq!(r.status, 2);
    assert!(r.stderr.contains("run --filter"), "{}", r.stderr);
    assert!(r.stderr.lines().count() < 15, "{}", r.stderr);
}

#[rstest]
#[case::jobs_zero(&["run", "--jobs=0"], "--jobs")]
#[case::jobs_not_a_number(&["run", "--jobs", "many"], "--jobs")]
#[case::accel(&["run", "--accel=foo"], "--accel")]
#[case::accel_on_plan(&["plan", "--accel", "xen"], "--accel")]
#[case::profile(&["explain", "x", "--profile", "lax"], "--profile")]
#[case::filter(&["plan", "--filter", "(unclosed"], "--filter")]
#[case::filter_on_run(&["run", "--filter=a[", "--jobs", "1"], "--filter")]
#[case::timeout_zero(&["run", "--timeout-scale", "0"], "--timeout-scale")]
#[case::timeout_infinite(&["run", "--timeout-scale=inf"], "--timeout-scale")]
#[case::timeout_nan(&["explain", "x", "--timeout-scale", "NaN"], "--timeout-scale")]
#[case::qemu_without_path(&["list", "--qemu", "=/usr/share/qemu"], "--qemu")]
#[case::missing_value(&["run", "--out"], "--out")]
#[case::missing_cell(&["explain"], "<CELL>")]
#[case::unknown_shell(&["completions", "cmd"], "<SHELL>")]
#[case::shard_zero(&["plan", "--shard", "0/3"], "--shard")]
#[case::shard_past_the_end(&["run", "--shard=4/3"], "--shard")]
#[case::shard_not_k_of_n(&["run", "--shard", "2"], "--shard")]
#[case::shard_total_zero(&["run", "--shard-total", "0"], "--shard-total")]
#[case::shard_and_total(&["plan", "--shard", "1/2", "--shard-total", "2"], "--shard")]
fn a_bad_value_is_a_usage_error_naming_its_option(#[case] args: &[&str], #[case] named: &str) {
    let r = ran(args);
    assert_eq!(r.status, 2, "{args:?}: {}{}", r.stdout, r.stderr);
    assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    // clap's message: the error first, naming the option (a missing argument on the next line).
    let head: Vec<&str> = r.stderr.lines().take(2).collect();
    assert!(
        head[0].starts_with("error: ") && head.concat().contains(named),
        "{args:?}: {}",
        r.stderr
    );
}

#[test]
fn no_arguments_is_a_usage_error_that_shows_the_commands() {
    let r = ran(&[]);
    assert_eq!(r.status, 2);
    for sub in ["list", "plan", "run", "explain"] {
        assert!(r.stderr.contains(sub), "{}", r.stderr);
    }
}

#[rstest]
#[case::bash("bash", "complete -F _bootmatrix")]
#[case::zsh("zsh", "#compdef bootmatrix")]
#[case::fish("fish", "complete -c bootmatrix")]
fn completions_come_from_the_definition(#[case] shell: &str, #[case] marker: &str) {
    let r = ran(&["completions", shell]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains(marker), "{}", r.stdout);
    // The subcommands' own options are completed.
    for option in ["report-json", "timeout-scale", "no-path-qemu"] {
        assert!(r.stdout.contains(option), "{shell} lacks {option}");
    }
}

#[test]
fn man_prints_roff_and_writes_one_page_per_subcommand() {
    let r = ran(&["man"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains(".TH bootmatrix 1"), "{}", r.stdout);
    assert!(r.stdout.contains(".SH SUBCOMMANDS"), "{}", r.stdout);

    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let r = ran(&["man", "--out", pages.to_str().unwrap()]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    for name in [
        "bootmatrix",
        "bootmatrix-run",
        "bootmatrix-explain",
        "bootmatrix-man",
    ] {
        let page = pages.join(format!("{name}.1"));
        let text = std::fs::read_to_string(&page)
            .unwrap_or_else(|e| panic!("{}: {e}\nprinted: {}", page.display(), r.stdout));
        assert!(text.contains(&format!(".TH {name} 1")), "{text}");
        assert!(r.stdout.contains(&*page.to_string_lossy()), "{}", r.stdout);
    }
    let run = std::fs::read_to_string(pages.join("bootmatrix-run.1")).unwrap();
    assert!(run.contains("junit"), "{run}");
}

/// The fake QEMU and an empty descriptor folder: discovery runs, nothing is planned.
struct Empty {
    tmp: tempfile::TempDir,
    qemu: PathBuf,
}

impl Empty {
    fn new() -> Empty {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("descriptors")).unwrap();
        Empty {
            tmp,
            qemu: fake_qemu(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.tmp.path().join(name).to_string_lossy().into_owned()
    }

    fn run(&self, args: &[&str]) -> Ran {
        let out = bootmatrix(args, self.tmp.path());
        Ran {
            status: out.status.code().expect("exited, not killed"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The command lines of tests/cli_signals.rs, tests/common/run.rs, tests/qemu_boot.rs and the
/// README still parse, in both `--opt value` and `--opt=value` form: each gets as far as the
/// command itself.
#[test]
fn the_invocations_in_use_still_parse() {
    let e = Empty::new();
    let qemu = e.qemu.to_str().unwrap();
    let descriptors = e.path("descriptors");
    let out = e.path("run");
    let scenarios = format!("{}/scenarios", env!("CARGO_MANIFEST_DIR"));

    // tests/cli_signals.rs asks plan with its own options, run with --jobs too.
    let plan = e.run(&[
        "plan",
        "--no-path-qemu",
        "--qemu",
        qemu,
        "--descriptors",
        &descriptors,
        "--out",
        &out,
        "--filter",
        "sev-off/secure-boot/.*unsigned",
    ]);
    assert_eq!(plan.status, 0, "{}", plan.stderr);
    assert!(plan.stdout.contains("no cells"), "{}", plan.stdout);

    let list = e.run(&[
        "list",
        "--no-path-qemu",
        &format!("--qemu={qemu}"),
        &format!("--descriptors={descriptors}"),
    ]);
    assert_eq!(list.status, 0, "{}", list.stderr);
    assert!(
        list.stdout.contains("descriptors: 0 usable"),
        "{}",
        list.stdout
    );
    assert!(list.stdout.contains("qemu: "), "{}", list.stdout);

    // tests/common/run.rs and tests/qemu_boot.rs: run with the report options first. Nothing
    // matches, which is run's own error (exit 2), after parsing.
    let run = e.run(&[
        "run",
        "--out",
        &out,
        "--report-json",
        &e.path("report.json"),
        "--junit",
        &e.path("junit.xml"),
        "--scenarios",
        &scenarios,
        "--profile",
        "upstream",
        "--accel=tcg",
        "--timeout-scale=2.5",
        "--shim",
        qemu,
        "--descriptors",
        &descriptors,
        "--qemu",
        &format!("{qemu}=/usr/share/qemu"),
        "--no-path-qemu",
        "--filter",
        "^(40|50|60)-edk2-x86_64[a-z-]*/",
        "--jobs=2",
    ]);
    assert_eq!(run.status, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.starts_with(
            "bootmatrix: no cell matches --filter \"^(40|50|60)-edk2-x86_64[a-z-]*/\""
        ),
        "{}",
        run.stderr
    );

    // tests/qemu_boot.rs: explain with the cell before its options.
    let explain = e.run(&[
        "explain",
        "50-edk2-x86_64-secure/qemu-7.2.22/sev-off/kernel-boot/own-keys-vars-unsigned",
        "--profile",
        "upstream",
        "--out",
        &out,
        "--no-path-qemu",
        "--descriptors",
        &descriptors,
    ]);
    assert_eq!(explain.status, 2, "{}{}", explain.stdout, explain.stderr);
    assert!(
        explain.stderr.starts_with("bootmatrix: no cell \"50-edk2"),
        "{}",
        explain.stderr
    );
}

#[test]
fn expect_needs_one_build_and_names_what_it_found_instead() {
    let e = Empty::new();
    let descriptors = e.path("descriptors");
    let data = format!("{}/tests/data/descriptors", env!("CARGO_MANIFEST_DIR"));
    let none = e.run(&["expect", "--no-path-qemu"]);
    assert_eq!(none.status, 2, "{}", none.stderr);
    assert!(none.stderr.contains("--package"), "{}", none.stderr);
    let both = e.run(&["expect", "--package", "ovmf", "--firmware", "x.json"]);
    assert_eq!(both.status, 2, "{}", both.stderr);
    assert!(
        both.stderr.contains("cannot be used with"),
        "{}",
        both.stderr
    );
    let empty = e.run(&[
        "expect",
        "--package=ovmf",
        "--no-path-qemu",
        "--descriptors",
        &descriptors,
    ]);
    assert_eq!(empty.status, 2, "{}", empty.stderr);
    assert!(
        empty
            .stderr
            .contains("no descriptor names firmware of package \"ovmf\"; descriptors found: none"),
        "{}",
        empty.stderr
    );
    // A package nothing belongs to: the error lists the descriptors there are.
    let other = e.run(&[
        "expect",
        "--package=no-such-firmware",
        "--no-path-qemu",
        "--descriptors",
        &data,
    ]);
    assert_eq!(other.status, 2, "{}", other.stderr);
    assert!(
        other.stderr.contains("50-edk2-x86_64-secure.json"),
        "{}",
        other.stderr
    );
    let file = format!("{data}/50-edk2-x86_64-secure.json");
    let one = e.run(&[
        "expect",
        "--firmware",
        &file,
        "--no-path-qemu",
        "--descriptors",
        &data,
    ]);
    assert_eq!(one.status, 0, "{}", one.stderr);
    assert!(
        one.stdout.contains("\n50-edk2-x86_64-secure.json ("),
        "{}",
        one.stdout
    );
    assert!(
        !one.stdout.contains("\n60-edk2-x86_64.json ("),
        "{}",
        one.stdout
    );
}

/// A package tree as `dpkg-deb -x` leaves it, of two packages from one source (sid's split
/// ovmf): `TREE/usr/share/qemu/firmware` holds a descriptor naming `/usr/share/OVMF/CODE.fd`,
/// an absolute link the tree re-roots (its target does not exist on the host), and one whose
/// `..` leads out of the tree.
fn package_tree(tmp: &Path) -> PathBuf {
    let tree = tmp.join("tree");
    let firmware = tree.join("usr/share/qemu/firmware");
    std::fs::create_dir_all(&firmware).unwrap();
    let real = tree.join("bootmatrix-no-such-folder/ovmf");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::write(real.join("CODE.fd"), b"tree code").unwrap();
    std::fs::write(real.join("VARS.fd"), b"tree vars").unwrap();
    assert!(!Path::new("/bootmatrix-no-such-folder").exists());
    std::fs::create_dir_all(tree.join("usr/share/OVMF")).unwrap();
    std::os::unix::fs::symlink(
        "/bootmatrix-no-such-folder/ovmf/CODE.fd",
        tree.join("usr/share/OVMF/CODE.fd"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../../../bootmatrix-no-such-folder/ovmf/VARS.fd",
        tree.join("usr/share/OVMF/VARS.fd"),
    )
    .unwrap();
    let descriptor = |code: &str| {
        serde_json::json!({
            "description": "from the tree",
            "interface-types": ["uefi"],
            "mapping": {
                "device": "flash",
                "executable": {"filename": code, "format": "raw"},
                "nvram-template": {"filename": "/usr/share/OVMF/VARS.fd", "format": "raw"}
            },
            "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
            "features": ["secure-boot"]
        })
        .to_string()
    };
    std::fs::write(
        firmware.join("50-tree.json"),
        descriptor("/usr/share/OVMF/CODE.fd"),
    )
    .unwrap();
    std::fs::write(
        firmware.join("60-escape.json"),
        descriptor("/usr/share/../../../etc/passwd"),
    )
    .unwrap();
    for package in ["ovmf-generic", "ovmf-amdsev"] {
        let doc = tree.join("usr/share/doc").join(package);
        std::fs::create_dir_all(&doc).unwrap();
        let log = doc.join("changelog.Debian");
        std::fs::write(&log, "edk2 (2026.08-1) unstable; urgency=medium\n").unwrap();
        let status = Command::new("gzip").arg(&log).status().unwrap();
        assert!(status.success());
    }
    std::fs::canonicalize(tree).unwrap()
}

#[test]
fn a_descriptor_folder_in_a_package_tree_names_files_under_its_root() {
    let e = Empty::new();
    let qemu = e.qemu.to_str().unwrap();
    let tree = package_tree(e.tmp.path());
    let root = tree.to_str().unwrap();
    let folder = format!("{root}/usr/share/qemu/firmware");
    let list = e.run(&[
        "list",
        "--descriptors",
        &folder,
        "--no-path-qemu",
        "--qemu",
        qemu,
    ]);
    assert_eq!(list.status, 0, "{}{}", list.stdout, list.stderr);
    assert!(
        list.stdout.contains("descriptors: 1 usable, 1 broken"),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains(&format!(
            "flash split: {root}/bootmatrix-no-such-folder/ovmf/CODE.fd (raw), nvram-template \
             {root}/bootmatrix-no-such-folder/ovmf/VARS.fd (raw)"
        )),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains(&format!(
            "(edk2 2026.08-1 (source of ovmf-amdsev, ovmf-generic; unpacked in {root}))"
        )),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains(&format!(
            "skipped broken descriptor {folder}/60-escape.json: mapping.executable.filename: \
             /usr/share/../../../etc/passwd leads out of the package tree {root}"
        )),
        "{}",
        list.stdout
    );

    // The same descriptors copied out of the tree: --root names it.
    let copy = e.tmp.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(format!("{folder}/50-tree.json"), copy.join("50-tree.json")).unwrap();
    let copy = copy.to_str().unwrap();
    let rooted = e.run(&[
        "list",
        "--descriptors",
        copy,
        "--root",
        root,
        "--no-path-qemu",
        "--qemu",
        qemu,
    ]);
    assert_eq!(rooted.status, 0, "{}{}", rooted.stdout, rooted.stderr);
    assert!(
        rooted.stdout.contains(&format!(
            "flash split: {root}/bootmatrix-no-such-folder/ovmf/CODE.fd"
        )),
        "{}",
        rooted.stdout
    );
    // expect takes it too, and finds the build by the source the tree names.
    let expect = e.run(&[
        "expect",
        "--package",
        "edk2",
        "--descriptors",
        copy,
        &format!("--root={root}"),
        "--no-path-qemu",
        "--qemu",
        qemu,
    ]);
    assert_eq!(expect.status, 0, "{}{}", expect.stdout, expect.stderr);
    assert!(
        expect.stdout.contains("edk2 release: 2026.08"),
        "{}",
        expect.stdout
    );
    // Without it, the copy names the host's files, which do not exist.
    let plain = e.run(&[
        "list",
        "--descriptors",
        copy,
        "--no-path-qemu",
        "--qemu",
        qemu,
    ]);
    assert!(
        plain
            .stdout
            .contains("flash split: /usr/share/OVMF/CODE.fd"),
        "{}",
        plain.stdout
    );

    // --root needs --descriptors, and a folder.
    let alone = e.run(&["list", "--root", root]);
    assert_eq!(alone.status, 2, "{}", alone.stderr);
    assert!(alone.stderr.contains("--descriptors"), "{}", alone.stderr);
    let missing = e.path("missing");
    let bad = e.run(&["list", "--descriptors", copy, "--root", &missing]);
    assert_eq!(bad.status, 2, "{}{}", bad.stdout, bad.stderr);
    assert!(bad.stderr.contains("--root"), "{}", bad.stderr);
}

#[test]
fn table_prints_a_report_and_rewrites_only_the_readme_part_between_its_markers() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.json");
    let golden = golden.to_str().unwrap();
    let printed = ran(&["table", golden]);
    assert_eq!(printed.status, 0, "{}", printed.stderr);
    assert!(
        printed
            .stdout
            .contains("| 50-edk2-x86_64-secure | own-keys-vars/signed | `verified` pass |"),
        "{}",
        printed.stdout
    );

    let dir = tempfile::tempdir().unwrap();
    let readme = dir.path().join("README.md");
    let begin = bootmatrix::report::table::BEGIN;
    let end = bootmatrix::report::table::END;
    std::fs::write(&readme, format!("# t\n{begin}\nstale\n{end}\nafter\n")).unwrap();
    let out = bootmatrix(
        &["table", golden, "--readme", readme.to_str().unwrap()],
        dir.path(),
    );
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&readme).unwrap();
    assert_eq!(
        text,
        format!("# t\n{begin}\n{}{end}\nafter\n", printed.stdout)
    );

    // No markers: the file is named and left alone; a report that is not one is named too.
    std::fs::write(&readme, "no markers\n").unwrap();
    let out = bootmatrix(
        &["table", golden, "--readme", readme.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("README.md"));
    assert_eq!(std::fs::read_to_string(&readme).unwrap(), "no markers\n");
    let bad = ran(&["table", "/dev/null"]);
    assert_eq!(bad.status, 2);
    assert!(bad.stderr.contains("/dev/null"), "{}", bad.stderr);
}

#[test]
fn table_takes_a_cell_of_a_later_report_over_the_same_cell_of_an_earlier_one() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.json");
    let mut report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&golden).unwrap()).unwrap();
    // The run again, where the verified kernel cell failed this time.
    for cell in report["cells"].as_array_mut().unwrap() {
        if cell["id"] == "kernel-verified" {
            cell["verdict"] = "fail".into();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let again = dir.path().join("again.json");
    std::fs::write(&again, report.to_string()).unwrap();
    let both = ran(&["table", golden.to_str().unwrap(), again.to_str().unwrap()]);
    assert_eq!(both.status, 0, "{}", both.stderr);
    assert!(
        both.stdout
            .contains("| 50-edk2-x86_64-secure | own-keys-vars/signed | `verified` fail |"),
        "{}",
        both.stdout
    );
    assert!(!both.stdout.contains("`verified` pass"), "{}", both.stdout);
}

#[test]
fn the_readme_holds_the_table_markers_table_writes_between() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let begin = readme
        .find(bootmatrix::report::table::BEGIN)
        .expect("begin marker");
    let end = readme
        .find(bootmatrix::report::table::END)
        .expect("end marker");
    assert!(begin < end);
}

/// `plan --json` of a fake firmware on the fake QEMU, with `env` set (and the CI engines'
/// variables cleared otherwise): its cell ids, or the exit status and stderr.
fn shard_plan(args: &[&str], env: &[(&str, &str)]) -> Result<Vec<String>, (i32, String)> {
    let tmp = tempfile::tempdir().unwrap();
    let descriptors = common::fake_firmware(tmp.path(), "60-fake", &["pc-q35-*"], &["amd-sev"]);
    let mut command = Command::new(env!("CARGO_BIN_EXE_bootmatrix"));
    command
        .args(["plan", "--json", "--no-path-qemu", "--qemu"])
        .arg(fake_qemu())
        .arg("--descriptors")
        .arg(&descriptors)
        .args(args)
        .current_dir(tmp.path());
    for name in ["CI_NODE_INDEX", "CI_NODE_TOTAL", "JOB_COMPLETION_INDEX"] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let out = command.output().unwrap();
    if !out.status.success() {
        return Err((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Ok(plan["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect())
}

#[test]
fn a_shard_comes_from_the_flag_or_from_the_ci_engines_variables() {
    let whole = shard_plan(&[], &[]).unwrap();
    let second = shard_plan(&["--shard", "2/3"], &[]).unwrap();
    assert!(
        !second.is_empty() && second.len() < whole.len(),
        "{second:?}"
    );
    let gitlab = shard_plan(&[], &[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "3")]).unwrap();
    assert_eq!(gitlab, second);
    // Kubernetes counts from 0.
    let k8s = shard_plan(&["--shard-total", "3"], &[("JOB_COMPLETION_INDEX", "1")]).unwrap();
    assert_eq!(k8s, second);
    // The flag wins over the variables.
    let flag = shard_plan(
        &["--shard", "2/3"],
        &[("CI_NODE_INDEX", "1"), ("CI_NODE_TOTAL", "3")],
    )
    .unwrap();
    assert_eq!(flag, second);
    for (args, env, named) in [
        (
            &[][..],
            &[("JOB_COMPLETION_INDEX", "1")][..],
            "--shard-total",
        ),
        (
            &[],
            &[("CI_NODE_INDEX", "4"), ("CI_NODE_TOTAL", "3")],
            "CI_NODE_INDEX",
        ),
        (&[], &[("CI_NODE_INDEX", "1")], "CI_NODE_TOTAL"),
        (&["--shard-total", "3"], &[], "JOB_COMPLETION_INDEX"),
    ] {
        let (status, stderr) = shard_plan(args, env).unwrap_err();
        assert_eq!(status, 2, "{env:?}: {stderr}");
        assert!(stderr.contains(named), "{env:?}: {stderr}");
    }
}
