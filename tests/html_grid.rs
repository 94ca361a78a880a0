//! The HTML grid in a real browser: Debian's `chromium`, headless, loads the page
//! `report::html::page` writes, runs its script under its Content-Security-Policy and dumps the
//! DOM, which must show the report's own counts, one mark per cell, a known deviation unlike
//! every other verdict, the panel of a cell named in the URL, and the filters of the URL. A
//! screenshot of a larger merged report is kept as `target/artifacts/html-grid.png` (with the
//! page beside it, `html-grid.html`).
//!
//! Skipped, saying so, only where `chromium` is not installed (`apt install chromium`;
//! `./ci/setup` installs it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bootmatrix::discover::qemu::Version;
use bootmatrix::judge::VerdictKind;
use bootmatrix::plan::shard::Shard;
use bootmatrix::report::html;
use bootmatrix::report::record::{CellRecord, EvidenceRecord, Report, RunRecord};
use bootmatrix::run::Figures;
use regex::Regex;
use serde_json::Value;

/// Each chromium run; it takes about a second.
const LIMIT: Duration = Duration::from_secs(120);

const HOSTILE: &str = "</script><img src=x onerror=alert(1)><!--";

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

/// The browser, or None after saying why the test is skipped.
fn browser() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        eprintln!("skipped: chromium is not installed (apt install chromium)");
    }
    found
}

/// Runs headless chromium on `args` (its own profile in `profile`), bounded by [`LIMIT`]
/// (killed with its whole process group past it); its stdout.
fn run_chromium(browser: &Path, profile: &Path, args: &[String]) -> String {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .env("HOME", profile);
    bootmatrix::tools::run_bounded(&mut cmd, LIMIT, "chromium").unwrap_or_else(|e| panic!("{e}"))
}

/// The DOM of `page` after its script ran, the URL's fragment `fragment`.
fn dump_dom(browser: &Path, page: &Path, fragment: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("{}{fragment}", file_url(page));
    let dom = run_chromium(browser, profile.path(), &["--dump-dom".into(), url]);
    assert!(dom.contains("</html>"), "no DOM dumped: {dom}");
    dom
}

/// `%XX` for every byte but `A-Z a-z 0-9 - . _ ~` (as `encodeURIComponent`, and more).
fn uri_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `file://` URL of an absolute path (each part percent-encoded).
fn file_url(path: &Path) -> String {
    let parts: Vec<String> = path
        .to_str()
        .expect("a UTF-8 temporary path")
        .split('/')
        .map(uri_component)
        .collect();
    format!("file://{}", parts.join("/"))
}

/// An attribute value or text as the DOM serializer wrote it, read back.
fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The text of the element with this id, unescaped.
fn text_of(dom: &str, id: &str) -> Option<String> {
    let re = Regex::new(&format!(r#"\bid="{}"[^>]*>([^<]*)<"#, regex::escape(id))).unwrap();
    re.captures(dom).map(|c| unescape(&c[1]))
}

fn count_in(dom: &str, id: &str) -> usize {
    let text = text_of(dom, id).unwrap_or_else(|| panic!("no #{id} in the DOM"));
    text.parse()
        .unwrap_or_else(|e| panic!("#{id} is {text:?}: {e}"))
}

/// A mark of the DOM: its attributes, and whether it is hidden.
#[derive(Debug)]
struct Mark {
    id: String,
    verdict: String,
    check: String,
    hidden: bool,
    pressed: bool,
}

fn marks(dom: &str) -> Vec<Mark> {
    let tag = Regex::new(r#"<[a-z]+ [^>]*\bclass="mark"[^>]*>"#).unwrap();
    let attr = |tag: &str, name: &str| {
        Regex::new(&format!(r#"\b{name}="([^"]*)""#))
            .unwrap()
            .captures(tag)
            .map(|c| unescape(&c[1]))
    };
    tag.find_iter(dom)
        .map(|m| {
            let t = m.as_str();
            Mark {
                id: attr(t, "data-id").expect("data-id"),
                verdict: attr(t, "data-verdict").expect("data-verdict"),
                check: attr(t, "data-check").expect("data-check"),
                hidden: Regex::new(r#"\shidden(="")?[\s>]"#).unwrap().is_match(t),
                pressed: attr(t, "aria-pressed").as_deref() == Some("true"),
            }
        })
        .collect()
}

/// The cells of each verdict in the report itself.
fn verdict_counts(report: &Report) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&str, usize> =
        VerdictKind::ALL.iter().map(|k| (k.as_str(), 0)).collect();
    for c in &report.cells {
        *counts.get_mut(c.verdict.as_str()).unwrap() += 1;
    }
    counts
}

/// The DOM after the script ran has the report's counts, one mark per cell (the cell's id,
/// verdict and check), nothing the page's self-check disputes, and a known deviation that
/// looks unlike every other verdict.
fn assert_dom_is_the_report(dom: &str, report: &Report) {
    assert!(
        !dom.contains(r#"id="mismatch""#),
        "the page disputes its own data: {}",
        text_of(dom, "mismatch").unwrap_or_default()
    );
    let counts = verdict_counts(report);
    for (verdict, n) in &counts {
        assert_eq!(count_in(dom, &format!("count-{verdict}")), *n, "{verdict}");
        // Set by the script, from the marks it shows: proof that the script ran.
        assert_eq!(count_in(dom, &format!("shown-{verdict}")), *n, "{verdict}");
    }
    assert_eq!(count_in(dom, "count-total"), report.cells.len());
    assert_eq!(count_in(dom, "shown-total"), report.cells.len());
    let marks = marks(dom);
    assert_eq!(marks.len(), report.cells.len());
    assert_eq!(
        dom.matches(r#"class="mark""#).count(),
        report.cells.len(),
        "class=\"mark\" elements"
    );
    let mut seen: Vec<(String, String, String)> = marks
        .iter()
        .map(|m| (m.id.clone(), m.verdict.clone(), m.check.clone()))
        .collect();
    let mut expected: Vec<(String, String, String)> = report
        .cells
        .iter()
        .map(|c| {
            (
                c.id.clone(),
                c.verdict.as_str().into(),
                c.check.as_str().into(),
            )
        })
        .collect();
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
    for (verdict, n) in &counts {
        let of_kind = marks.iter().filter(|m| m.verdict == *verdict).count();
        assert_eq!(of_kind, *n, "{verdict} marks");
    }
    assert!(marks.iter().all(|m| !m.hidden), "nothing is filtered yet");
    // How the browser drew the first mark of each verdict.
    let looks: Value = serde_json::from_str(&text_of(dom, "computed-styles").unwrap())
        .expect("computed-styles is JSON");
    let deviation = &looks["known-deviation"];
    assert!(
        deviation.is_object(),
        "no known-deviation mark drawn: {looks}"
    );
    assert!(
        deviation["shape"].as_str().unwrap().contains("polygon"),
        "{looks}"
    );
    for (verdict, look) in looks.as_object().unwrap() {
        if verdict == "known-deviation" {
            continue;
        }
        for property in ["background", "shape", "glyph"] {
            assert_ne!(deviation[property], look[property], "{verdict} {property}");
        }
    }
    assert!(!dom.contains("<img"), "markup from the report came alive");
}

fn golden() -> Report {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.json");
    Report::read(&path).unwrap()
}

/// The figures of a run of `cells`, as the runner adds them up.
fn figures(cells: &[CellRecord], wall_ms: u64, slots: usize) -> Figures {
    let booted: Vec<&CellRecord> = cells.iter().filter(|c| c.elapsed_ms.is_some()).collect();
    Figures {
        wall_ms,
        prepare_ms: 2_300,
        slots,
        cells: cells.len(),
        booted: booted.len(),
        sum_decided_ms: cells.iter().filter_map(|c| c.decided_ms).sum(),
        sum_elapsed_ms: booted.iter().filter_map(|c| c.elapsed_ms).sum(),
        overhead_mean_ms: 35,
        overhead_max_ms: 120,
        deadline_cells: cells.iter().filter(|c| c.id.contains("deadline")).count(),
    }
}

fn run_record(cells: &[CellRecord], run_dir: &Path, wall_ms: u64) -> RunRecord {
    RunRecord {
        plan_fingerprint: "0123456789abcdef".repeat(4),
        planned: cells.iter().map(|c| c.id.clone()).collect(),
        shard: None,
        run_dir: run_dir.to_path_buf(),
        started: "2026-05-01T10:00:00Z".into(),
        figures: figures(cells, wall_ms, 2),
    }
}

/// The golden report (one cell of every kind) and a cell full of markup, with a run record,
/// its cells' log folders under `dir/cells`.
fn small_report(dir: &Path) -> Report {
    let mut report = golden();
    let mut hostile = report.cell("sb-fail-contradiction").unwrap().clone();
    hostile.id = format!("hostile\"{HOSTILE}");
    hostile.reason = HOSTILE.into();
    hostile.observed.evidence.push(EvidenceRecord {
        stream: bootmatrix::boot::Console::Serial,
        at_ms: 3999,
        line: HOSTILE.into(),
    });
    report.cells.push(hostile);
    for (n, c) in report.cells.iter_mut().enumerate() {
        if c.log_dir.is_some() {
            let log = dir.join("cells").join(format!("cell-{n}"));
            std::fs::create_dir_all(&log).unwrap();
            c.log_dir = Some(log);
        }
    }
    report.run = Some(run_record(&report.cells, dir, 42_000));
    report
}

fn write_page(report: &Report, dir: &Path) -> PathBuf {
    let path = dir.join("report.html");
    std::fs::write(&path, html::page(report, dir)).unwrap();
    path
}

#[test]
fn the_browser_shows_the_report_s_counts_and_one_mark_per_cell() {
    let Some(browser) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    let report = small_report(dir.path());
    let page = write_page(&report, dir.path());
    let dom = dump_dom(&browser, &page, "");
    assert_dom_is_the_report(&dom, &report);
    assert!(text_of(&dom, "detail-id").is_none(), "no cell chosen yet");
    let figures = &report.run.as_ref().unwrap().figures;
    assert!(dom.contains(&format!(r#"id="fig-wall" data-ms="{}""#, figures.wall_ms)));
    assert!(dom.contains(&format!(
        r#"id="fig-qemu" data-ms="{}""#,
        figures.sum_elapsed_ms
    )));
    assert_eq!(count_in(&dom, "fig-slots"), figures.slots);
    assert_eq!(count_in(&dom, "fig-deadline"), figures.deadline_cells);
    assert_eq!(count_in(&dom, "count-missing"), 0);
}

#[test]
fn the_panel_of_a_cell_named_in_the_url_shows_its_rule_evidence_argv_and_logs() {
    let Some(browser) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    let report = small_report(dir.path());
    let page = write_page(&report, dir.path());
    let cell = report.cell("kernel-deviation").unwrap();
    let dom = dump_dom(
        &browser,
        &page,
        &format!("#cell={}", uri_component(&cell.id)),
    );
    assert_eq!(
        text_of(&dom, "detail-id").as_deref(),
        Some(cell.id.as_str())
    );
    let expectation = cell.expectation.as_ref().unwrap();
    assert_eq!(
        text_of(&dom, "detail-because").as_deref(),
        Some(expectation.because.as_str())
    );
    assert_eq!(
        text_of(&dom, "detail-expected"),
        Some(expectation.expect.payload.to_string())
    );
    assert_eq!(
        text_of(&dom, "detail-reason").as_deref(),
        Some(cell.reason.as_str())
    );
    let deviation = cell.deviation.as_ref().unwrap();
    assert_eq!(
        text_of(&dom, "detail-deviation"),
        Some(format!("{}: {}", deviation.id, deviation.reason))
    );
    assert_eq!(
        text_of(&dom, "detail-reference").as_deref(),
        Some(deviation.reference.as_str())
    );
    let rows = Regex::new(r#"id="detail-evidence".*?</table>"#)
        .unwrap()
        .find(&dom)
        .expect("the evidence table")
        .as_str()
        .matches("<tr>")
        .count();
    assert_eq!(rows, cell.evidence().len());
    for e in cell.evidence() {
        assert!(dom.contains(&html::escape(&e.line)), "{}", e.line);
    }
    let argv = text_of(&dom, "detail-argv").unwrap();
    assert_eq!(
        argv,
        bootmatrix::tools::shell_line(cell.argv.as_ref().unwrap())
    );
    // The log folder, relative to the page's folder, and it is there.
    let log = cell.log_dir.as_ref().unwrap();
    let relative = log.strip_prefix(dir.path()).unwrap();
    let link = Regex::new(r#"<a [^>]*id="detail-log"[^>]*>"#)
        .unwrap()
        .find(&dom)
        .expect("the log link")
        .as_str()
        .to_string();
    assert!(
        link.contains(&format!(r#"href="{}/""#, relative.display())),
        "{link}"
    );
    assert!(dir.path().join(relative).is_dir());
    let pressed: Vec<Mark> = marks(&dom).into_iter().filter(|m| m.pressed).collect();
    assert_eq!(pressed.len(), 1);
    assert_eq!(pressed[0].id, cell.id);
    // A cell that never booted has no link.
    let skipped = report.cell("sev-probe").unwrap();
    let dom = dump_dom(&browser, &page, &format!("#cell={}", skipped.id));
    assert_eq!(text_of(&dom, "detail-id").as_deref(), Some("sev-probe"));
    assert!(!dom.contains(r#"id="detail-log""#));
    assert!(dom.contains("no log folder"));
}

#[test]
fn markup_in_a_console_line_stays_text_in_the_browser() {
    let Some(browser) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    let report = small_report(dir.path());
    let page = write_page(&report, dir.path());
    let hostile = report.cells.last().unwrap();
    let dom = dump_dom(
        &browser,
        &page,
        &format!("#cell={}", uri_component(&hostile.id)),
    );
    assert_eq!(
        text_of(&dom, "detail-id").as_deref(),
        Some(hostile.id.as_str())
    );
    assert_eq!(text_of(&dom, "detail-reason").as_deref(), Some(HOSTILE));
    assert!(!dom.contains("<img"), "{dom}");
    assert_dom_is_the_report(&dom, &report);
}

#[test]
fn the_filters_in_the_url_hide_marks_and_recount_what_is_shown() {
    let Some(browser) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    let report = small_report(dir.path());
    let page = write_page(&report, dir.path());
    let dom = dump_dom(&browser, &page, "#hide=pass,skip&hidecheck=kernel-boot");
    let hidden = |c: &CellRecord| {
        matches!(c.verdict, VerdictKind::Pass | VerdictKind::Skip)
            || c.check.as_str() == "kernel-boot"
    };
    let marks = marks(&dom);
    assert_eq!(marks.len(), report.cells.len());
    for m in &marks {
        let cell = report.cell(&m.id).unwrap();
        assert_eq!(m.hidden, hidden(cell), "{}", m.id);
    }
    for (verdict, n) in verdict_counts(&report) {
        let shown = report
            .cells
            .iter()
            .filter(|c| c.verdict.as_str() == verdict && !hidden(c))
            .count();
        assert_eq!(count_in(&dom, &format!("count-{verdict}")), n, "{verdict}");
        assert_eq!(
            count_in(&dom, &format!("shown-{verdict}")),
            shown,
            "{verdict}"
        );
    }
    let shown = report.cells.iter().filter(|c| !hidden(c)).count();
    assert!(shown > 0 && shown < report.cells.len(), "{shown}");
    assert_eq!(count_in(&dom, "shown-total"), shown);
}

/// A merged report of three shards over three packages, three descriptors, three QEMUs and
/// two modes, each grid cell the golden report's cells under real ids.
fn large_report(dir: &Path) -> Report {
    let template = golden().cells;
    let packages = ["2020.11-2+deb11u2", "2022.11-6+deb12u2", "2025.02-8"];
    let descriptors = [
        "40-edk2-x86_64-secure-enrolled",
        "50-edk2-x86_64-secure",
        "60-edk2-x86_64",
    ];
    let qemus = [
        Version::new(5, 2, 0),
        Version::new(7, 2, 22),
        Version::new(10, 0, 2),
    ];
    let mut cells = Vec::new();
    for package in packages {
        for descriptor in descriptors {
            for qemu in qemus {
                for mode in ["sev-off", "sev-on"] {
                    for t in &template {
                        let mut c = t.clone();
                        c.id = format!(
                            "{descriptor}@{package}/qemu-{qemu}/{mode}/{}/{}/{}",
                            c.check, c.variant, t.id
                        );
                        c.descriptor = format!("{descriptor}.json");
                        c.firmware.package = Some(format!("ovmf {package}"));
                        c.qemu_version = qemu;
                        c.sev = mode == "sev-on";
                        if c.log_dir.is_some() {
                            c.log_dir = Some(dir.join("cells").join(&c.id));
                        }
                        cells.push(c);
                    }
                }
            }
        }
    }
    let shards: Vec<RunRecord> = cells
        .chunks(cells.len().div_ceil(3))
        .enumerate()
        .map(|(i, part)| RunRecord {
            shard: Some(Shard::new(i + 1, 3).unwrap()),
            figures: figures(part, 600_000 + 90_000 * i as u64, 2),
            ..run_record(part, &dir.join(format!("shard-{}", i + 1)), 0)
        })
        .collect();
    let mut run = run_record(&cells, dir, 0);
    run.figures = figures(
        &cells,
        shards.iter().map(|s| s.figures.wall_ms).max().unwrap(),
        6,
    );
    Report {
        run: Some(run),
        shards,
        cells,
    }
}

fn artifacts() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is under the target folder");
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Width and height from a PNG's IHDR, or why it is no PNG.
fn png_size(bytes: &[u8]) -> Result<(u32, u32), String> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return Err(format!("no PNG ({} bytes)", bytes.len()));
    }
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    Ok((be(16), be(20)))
}

#[test]
fn a_screenshot_of_a_merged_report_is_kept_as_an_artifact() {
    let Some(browser) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    let report = large_report(dir.path());
    assert_eq!(report.cells.len(), 3 * 3 * 3 * 2 * golden().cells.len());
    let page = write_page(&report, dir.path());
    let dom = dump_dom(&browser, &page, "");
    assert_dom_is_the_report(&dom, &report);
    let sum: u64 = report.shards.iter().map(|s| s.figures.wall_ms).sum();
    assert!(dom.contains(&format!(r#"id="fig-shards-wall-sum" data-ms="{sum}""#)));
    for (i, shard) in report.shards.iter().enumerate() {
        let id = format!("shard-{}-wall", i + 1);
        assert!(dom.contains(&format!(r#"id="{id}" data-ms="{}""#, shard.figures.wall_ms)));
    }
    let artifacts = artifacts();
    let png = artifacts.join("html-grid.png");
    let _ = std::fs::remove_file(&png);
    std::fs::copy(&page, artifacts.join("html-grid.html")).unwrap();
    let deviation = report
        .cells
        .iter()
        .find(|c| c.verdict == VerdictKind::KnownDeviation)
        .unwrap();
    let profile = tempfile::tempdir().unwrap();
    run_chromium(
        &browser,
        profile.path(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1600,1000".into(),
            format!("{}#cell={}", file_url(&page), uri_component(&deviation.id)),
        ],
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert_eq!(png_size(&bytes), Ok((1600, 1000)), "{}", png.display());
    assert!(
        bytes.len() > 30_000,
        "{} is {} bytes: a blank page?",
        png.display(),
        bytes.len()
    );
    eprintln!("screenshot: {}", png.display());
}

#[test]
fn the_png_check_refuses_what_is_no_png() {
    assert!(png_size(b"").is_err());
    assert!(png_size(&[0u8; 64]).is_err());
    let mut header = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    header.extend(1600u32.to_be_bytes());
    header.extend(1000u32.to_be_bytes());
    assert_eq!(png_size(&header), Ok((1600, 1000)));
    assert_eq!(uri_component("a+b/c d"), "a%2Bb%2Fc%20d");
    assert_eq!(
        file_url(Path::new("/tmp/a b/r.html")),
        "file:///tmp/a%20b/r.html"
    );
    assert_eq!(unescape("&amp;lt; &lt;"), "&lt; <");
}
