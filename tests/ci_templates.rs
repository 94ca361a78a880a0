//! The CI templates of `ci/templates/`, run here so that they cannot rot: the shell steps of
//! each (GitLab's `script`, GitHub Actions' `run:` steps, the autopkgtest script) on this
//! machine, over a cheap slice of its matrix, every shard in a folder of its own as a CI job
//! would have it, then the shards merged by the templates' own merge steps.
//!
//! Not run: installation and building. The templates keep them in GitLab's `before_script` and
//! in GitHub steps named "Set up ...", and leave `bootmatrix` in PATH; here the machine is set
//! up already and `bootmatrix` is this build's binary, linked into a PATH folder of the test.
//! Any other step this test would not run (an `after_script`, an action it does not know, a
//! job it does not expect) fails it, and so does a set-up step that runs bootmatrix or a run
//! step that installs.
//!
//! GitHub's actions are emulated: `actions/checkout` does nothing (the steps run need nothing
//! from the checkout), `actions/upload-artifact` copies its `path` (a folder: its contents) to
//! an artifact named `name`, `actions/download-artifact` with a `pattern` copies every artifact
//! whose name matches into `PATH/NAME/` (the layout of download-artifact v4 without
//! `merge-multiple`), with a `name` into `PATH/`. GitLab's artifacts: the `artifacts:paths`
//! of every shard job copied into the merge job's folder.
//!
//! The slice, [`FILTER`]: the SEV-on cells (no SEV here: skipped, or refused by the planner)
//! and as-bios, where QEMU refuses Debian's 4 MiB builds as a `-bios` ROM at once (`pass`).
//! QEMU is started, no guest boots; about a second per shard.
#![cfg(feature = "qemu")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod ci_steps;

use bootmatrix::judge::VerdictKind;
use bootmatrix::report::record::Report;
use bootmatrix::tools::{run_bounded, Ended};
use ci_steps::*;
use regex::Regex;
use yaml_rust2::Yaml;

/// The cells the templates run here.
const FILTER: &str = "/sev-on/|/as-bios/";

// --- GitLab --------------------------------------------------------------------------------

const GITLAB_TOP: &[&str] = &["variables", "stages", "default"];
const GITLAB_JOB: &[&str] = &[
    "stage",
    "parallel",
    "needs",
    "when",
    "before_script",
    "script",
    "artifacts",
    "variables",
    "image",
];

#[test]
fn gitlab_template_runs_three_shards_and_merges_them() {
    let doc = load("gitlab-ci.yml");
    let jobs: Vec<String> = keys(&doc, "gitlab-ci.yml")
        .into_iter()
        .filter(|k| !k.starts_with('.') && !GITLAB_TOP.contains(&k.as_str()))
        .collect();
    assert_eq!(jobs, ["bootmatrix", "merge"], "the jobs this test runs");
    only_keys(&doc["default"], &["image", "before_script"], "default");
    let default_setup = lines(&doc["default"]["before_script"], "default");
    for job in &jobs {
        let node = &doc[job.as_str()];
        only_keys(node, GITLAB_JOB, job);
        assert_no_bootmatrix(&default_setup, "default:before_script");
        assert_no_bootmatrix(&lines(&node["before_script"], job), job);
        let script = lines(&node["script"], job);
        assert_installs_nothing(&script, &format!("{job}:script"));
        if job == "bootmatrix" {
            assert_narrowed(&script.join("\n"), job);
        }
        assert!(
            script.iter().any(|l| l.starts_with("bootmatrix ")),
            "{job}: the script calls bootmatrix by name"
        );
        assert_eq!(text(&node["artifacts"]["when"], job), "always", "{job}");
        assert!(
            node["variables"].is_badvalue(),
            "{job}: variables of its own"
        );
    }
    let shard_job = &doc["bootmatrix"];
    let merge_job = &doc["merge"];
    let total: usize = text(&shard_job["parallel"], "parallel").parse().unwrap();
    assert_eq!(total, 3);
    assert_eq!(lines(&merge_job["needs"], "needs"), ["bootmatrix"]);
    assert_eq!(text(&merge_job["when"], "merge"), "always");
    let junit = text(&merge_job["artifacts"]["reports"]["junit"], "junit");

    let mut variables = BTreeMap::new();
    for key in keys(&doc["variables"], "variables") {
        variables.insert(key.clone(), text(&doc["variables"][key.as_str()], &key));
    }
    assert_eq!(
        variables.get("BOOTMATRIX_FILTER").map(String::as_str),
        Some(""),
        "BOOTMATRIX_FILTER: empty by default (the whole matrix)"
    );
    let m = Machine::new();
    let planned = planned(&m, &["--filter", FILTER]);
    let merge_dir = m.folder("merge");
    let started = Instant::now();
    for index in 1..=total {
        let dir = m.folder(&format!("bootmatrix-{index}"));
        let mut env = m.env();
        env.extend(variables.clone());
        env.extend(
            [
                ("CI", "true".to_string()),
                ("GITLAB_CI", "true".to_string()),
                ("CI_JOB_NAME", format!("bootmatrix {index}/{total}")),
                ("CI_NODE_INDEX", index.to_string()),
                ("CI_NODE_TOTAL", total.to_string()),
                ("CI_PROJECT_DIR", dir.display().to_string()),
                ("BOOTMATRIX_FILTER", FILTER.to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        let script = lines(&shard_job["script"], "script").join("\n");
        shell(
            "sh",
            &script,
            &dir,
            &env,
            &format!("bootmatrix {index}/{total}"),
        );
        check_shard(
            &dir.join(format!("shards/{index}/report.json")),
            index,
            total,
            &planned,
        );
        for path in lines(&shard_job["artifacts"]["paths"], "artifacts") {
            copy(&dir.join(&path), &merge_dir.join(&path));
        }
    }
    let mut env = m.env();
    env.extend(variables);
    env.insert("CI".into(), "true".into());
    env.insert("CI_PROJECT_DIR".into(), merge_dir.display().to_string());
    let script = lines(&merge_job["script"], "script").join("\n");
    shell("sh", &script, &merge_dir, &env, "merge");
    let kept = lines(&merge_job["artifacts"]["paths"], "artifacts");
    assert!(
        kept.iter()
            .any(|p| merge_dir.join(&junit).starts_with(merge_dir.join(p))),
        "the JUnit report {junit} is not among the merge's artifacts {kept:?}"
    );
    assert!(merge_dir.join(&junit).is_file(), "{junit}");
    check_merged(&merge_dir.join("merged"), &planned, total);
    println!(
        "GitLab: {total} shards and the merge in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// --- GitHub Actions ------------------------------------------------------------------------

const GITHUB_JOB: &[&str] = &["runs-on", "container", "strategy", "steps", "needs", "if"];
const GITHUB_STEP: &[&str] = &["name", "uses", "run", "with", "if", "env"];

/// `${{ EXPR }}` replaced by `known[EXPR]`; fails on any other expression.
fn expand(text: &str, known: &BTreeMap<&str, String>) -> String {
    let expr = Regex::new(r"\$\{\{\s*(.*?)\s*\}\}").unwrap();
    expr.replace_all(text, |c: &regex::Captures| {
        known
            .get(&c[1])
            .unwrap_or_else(|| panic!("an expression this test does not know: {}", &c[0]))
            .clone()
    })
    .into_owned()
}

/// What `${{ ... }}` means in a job: the shard of the matrix, the dispatch input `filter`.
fn expressions(shard: Option<i64>) -> BTreeMap<&'static str, String> {
    let mut known = BTreeMap::from([("inputs.filter", FILTER.to_string())]);
    if let Some(shard) = shard {
        known.insert("matrix.shard", shard.to_string());
    }
    known
}

/// Runs a job's steps in `dir`: `run:` steps with `bash -e` (unless named "Set up ..."), the
/// actions emulated against the artifact store `store`.
fn run_job(m: &Machine, doc: &Yaml, job: &str, shard: Option<i64>, dir: &Path, store: &Path) {
    let node = &doc["jobs"][job];
    only_keys(node, GITHUB_JOB, job);
    let known = expressions(shard);
    let mut env = m.env();
    for (k, v) in [
        ("CI", "true".to_string()),
        ("GITHUB_ACTIONS", "true".to_string()),
        ("GITHUB_WORKSPACE", dir.display().to_string()),
    ] {
        env.insert(k.to_string(), v);
    }
    for key in keys(&doc["env"], "env") {
        env.insert(
            key.clone(),
            expand(&text(&doc["env"][key.as_str()], &key), &known),
        );
    }
    let mut ran = 0;
    for (i, step) in node["steps"].as_vec().expect("steps").iter().enumerate() {
        let what = format!("{job} step {}", i + 1);
        only_keys(step, GITHUB_STEP, &what);
        assert!(step["env"].is_badvalue(), "{what}: env of its own");
        if !step["if"].is_badvalue() {
            assert_eq!(text(&step["if"], &what), "always()", "{what}");
        }
        let name = match &step["name"] {
            Yaml::BadValue => String::new(),
            n => expand(&text(n, &what), &known),
        };
        let with = |key: &str| match &step["with"][key] {
            Yaml::BadValue => None,
            v => Some(expand(&text(v, &what), &known)),
        };
        if let Some(uses) = step["uses"].as_str() {
            let action = uses.split('@').next().unwrap();
            match action {
                "actions/checkout" => {}
                "actions/upload-artifact" => {
                    only_keys(&step["with"], &["name", "path"], &what);
                    let name = with("name").expect("an artifact name");
                    let path = with("path").expect("an artifact path");
                    copy(&dir.join(path), &store.join(name));
                }
                "actions/download-artifact" => {
                    only_keys(&step["with"], &["pattern", "name", "path"], &what);
                    let into = dir.join(with("path").unwrap_or_default());
                    download(store, &into, with("pattern"), with("name"));
                }
                other => panic!("{what}: an action this test does not emulate: {other}"),
            }
            continue;
        }
        let run = text(&step["run"], &what);
        let lines: Vec<String> = run.lines().map(str::to_string).collect();
        if name.starts_with("Set up") {
            assert_no_bootmatrix(&lines, &format!("{what} ({name})"));
            continue;
        }
        assert_installs_nothing(&lines, &format!("{what} ({name})"));
        if run.contains("bootmatrix run") {
            assert_narrowed(&run, &what);
        }
        shell(
            "bash",
            &expand(&run, &known),
            dir,
            &env,
            &format!("{job}: {name}"),
        );
        ran += 1;
    }
    assert!(ran > 0, "{job}: no step ran");
}

/// download-artifact v4: with `name`, that artifact into `into`; with `pattern`, every
/// matching artifact into `into/NAME`.
fn download(store: &Path, into: &Path, pattern: Option<String>, name: Option<String>) {
    if let Some(name) = name {
        copy(&store.join(name), into);
        return;
    }
    let pattern = pattern.expect("download-artifact: a name or a pattern");
    let glob = Regex::new(&format!(
        "^{}$",
        regex::escape(&pattern).replace(r"\*", ".*")
    ))
    .unwrap();
    let mut found = 0;
    for entry in std::fs::read_dir(store).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if glob.is_match(&name) {
            copy(&store.join(&name), &into.join(&name));
            found += 1;
        }
    }
    assert!(found > 0, "no artifact matches {pattern}");
}

#[test]
fn github_actions_template_runs_three_shards_and_merges_them() {
    let doc = load("github-actions.yml");
    only_keys(&doc, &["name", "on", "env", "jobs"], "github-actions.yml");
    let jobs = keys(&doc["jobs"], "jobs");
    let (shard_job, merge_job) = match jobs.as_slice() {
        [a, b] => (a.as_str(), b.as_str()),
        _ => panic!("two jobs, the shards and the merge: {jobs:?}"),
    };
    let strategy = &doc["jobs"][shard_job]["strategy"];
    only_keys(&strategy["matrix"], &["shard"], "matrix");
    let shards: Vec<i64> = strategy["matrix"]["shard"]
        .as_vec()
        .expect("matrix.shard is a list")
        .iter()
        .map(|s| s.as_i64().expect("a shard number"))
        .collect();
    assert_eq!(shards, [1, 2, 3]);
    let merge = &doc["jobs"][merge_job];
    assert_eq!(lines(&merge["needs"], "needs"), [shard_job]);
    assert_eq!(text(&merge["if"], "merge"), "always()");

    let m = Machine::new();
    let planned = planned(&m, &["--filter", FILTER]);
    let store = m.folder("artifacts");
    let started = Instant::now();
    for &shard in &shards {
        let dir = m.folder(&format!("shard-{shard}"));
        run_job(&m, &doc, shard_job, Some(shard), &dir, &store);
        let report = store.join(format!("bootmatrix-shard-{shard}/report.json"));
        check_shard(&report, shard as usize, shards.len(), &planned);
    }
    let dir = m.folder("merge");
    run_job(&m, &doc, merge_job, None, &dir, &store);
    check_merged(&dir.join("merged"), &planned, shards.len());
    let uploaded = store.join("bootmatrix-report");
    for file in ["report.json", "junit.xml", "report.html"] {
        assert!(uploaded.join(file).is_file(), "not uploaded: {file}");
    }
    println!(
        "GitHub Actions: {} shards and the merge in {:.1} s",
        shards.len(),
        started.elapsed().as_secs_f64()
    );
}

// --- autopkgtest ---------------------------------------------------------------------------

/// The stanzas of a deb822 file (`#` lines are comments), each field's value unfolded.
fn stanzas(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut all = vec![BTreeMap::new()];
    let mut last = String::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if line.trim().is_empty() {
            all.push(BTreeMap::new());
        } else if line.starts_with([' ', '\t']) {
            let value: &mut String = all.last_mut().unwrap().get_mut(&last).expect("a field");
            value.push(' ');
            value.push_str(line.trim());
        } else {
            let (key, value) = line.split_once(':').expect("Field: value");
            last = key.to_string();
            all.last_mut()
                .unwrap()
                .insert(last.clone(), value.trim().to_string());
        }
    }
    all.retain(|s| !s.is_empty());
    all
}

/// The root of trixie's unpacked ovmf (`BOOTMATRIX_EXTRA_OVMF`, set by ci/test, or what
/// ci/extra-ovmf prints): its descriptors are ROOT/usr/share/qemu/firmware.
fn ovmf_tree() -> PathBuf {
    let descriptors = match std::env::var("BOOTMATRIX_EXTRA_OVMF") {
        Ok(dir) => dir,
        Err(_) => {
            let mut cmd = Command::new(templates().join("../extra-ovmf"));
            run_bounded(&mut cmd, Duration::from_secs(600), "ci/extra-ovmf").unwrap()
        }
    };
    let descriptors = PathBuf::from(descriptors.trim());
    let root = descriptors.ancestors().nth(4).unwrap().to_path_buf();
    assert_eq!(root.join("usr/share/qemu/firmware"), descriptors);
    root
}

/// Runs `debian/tests/bootmatrix` as autopkgtest would, from the source tree `src`, and reads
/// the report it left in a new artifacts folder.
fn autopkgtest(m: &Machine, src: &Path, name: &str) -> Report {
    let artifacts = m.folder(&format!("{name}-artifacts"));
    let mut env = m.env();
    env.insert(
        "AUTOPKGTEST_ARTIFACTS".into(),
        artifacts.display().to_string(),
    );
    env.insert(
        "AUTOPKGTEST_TMP".into(),
        m.folder(name).display().to_string(),
    );
    env.insert("BOOTMATRIX_FILTER".into(), FILTER.into());
    let cmd = Command::new(src.join("debian/tests/bootmatrix"));
    let out = bounded(cmd, src, &env, &format!("autopkgtest ({name})"));
    assert_success(&out, name);
    assert!(
        artifacts.join("junit.xml").is_file(),
        "{name}: no junit.xml"
    );
    Report::read(&artifacts.join("bootmatrix/report.json")).unwrap()
}

/// The report ran exactly the plan of `args`, every cell's firmware under `under`, with at
/// least one pass.
fn check_autopkgtest(m: &Machine, report: &Report, args: &[&str], under: &Path) {
    let ids: BTreeSet<String> = report.cells.iter().map(|c| c.id.clone()).collect();
    let mut plan_args = args.to_vec();
    plan_args.extend(["--filter", FILTER]);
    assert_eq!(ids, planned(m, &plan_args), "the cells of {args:?}");
    for cell in &report.cells {
        assert!(
            cell.firmware.executable.starts_with(under),
            "{}: firmware {} is not under {}",
            cell.id,
            cell.firmware.executable.display(),
            under.display()
        );
    }
    assert!(report.cells.iter().any(|c| c.verdict == VerdictKind::Pass));
}

#[test]
fn autopkgtest_template_tests_the_built_tree_else_the_installed_package() {
    let tests = templates().join("debian/tests");
    let control = std::fs::read_to_string(tests.join("control")).unwrap();
    let stanzas = stanzas(&control);
    assert_eq!(stanzas.len(), 1, "{control}");
    let stanza = &stanzas[0];
    assert_eq!(stanza.get("Tests").map(String::as_str), Some("bootmatrix"));
    let restrictions = stanza.get("Restrictions").cloned().unwrap_or_default();
    assert!(restrictions.contains("build-needed"), "{restrictions}");
    assert!(stanza["Depends"].split(',').any(|d| d.trim() == "@"));

    let script = std::fs::read_to_string(tests.join("bootmatrix")).unwrap();
    assert_narrowed(&script, "debian/tests/bootmatrix");

    let m = Machine::new();
    let src = m.folder("ovmf-src");
    copy(&tests, &src.join("debian/tests"));
    let tree = src.join("debian/ovmf");
    copy(&ovmf_tree(), &tree);
    let started = Instant::now();

    // The built tree: its descriptors, its files.
    let report = autopkgtest(&m, &src, "built-tree");
    let tree = tree.canonicalize().unwrap();
    let tree_args = [
        "--descriptors",
        &format!("{}/usr/share/qemu/firmware", tree.display()),
        "--root",
        tree.to_str().unwrap(),
    ];
    check_autopkgtest(&m, &report, &tree_args, &tree);
    let mut shipped: BTreeSet<String> = BTreeSet::new();
    for entry in std::fs::read_dir(tree.join("usr/share/qemu/firmware")).unwrap() {
        shipped.insert(entry.unwrap().file_name().into_string().unwrap());
    }
    let tested: BTreeSet<String> = report.cells.iter().map(|c| c.descriptor.clone()).collect();
    assert_eq!(
        tested, shipped,
        "every descriptor of the tree, and only those"
    );

    // No built tree: the installed package's descriptors.
    std::fs::remove_dir_all(&tree).unwrap();
    let report = autopkgtest(&m, &src, "installed");
    let system = ["--descriptors", "/usr/share/qemu/firmware"];
    check_autopkgtest(&m, &report, &system, Path::new("/usr/share"));
    println!(
        "autopkgtest: both runs in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // No bootmatrix in PATH: skipped, as `skippable` allows (exit 77).
    let mut env = m.env();
    env.insert("PATH".into(), "/usr/bin:/bin".into());
    env.insert(
        "AUTOPKGTEST_ARTIFACTS".into(),
        m.folder("none").display().to_string(),
    );
    let cmd = Command::new(src.join("debian/tests/bootmatrix"));
    let out = bounded(cmd, &src, &env, "autopkgtest without bootmatrix");
    assert!(
        matches!(out.ended, Ended::Exited(s) if s.code() == Some(77)),
        "{:?}: {}",
        out.ended,
        out.stderr
    );
    assert!(restrictions.contains("skippable"), "{restrictions}");
}
