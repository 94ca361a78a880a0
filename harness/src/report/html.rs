//! The report as one self-contained HTML page: a grid of the firmware builds (down) against the
//! QEMU versions and their confidential-guest modes (across), one mark per cell coloured and
//! shaped by its verdict, filters by verdict and check, and a panel with the cell's rule,
//! evidence, command line and a link to its log folder.
//!
//! The page loads nothing: its style, its script and the report's data are inline, and its
//! Content-Security-Policy allows only that style and that script (by their sha256), no image,
//! font, frame or connection. Everything from the report is text from consoles and files, so
//! hostile: it is HTML-escaped in the markup, and in the script's JSON `<`, `>` and `&` are
//! `\u003c`, `\u003e`, `\u0026`, so no console line can end the script element. The script
//! sets report text with `textContent` only.
//!
//! The page's state is its URL's fragment, so a link can point at a cell with filters set:
//! `report.html#hide=pass,skip&hidecheck=key-health&cell=ID`.

mod data;
mod grid;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::record::{Report, RunRecord};
use crate::judge::VerdictKind;

const STYLE: &str = include_str!("html/page.css");
const SCRIPT: &str = include_str!("html/page.js");

/// How a verdict's mark looks. Every verdict has its own colour, shape and glyph, so a mark
/// reads without colour too; a known deviation is an amber diamond with `!`.
pub struct Look {
    pub verdict: VerdictKind,
    pub colour: &'static str,
    /// The glyph's colour, readable on `colour`.
    pub ink: &'static str,
    /// The CSS that gives the mark its shape.
    pub shape: &'static str,
    pub glyph: &'static str,
}

pub const LOOKS: [Look; 5] = [
    Look {
        verdict: VerdictKind::Pass,
        colour: "#2e7d32",
        ink: "#fff",
        shape: "border-radius:2px",
        glyph: "",
    },
    Look {
        verdict: VerdictKind::Fail,
        colour: "#c62828",
        ink: "#fff",
        shape: "border-radius:0",
        glyph: "\u{2715}",
    },
    Look {
        verdict: VerdictKind::KnownDeviation,
        colour: "#f9a825",
        ink: "#000",
        shape: "clip-path:polygon(50% 0,100% 50%,50% 100%,0 50%);width:16px;height:16px",
        glyph: "!",
    },
    Look {
        verdict: VerdictKind::Skip,
        colour: "#bdbdbd",
        ink: "#000",
        shape: "border-radius:50%",
        glyph: "",
    },
    Look {
        verdict: VerdictKind::Error,
        colour: "#6a1b9a",
        ink: "#fff",
        shape: "clip-path:polygon(50% 0,100% 100%,0 100%);width:16px;height:15px",
        glyph: "?",
    },
];

/// One self-contained HTML page (no network: inline CSS and JS, the data inline) of `report`,
/// to be written into folder `dir` (links to log folders are relative to `dir`).
pub fn page(report: &Report, dir: &Path) -> String {
    let style = format!("{STYLE}{}", mark_style());
    let csp = format!(
        "default-src 'none'; style-src '{}'; script-src '{}'; base-uri 'none'; form-action 'none'",
        csp_hash(&style),
        csp_hash(SCRIPT)
    );
    let counts = super::counts(&report.cells);
    let total = report.cells.len();
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>bootmatrix report: {total} cells, {} fail, {} error</title>\n\
         <style>{style}</style>\n</head>\n<body>\n",
        counts[&VerdictKind::Fail],
        counts[&VerdictKind::Error],
    );
    header(&mut o, report, &counts);
    o.push_str("<main>\n<section id=\"grid-wrap\">\n");
    grid::render(&mut o, &report.cells);
    o.push_str(
        "</section>\n<aside id=\"detail\"><p class=\"hint\">Click a mark to see its cell: \
         the rule, the evidence, the command line and its logs.</p></aside>\n</main>\n",
    );
    let _ = write!(
        o,
        "<script type=\"application/json\" id=\"bm-data\">{}</script>\n\
         <script>{SCRIPT}</script>\n</body>\n</html>\n",
        data::json(report, dir)
    );
    o
}

/// The header: the run, the counts, the figures, the shards and the filters.
fn header(o: &mut String, report: &Report, counts: &BTreeMap<VerdictKind, usize>) {
    o.push_str("<header>\n<h1>bootmatrix report</h1>\n");
    match &report.run {
        Some(run) => {
            let what = match (&run.shard, report.shards.len()) {
                (_, n) if n > 0 => format!("merged from {n} shards"),
                (Some(s), _) => format!("shard {}/{}", s.index, s.total),
                (None, _) => "the whole matrix".into(),
            };
            let _ = writeln!(
                o,
                "<p id=\"run\">{what}, started {}, run folder <code>{}</code>, plan \
                 <code title=\"{}\">{}</code></p>",
                text(&run.started),
                text(&run.run_dir.to_string_lossy()),
                text(&run.plan_fingerprint),
                text(&run.plan_fingerprint.chars().take(12).collect::<String>()),
            );
        }
        None => o.push_str(
            "<p id=\"run\">no run record (a report of bootmatrix before 0.1): no figures</p>\n",
        ),
    }
    o.push_str("<div id=\"counts\">");
    for (kind, n) in counts {
        let v = kind.as_str();
        let _ = write!(
            o,
            "<span class=\"count\"><span class=\"swatch\" data-verdict=\"{v}\"></span>{v} \
             <b id=\"count-{v}\">{n}</b></span> "
        );
    }
    let _ = write!(
        o,
        "<span class=\"count\">total <b id=\"count-total\">{}</b></span>",
        report.cells.len()
    );
    if let Some(run) = &report.run {
        let missing = missing(run, report);
        let _ = write!(
            o,
            " <span class=\"count\">planned <b id=\"count-planned\">{planned}</b></span> \
             <span class=\"count{alarm}\">not in this report <b id=\"count-missing\">{missing}\
             </b></span>",
            planned = run.planned.len(),
            alarm = if missing > 0 { " alarm" } else { "" },
        );
    }
    o.push_str("</div>\n");
    if let Some(run) = &report.run {
        figures(o, run);
    }
    shards(o, &report.shards);
    filters(o, report, counts);
    o.push_str("<pre id=\"computed-styles\" hidden></pre>\n</header>\n");
}

/// Planned cells that have no record here.
fn missing(run: &RunRecord, report: &Report) -> usize {
    let ids: std::collections::HashSet<&str> = report.cells.iter().map(|c| c.id.as_str()).collect();
    run.planned
        .iter()
        .filter(|id| !ids.contains(id.as_str()))
        .count()
}

fn figures(o: &mut String, run: &RunRecord) {
    let f = &run.figures;
    let ms = |id: &str, ms: u64| format!("<dd id=\"{id}\" data-ms=\"{ms}\">{}</dd>", duration(ms));
    let n = |id: &str, n: usize| format!("<dd id=\"{id}\" data-n=\"{n}\">{n}</dd>");
    let _ = writeln!(
        o,
        "<dl id=\"figures\"><dt>wall time</dt>{}<dt>preparation</dt>{}<dt>slots</dt>{}\
         <dt>booted</dt>{}<dt>QEMU time</dt>{}<dt>decided after</dt>{}\
         <dt>harness per cell</dt><dd>{} mean, {} max</dd><dt>deadline cells</dt>{}</dl>",
        ms("fig-wall", f.wall_ms),
        ms("fig-prepare", f.prepare_ms),
        n("fig-slots", f.slots),
        n("fig-booted", f.booted),
        ms("fig-qemu", f.sum_elapsed_ms),
        ms("fig-decided", f.sum_decided_ms),
        duration(f.overhead_mean_ms),
        duration(f.overhead_max_ms),
        n("fig-deadline", f.deadline_cells),
    );
}

/// A merged report's shards: each one's wall time, and their sum.
fn shards(o: &mut String, shards: &[RunRecord]) {
    if shards.is_empty() {
        return;
    }
    o.push_str(
        "<table id=\"shards\"><thead><tr><th>shard</th><th>cells</th><th>wall time</th>\
         <th>QEMU time</th><th>slots</th><th>started</th></tr></thead><tbody>\n",
    );
    for (i, s) in shards.iter().enumerate() {
        let n = i + 1;
        let name = s
            .shard
            .map_or(format!("{n}"), |s| format!("{}/{}", s.index, s.total));
        let f = &s.figures;
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td id=\"shard-{n}-cells\">{}</td>\
             <td id=\"shard-{n}-wall\" data-ms=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&name),
            f.cells,
            f.wall_ms,
            duration(f.wall_ms),
            duration(f.sum_elapsed_ms),
            f.slots,
            text(&s.started),
        );
    }
    let sum: u64 = shards.iter().map(|s| s.figures.wall_ms).sum();
    let _ = writeln!(
        o,
        "</tbody><tfoot><tr><td colspan=\"2\">sum of the shards' wall times</td>\
         <td id=\"fig-shards-wall-sum\" data-ms=\"{sum}\">{}</td><td colspan=\"3\"></td></tr>\
         </tfoot></table>",
        duration(sum)
    );
}

/// Checkboxes by verdict and by check (the checks the report has), with what is shown.
fn filters(o: &mut String, report: &Report, counts: &BTreeMap<VerdictKind, usize>) {
    o.push_str("<form id=\"filters\"><fieldset><legend>verdict</legend>");
    for kind in counts.keys() {
        let v = kind.as_str();
        let _ = write!(
            o,
            "<label><input type=\"checkbox\" name=\"verdict\" value=\"{v}\" checked>\
             <span class=\"swatch\" data-verdict=\"{v}\"></span>{v} \
             <span class=\"shown\" id=\"shown-{v}\"></span></label> "
        );
    }
    o.push_str("</fieldset><fieldset><legend>check</legend>");
    for check in grid::checks(&report.cells) {
        let c = check.as_str();
        let _ = write!(
            o,
            "<label><input type=\"checkbox\" name=\"check\" value=\"{c}\" checked>\
             <abbr>{}</abbr> {c}</label> ",
            grid::abbreviation(check)
        );
    }
    let _ = writeln!(
        o,
        "</fieldset><p>shown <b id=\"shown-total\"></b> of {}</p></form>",
        report.cells.len()
    );
}

/// The CSS of the marks and swatches, from [`LOOKS`].
fn mark_style() -> String {
    let mut css = String::new();
    for look in &LOOKS {
        let v = look.verdict.as_str();
        let _ = writeln!(
            css,
            ".mark[data-verdict=\"{v}\"],.swatch[data-verdict=\"{v}\"]\
             {{background:{};color:{};{}}}\n.mark[data-verdict=\"{v}\"]::after\
             {{content:\"{}\"}}",
            look.colour, look.ink, look.shape, look.glyph
        );
    }
    css
}

/// `sha256-BASE64` of `text`, for the Content-Security-Policy.
fn csp_hash(text: &str) -> String {
    format!("sha256-{}", base64(&Sha256::digest(text.as_bytes())))
}

/// RFC 4648 base64, padded, as the policy wants it.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `35 ms`, `12.3 s`, `4 min 05 s`, `1 h 02 min`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms} ms"),
        1..60 => format!("{}.{} s", s, ms % 1000 / 100),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

/// The longest piece of report text shown (a console line, a reason); the rest is cut.
const TEXT_MAX: usize = 4000;

/// Report text for the page: control characters and bidirectional overrides shown escaped
/// (`\x1b`), cut at [`TEXT_MAX`], then HTML-escaped.
pub fn text(s: &str) -> String {
    escape(&crate::tools::shown(s, TEXT_MAX))
}

/// HTML-escaped, for text and for double- or single-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `to` as seen from the folder `from`. Both are made absolute against the current folder,
/// and `.` and `..` are taken lexically (symbolic links are not followed): `/runs/x` and
/// `/runs/x/cells/a` give `cells/a`, `/runs/x/html` gives `../cells/a`.
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let (from, to) = (lexical(from), lexical(to));
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to[common..] {
        out.push(part);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// The parts of `path` made absolute, with `.` dropped and `..` taking the part before away.
fn lexical(path: &Path) -> Vec<std::ffi::OsString> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut parts = Vec::new();
    for part in absolute.components() {
        match part {
            Component::Normal(p) => parts.push(p.to_os_string()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    parts
}

/// A relative path as the `href` of a folder: every byte but `A-Z a-z 0-9 - . _ ~ /`
/// percent-encoded (so no part of it reads as a scheme, a query or a fragment), with a
/// trailing `/`.
pub fn folder_href(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for b in path.as_os_str().as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(char::from(*b));
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    if !out.ends_with('/') {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::grid::{Build, Column, Grid};
    use super::*;
    use crate::discover::qemu::Version;
    use crate::matrix::{Check, Confidential};
    use crate::plan::shard::Shard;
    use crate::report::fixtures::every_shape;
    use crate::report::record::{CellRecord, EvidenceRecord};
    use crate::report::{records, report_json};
    use crate::run::Figures;
    use regex::Regex;
    use serde_json::Value;

    const HOSTILE: &str = "</script><img src=x onerror=alert(1)><!-- \u{202e}";

    fn cells() -> Vec<CellRecord> {
        records(&every_shape())
    }

    fn run(cells: &[CellRecord], wall_ms: u64) -> RunRecord {
        RunRecord {
            plan_fingerprint: "f".repeat(64),
            planned: cells.iter().map(|c| c.id.clone()).collect(),
            shard: None,
            run_dir: "/runs/x".into(),
            started: "2026-05-01T10:00:00Z".into(),
            figures: Figures {
                wall_ms,
                prepare_ms: 1500,
                slots: 2,
                cells: cells.len(),
                booted: 11,
                sum_decided_ms: 50_000,
                sum_elapsed_ms: 61_000,
                overhead_mean_ms: 40,
                overhead_max_ms: 90,
                deadline_cells: 1,
            },
        }
    }

    /// The text of the element with this id (`<tag id="ID" ...>TEXT<`).
    fn by_id<'a>(page: &'a str, id: &str) -> &'a str {
        let re = Regex::new(&format!(r#"id="{}"[^>]*>([^<]*)<"#, regex::escape(id))).unwrap();
        re.captures(page)
            .and_then(|c| c.get(1))
            .unwrap_or_else(|| panic!("no element {id}"))
            .as_str()
    }

    /// The page's data, as the script reads it.
    fn data(page: &str) -> Value {
        let start = page
            .find(r#"<script type="application/json" id="bm-data">"#)
            .unwrap();
        let rest = &page[start..];
        let json = &rest[rest.find('>').unwrap() + 1..rest.find("</script>").unwrap()];
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn hostile_report_text_is_escaped_and_cannot_end_the_script() {
        let mut cells = cells();
        let c = cells
            .iter_mut()
            .find(|c| c.id == "kernel-deviation")
            .unwrap();
        c.id = format!("x\"{HOSTILE}");
        c.reason = HOSTILE.into();
        c.descriptor = HOSTILE.into();
        c.firmware.package = Some(HOSTILE.into());
        c.observed.evidence.push(EvidenceRecord {
            stream: crate::boot::Console::Serial,
            at_ms: 7,
            line: HOSTILE.into(),
        });
        c.argv = Some(vec!["qemu".into(), HOSTILE.into()]);
        c.deviation.as_mut().unwrap().reason = HOSTILE.into();
        let page = page(&report_json(None, &cells), Path::new("/runs/x"));
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<!--"), "{page}");
        assert!(!page.contains('\u{202e}'), "the override is shown escaped");
        assert_eq!(page.matches("</script>").count(), 2, "only the page's own");
        assert_eq!(page.matches("<script").count(), 2);
        assert!(page.contains("&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"));
        assert!(
            page.contains(r#"data-id="x&quot;&lt;/script&gt;"#),
            "{page}"
        );
        // The data reads back as the text was (control characters shown escaped).
        let data = data(&page);
        let cell = data["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["reason"].as_str().unwrap().starts_with("</script>"))
            .expect("the hostile cell");
        let shown = "</script><img src=x onerror=alert(1)><!-- \\u{202e}";
        assert_eq!(cell["reason"], shown);
        assert_eq!(
            cell["evidence"].as_array().unwrap().last().unwrap()[2],
            shown
        );
        assert_eq!(cell["deviation"]["reason"], shown);
        assert!(cell["argv"].as_str().unwrap().contains("'</script>"));
        // No address outside the page, and a policy that would block one.
        assert!(!Regex::new(r#"(?i)(src|href)\s*=\s*["']?\s*https?:"#)
            .unwrap()
            .is_match(&page));
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(page.contains("default-src 'none'"));
    }

    #[test]
    fn the_policy_allows_exactly_the_page_s_style_and_script() {
        let page = page(&report_json(None, &cells()), Path::new("/"));
        let inline = |tag: &str| {
            let open = format!("<{tag}>");
            let start = page.find(&open).unwrap() + open.len();
            page[start..start + page[start..].find(&format!("</{tag}>")).unwrap()].to_string()
        };
        for tag in ["style", "script"] {
            let hash = csp_hash(&inline(tag));
            assert!(
                page.contains(&format!("{tag}-src '{hash}'")),
                "{tag}: {hash}"
            );
        }
        // base64 as the policy wants it (RFC 4648, padded).
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn links_go_relatively_from_the_page_folder_to_the_log_folder() {
        let rel = |from: &str, to: &str| relative_path(Path::new(from), Path::new(to));
        assert_eq!(rel("/runs/x", "/runs/x/cells/a"), Path::new("cells/a"));
        assert_eq!(
            rel("/runs/x/html", "/runs/x/cells/a"),
            Path::new("../cells/a")
        );
        assert_eq!(rel("/runs/x/", "/runs/y/cells"), Path::new("../y/cells"));
        assert_eq!(rel("/a/./b/../c", "/a/c/d"), Path::new("d"));
        assert_eq!(rel("/a", "/a"), Path::new("."));
        assert_eq!(rel("/", "/x/y"), Path::new("x/y"));
        assert_eq!(rel("/x/y", "/"), Path::new("../.."));
        // Relative to the current folder, both.
        assert_eq!(rel("out", "out/cells/a"), Path::new("cells/a"));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            relative_path(&cwd.join("out"), Path::new("out/cells")),
            Path::new("cells")
        );
        assert_eq!(
            folder_href(Path::new("../cells/ovmf@2022.11-6+deb12u2/a b:c?#")),
            "../cells/ovmf%402022.11-6%2Bdeb12u2/a%20b%3Ac%3F%23/"
        );
        assert_eq!(folder_href(Path::new("javascript:x")), "javascript%3Ax/");
        assert_eq!(folder_href(Path::new("cells/a/")), "cells/a/");
        // In the page: a cell's link from the folder the page is written to; none without logs.
        let report = report_json(None, &cells());
        let data = data(&page(&report, Path::new("/runs/x/html")));
        let cell = |id: &str| {
            data["cells"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == id)
                .unwrap()
                .clone()
        };
        assert_eq!(cell("sb-pass")["log"]["href"], "../cells/sb-pass/");
        assert_eq!(cell("sb-pass")["log"]["path"], "../cells/sb-pass");
        assert_eq!(cell("sev-probe")["log"], Value::Null);
    }

    #[test]
    fn known_deviations_look_apart_from_every_other_verdict() {
        let kinds: Vec<VerdictKind> = LOOKS.iter().map(|l| l.verdict).collect();
        assert_eq!(kinds, VerdictKind::ALL, "one look per verdict, in order");
        let deviation = LOOKS
            .iter()
            .find(|l| l.verdict == VerdictKind::KnownDeviation)
            .unwrap();
        for other in LOOKS.iter().filter(|l| l.verdict != deviation.verdict) {
            let v = other.verdict;
            assert_ne!(deviation.colour, other.colour, "{v}");
            assert_ne!(deviation.shape, other.shape, "{v}");
            assert_ne!(deviation.glyph, other.glyph, "{v}");
        }
        // Every verdict is told apart by shape or glyph, not by colour alone.
        for (i, a) in LOOKS.iter().enumerate() {
            for b in &LOOKS[i + 1..] {
                assert_ne!(a.colour, b.colour);
                assert!(a.shape != b.shape || a.glyph != b.glyph, "{}", a.verdict);
            }
        }
        let page = page(&report_json(None, &cells()), Path::new("/"));
        let mark = Regex::new(r#"<button [^>]*data-verdict="known-deviation"[^>]*>"#).unwrap();
        let marks: Vec<&str> = mark.find_iter(&page).map(|m| m.as_str()).collect();
        assert_eq!(marks.len(), 1, "{marks:?}");
        assert!(
            marks[0].contains(r#"data-id="kernel-deviation""#),
            "{}",
            marks[0]
        );
        assert!(
            marks[0]
                .contains(r#"title="kernel-deviation: known-deviation (test-legacy-fallback)""#),
            "{}",
            marks[0]
        );
        assert!(page.contains(&format!(
            ".swatch[data-verdict=\"known-deviation\"]{{background:{};color:{};{}}}",
            deviation.colour, deviation.ink, deviation.shape
        )));
    }

    /// Cells of every shape spread over two packages, two descriptors, two QEMUs and three
    /// modes, with real ids.
    fn spread() -> Vec<CellRecord> {
        let template = cells();
        let q7 = Version::new(7, 2, 22);
        let q10 = Version::new(10, 0, 2);
        let cases = [
            ("ovmf 2022.11-6+deb12u2", "40-enrolled.json", q10, "sev-off"),
            ("ovmf 2022.11-6+deb12u2", "40-enrolled.json", q7, "sev-on"),
            ("ovmf 2025.02-8", "60-plain.json", q7, "sev-off"),
            ("ovmf 2022.11-6+deb12u2", "50-secure.json", q7, "sev-off"),
            ("ovmf 2025.02-8", "40-enrolled.json", q10, "sev-snp"),
            ("ovmf 2022.11-6+deb12u2", "40-enrolled.json", q7, "sev-off"),
        ];
        let mut out = Vec::new();
        for (n, (package, descriptor, qemu, mode)) in cases.iter().enumerate() {
            for (k, t) in template.iter().enumerate().filter(|(k, _)| k % 3 == n % 3) {
                let mut c = t.clone();
                let label = package.split(' ').nth(1).unwrap();
                let stem = descriptor.trim_end_matches(".json");
                c.id = format!(
                    "{stem}@{label}/qemu-{qemu}/{mode}/{}/{}/{k}",
                    c.check, c.variant
                );
                c.descriptor = descriptor.to_string();
                c.firmware.package = Some(package.to_string());
                c.qemu_version = *qemu;
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn the_grid_has_builds_down_and_qemus_with_their_modes_across() {
        let cells = spread();
        let grid = Grid::new(&cells);
        let b = |p: &str, d: &str| Build {
            package: p.into(),
            descriptor: d.into(),
        };
        assert_eq!(
            grid.builds,
            [
                b("ovmf 2022.11-6+deb12u2", "40-enrolled.json"),
                b("ovmf 2022.11-6+deb12u2", "50-secure.json"),
                b("ovmf 2025.02-8", "60-plain.json"),
                b("ovmf 2025.02-8", "40-enrolled.json"),
            ]
        );
        let col = |qemu: Version, mode| Column { qemu, mode };
        let (q7, q10) = (Version::new(7, 2, 22), Version::new(10, 0, 2));
        assert_eq!(
            grid.columns,
            [
                col(q7, Confidential::Off),
                col(q7, Confidential::Sev),
                col(q10, Confidential::Off),
                col(q10, Confidential::SevSnp),
            ]
        );
        // Every cell in exactly one place, the place its fields name, ordered by check.
        let mut placed: Vec<usize> = grid.marks.values().flatten().copied().collect();
        placed.sort();
        assert_eq!(placed, (0..cells.len()).collect::<Vec<_>>());
        for ((row, column), list) in &grid.marks {
            let ranks: Vec<usize> = list
                .iter()
                .map(|i| {
                    Check::ALL
                        .iter()
                        .position(|c| *c == cells[*i].check)
                        .unwrap()
                })
                .collect();
            assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");
            for i in list {
                assert_eq!(grid.builds[*row].descriptor, cells[*i].descriptor);
                assert_eq!(grid.columns[*column].qemu, cells[*i].qemu_version);
                assert!(cells[*i].id.contains(grid.columns[*column].mode.as_str()));
            }
        }
        assert_eq!(
            grid.marks[&(0, 1)].len(),
            5,
            "40-enrolled, QEMU 7.2, SEV on"
        );
        // The table: QEMUs across with their modes below, builds down, a package spanning its
        // descriptors.
        let page = page(&report_json(None, &cells), Path::new("/"));
        let attr = |re: &str| -> Vec<String> {
            Regex::new(re)
                .unwrap()
                .captures_iter(&page)
                .map(|c| c[1].to_string())
                .collect()
        };
        assert_eq!(
            attr(r#"<th colspan="\d" class="qemu" data-qemu="([^"]+)""#),
            ["7.2.22", "10.0.2"]
        );
        assert_eq!(attr(r#"<th colspan="(\d)" class="qemu""#), ["2", "2"]);
        assert_eq!(
            attr(r#"<th class="mode" [^>]*>([^<]+)<"#),
            ["SEV off", "SEV on", "SEV off", "SEV-SNP"]
        );
        assert_eq!(
            attr(r#"<tr data-package="[^"]*" data-descriptor="([^"]+)""#),
            [
                "40-enrolled.json",
                "50-secure.json",
                "60-plain.json",
                "40-enrolled.json"
            ]
        );
        assert_eq!(attr(r#"<th class="package" rowspan="(\d)">"#), ["2", "2"]);
        assert_eq!(page.matches("<td data-qemu=").count(), 4 * 4);
        assert_eq!(page.matches(r#"class="mark""#).count(), cells.len());
    }

    #[test]
    fn a_mode_comes_from_the_id_or_else_from_the_sev_field() {
        let mut c = cells()[0].clone();
        assert_eq!(grid::mode(&c), Confidential::Off, "{}", c.id);
        c.sev = true;
        assert_eq!(grid::mode(&c), Confidential::Sev);
        c.id = "d@v/qemu-9.2.0/tdx/secure-boot/own-keys-vars/signed".into();
        assert_eq!(grid::mode(&c), Confidential::Tdx);
        c.id = "d@v/qemu-9.2.0/sev-es/secure-boot/own-keys-vars/signed".into();
        assert_eq!(grid::mode(&c), Confidential::SevEs);
        // The label of the id where the package does not name it.
        c.firmware.package = Some("ovmf 2022.11-6+deb12u2".into());
        assert_eq!(grid::build(&c).package, "ovmf 2022.11-6+deb12u2 @v");
        c.id = "d@2022.11-6+deb12u2/qemu-9.2.0/sev-es/x".into();
        assert_eq!(grid::build(&c).package, "ovmf 2022.11-6+deb12u2");
        c.firmware.package = None;
        assert_eq!(grid::build(&c).package, "@2022.11-6+deb12u2");
        c.id = "plain".into();
        assert_eq!(grid::build(&c).package, "package unknown");
    }

    #[test]
    fn the_header_counts_every_verdict_and_shows_the_figures() {
        let cells = cells();
        let mut report = report_json(Some(run(&cells, 125_000)), &cells);
        report.run.as_mut().unwrap().planned.push("not-run".into());
        let page = page(&report, Path::new("/runs/x"));
        for kind in VerdictKind::ALL {
            let n = cells.iter().filter(|c| c.verdict == *kind).count();
            assert_eq!(
                by_id(&page, &format!("count-{kind}")),
                n.to_string(),
                "{kind}"
            );
            // What is shown is the script's to count.
            assert_eq!(by_id(&page, &format!("shown-{kind}")), "", "{kind}");
        }
        assert_eq!(by_id(&page, "count-known-deviation"), "1");
        assert_eq!(by_id(&page, "count-total"), cells.len().to_string());
        assert_eq!(by_id(&page, "count-planned"), (cells.len() + 1).to_string());
        assert_eq!(by_id(&page, "count-missing"), "1");
        assert_eq!(by_id(&page, "fig-wall"), "2 min 05 s");
        assert!(page.contains(r#"id="fig-wall" data-ms="125000""#));
        assert_eq!(by_id(&page, "fig-qemu"), "1 min 01 s");
        assert_eq!(by_id(&page, "fig-slots"), "2");
        assert_eq!(by_id(&page, "fig-deadline"), "1");
        assert!(page.contains("the whole matrix"), "{page}");
        assert!(!page.contains(r#"id="shards""#));
        assert_eq!(duration(999), "999 ms");
        assert_eq!(duration(1_250), "1.2 s");
        assert_eq!(duration(3_725_000), "1 h 02 min");
    }

    #[test]
    fn a_merged_report_shows_each_shard_s_wall_time_and_their_sum() {
        let cells = cells();
        let mut report = report_json(Some(run(&cells, 70_000)), &cells);
        report.shards = [40_000, 65_500]
            .iter()
            .enumerate()
            .map(|(i, wall)| RunRecord {
                shard: Some(Shard::new(i + 1, 2).unwrap()),
                ..run(&cells, *wall)
            })
            .collect();
        let page = page(&report, Path::new("/runs/x"));
        assert!(page.contains("merged from 2 shards"));
        assert_eq!(by_id(&page, "shard-1-wall"), "40.0 s");
        assert_eq!(by_id(&page, "shard-2-wall"), "1 min 05 s");
        assert!(page.contains(r#"id="fig-shards-wall-sum" data-ms="105500""#));
        assert_eq!(by_id(&page, "fig-shards-wall-sum"), "1 min 45 s");
        assert!(page.contains("<td>2/2</td>"));
    }

    #[test]
    fn a_report_without_a_run_still_renders() {
        let cells = cells();
        let page = page(&report_json(None, &cells), Path::new("/runs/x"));
        assert!(page.contains("no run record"));
        assert!(!page.contains(r#"id="figures""#));
        assert!(!page.contains(r#"id="count-planned""#));
        assert_eq!(by_id(&page, "count-total"), cells.len().to_string());
        assert_eq!(page.matches(r#"class="mark""#).count(), cells.len());
        assert!(page.ends_with("</html>\n"));
        let data = data(&page);
        assert_eq!(data["cells"].as_array().unwrap().len(), cells.len());
        assert_eq!(data["verdicts"][2], "known-deviation");
        // Nor does an empty one fail.
        let empty = super::page(&report_json(None, &[]), Path::new("/"));
        assert_eq!(by_id(&empty, "count-total"), "0");
        assert!(empty.contains("This report has no cells."));
    }
}
