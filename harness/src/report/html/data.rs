//! The data the page's script reads: for every cell (in report order, the index of its mark)
//! what the detail panel shows, each piece of text as the page shows it.

use std::path::Path;

use serde::Serialize;

use super::{folder_href, relative_path};
use crate::judge::VerdictKind;
use crate::report::record::{CellRecord, Report};
use crate::tools::{shell_line, shown};

/// The longest console line or reason kept; the longest command line.
const LINE_MAX: usize = 4000;
const ARGV_MAX: usize = 40_000;

#[derive(Serialize)]
struct Data {
    verdicts: Vec<&'static str>,
    cells: Vec<Detail>,
}

#[derive(Serialize)]
struct Detail {
    id: String,
    verdict: &'static str,
    check: &'static str,
    variant: String,
    package: String,
    descriptor: String,
    executable: String,
    qemu: String,
    mode: &'static str,
    accel: String,
    reason: String,
    expectation: Option<Expected>,
    /// The outcome and its description: `legacy-silent: ...`.
    observed: Option<String>,
    /// `[stream, +3.421 s, line]`.
    evidence: Vec<[String; 3]>,
    argv: Option<String>,
    deviation: Option<Deviation>,
    log: Option<Log>,
}

#[derive(Serialize)]
struct Expected {
    rule: String,
    profile: String,
    /// `refused`, `runs, SecureBoot=1`.
    expected: String,
    because: String,
}

#[derive(Serialize)]
struct Deviation {
    id: String,
    reason: String,
    reference: String,
}

#[derive(Serialize)]
struct Log {
    /// The relative `href` (percent-encoded, ends in `/`).
    href: String,
    /// The same path as text.
    path: String,
}

fn line(s: &str) -> String {
    shown(s, LINE_MAX)
}

fn detail(c: &CellRecord, dir: &Path) -> Detail {
    let observed = c.observed.payload.map(|p| match &c.observed.description {
        Some(d) => format!("{p}: {d}"),
        None => p.to_string(),
    });
    Detail {
        id: line(&c.id),
        verdict: c.verdict.as_str(),
        check: c.check.as_str(),
        variant: c.variant.to_string(),
        package: line(&super::grid::build(c).package),
        descriptor: line(&c.descriptor),
        executable: line(&c.firmware.executable.to_string_lossy()),
        qemu: c.qemu_version.to_string(),
        mode: super::grid::mode(c).as_str(),
        accel: c.accel.to_string(),
        reason: line(&c.reason),
        expectation: c.expectation.as_ref().map(|e| {
            let mut expected = e.expect.payload.to_string();
            if let Some(sb) = e.expect.secure_boot {
                expected.push_str(&format!(", SecureBoot={sb}"));
            }
            if let Some(sm) = e.expect.setup_mode {
                expected.push_str(&format!(", SetupMode={sm}"));
            }
            Expected {
                rule: line(&e.rule),
                profile: e.profile.to_string(),
                expected,
                because: line(&e.because),
            }
        }),
        observed: observed.map(|o| line(&o)),
        evidence: c
            .evidence()
            .iter()
            .map(|e| {
                [
                    e.stream.as_str().to_string(),
                    format!("+{}.{:03} s", e.at_ms / 1000, e.at_ms % 1000),
                    line(&e.line),
                ]
            })
            .collect(),
        argv: c.argv.as_ref().map(|a| shown(&shell_line(a), ARGV_MAX)),
        deviation: c.deviation.as_ref().map(|d| Deviation {
            id: line(&d.id),
            reason: line(&d.reason),
            reference: line(&d.reference),
        }),
        log: c.log_dir.as_deref().map(|log| {
            let relative = relative_path(dir, log);
            Log {
                href: folder_href(&relative),
                path: line(&relative.to_string_lossy()),
            }
        }),
    }
}

/// The data as JSON for a `<script type="application/json">` element: `<`, `>` and `&` (and
/// the line separators U+2028, U+2029) as `\u` escapes, which JSON reads back as they were,
/// so no text in it can end the element or start a comment.
pub fn json(report: &Report, dir: &Path) -> String {
    let data = Data {
        verdicts: VerdictKind::ALL.iter().map(|k| k.as_str()).collect(),
        cells: report.cells.iter().map(|c| detail(c, dir)).collect(),
    };
    // Plain structs of strings: serializing them cannot fail. Should it, the script finds no
    // cells and says that the page disagrees with its data.
    let text = serde_json::to_string(&data).unwrap_or_else(|_| "{}".into());
    script_safe(&text)
}

/// JSON text with every `<`, `>`, `&`, U+2028 and U+2029 as a `\u` escape. Outside strings JSON
/// has none of them, so the text means the same.
pub fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}
