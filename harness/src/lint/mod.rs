//! `bootmatrix lint`: judges a VM runtime's own QEMU command line, without booting it.
//!
//! The line is parsed ([`argv`]), its firmware identified against the known descriptors by
//! path or sha256 ([`identify`]), and the findings decided ([`checks`]): each with an id, a
//! severity, the argv words it is about, the reason and a reference. The severity, reason and
//! reference of every id are data (`scenarios/lint.json`, [`crate::scenario::lint`]).

pub mod argv;
pub mod checks;
pub mod identify;
pub mod shape;

use serde::Serialize;

use crate::discover::Firmware;
use crate::scenario::lint::{FindingId, LintText, Severity};
use crate::scenario::Scenarios;
use crate::tools::shown;

use self::argv::QemuLine;
use self::checks::Loaded;
use self::identify::How;

/// One argv word a finding is about: its index in the line (the program is 0 when given) and
/// its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Word {
    pub index: usize,
    pub word: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: FindingId,
    pub severity: Severity,
    pub words: Vec<Word>,
    /// What this line adds: the descriptor, the release, the file.
    pub detail: String,
    pub reason: String,
    pub reference: String,
}

/// The firmware the line loads, as identified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seen {
    pub file: String,
    /// `bios` or `pflash`.
    pub loaded_as: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The descriptor's file name, when one names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identified_by: Option<How>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    pub features: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub argv: Vec<String>,
    pub firmware: Option<Seen>,
    pub findings: Vec<Finding>,
}

impl Report {
    /// 1 when any finding is an error, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.findings.iter().any(|f| f.severity == Severity::Error))
    }

    /// The finding ids, in order.
    pub fn ids(&self) -> Vec<FindingId> {
        self.findings.iter().map(|f| f.id).collect()
    }
}

/// Lints `argv` (QEMU's own words, with or without the program first) against `firmware`. The
/// error (bad input) names the word at fault.
pub fn lint(
    argv: &[String],
    firmware: &[Firmware],
    scenarios: &Scenarios,
) -> Result<Report, String> {
    if argv.is_empty() {
        return Err("no QEMU command line to lint".into());
    }
    let line = QemuLine::parse(argv)?;
    let code = match (&line.bios, &line.flash[0]) {
        (Some((at, file)), _) => Some((vec![at - 1, *at], file.clone(), true)),
        (None, Some(flash)) => Some((flash.at.clone(), flash.file.clone(), false)),
        (None, None) => None,
    };
    let loaded = code.map(|(at, file, bios)| {
        let sha256 = identify::sha256_of(&file);
        let vars = line.flash[1]
            .as_ref()
            .map(|v| (v.file.clone(), identify::sha256_of(&v.file)));
        let found = identify::identify(
            &file,
            sha256.as_deref(),
            vars.as_ref().map(|(f, s)| (f.as_str(), s.as_deref())),
            firmware,
        );
        (
            Loaded {
                at,
                file,
                bios,
                sha256,
                firmware: found.map(|(f, _)| f),
            },
            found.map(|(_, h)| h),
        )
    });
    let found = checks::check(&line, loaded.as_ref().map(|(l, _)| l), firmware, scenarios);
    let builtin;
    let texts: &[LintText] = if scenarios.lint.is_empty() {
        builtin = Scenarios::builtin().lint;
        &builtin
    } else {
        &scenarios.lint
    };
    let findings = found
        .into_iter()
        .map(|f| {
            let text = texts
                .iter()
                .find(|t| t.id == f.id)
                .expect("validated: every finding id has its text");
            Finding {
                id: f.id,
                severity: text.severity,
                words: line
                    .words_at(&f.at)
                    .into_iter()
                    .map(|(index, word)| Word { index, word })
                    .collect(),
                detail: f.detail,
                reason: text.reason.clone(),
                reference: text.reference.clone(),
            }
        })
        .collect();
    let firmware = loaded.map(|(l, how)| Seen {
        file: l.file.clone(),
        loaded_as: if l.bios { "bios" } else { "pflash" },
        sha256: l.sha256.clone(),
        descriptor: l.firmware.map(|f| f.descriptor.name.clone()),
        identified_by: how,
        package: l.firmware.and_then(|f| f.package.clone()),
        features: l
            .firmware
            .map(|f| {
                f.descriptor
                    .features
                    .iter()
                    .map(|x| x.to_string())
                    .collect()
            })
            .unwrap_or_default(),
    });
    Ok(Report {
        argv: argv.to_vec(),
        firmware,
        findings,
    })
}

/// How many characters of one word or path the text output shows.
const WORD: usize = 300;

/// The report for people: every text from the line or a file escaped ([`shown`]).
pub fn text(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    match &report.firmware {
        None => out.push_str("firmware: none given (QEMU's default)\n"),
        Some(s) => {
            let _ = write!(out, "firmware: {} ({})", shown(&s.file, WORD), s.loaded_as);
            match (&s.descriptor, s.identified_by) {
                (Some(d), Some(how)) => {
                    let how = match how {
                        How::Path => "by path",
                        How::Sha256 => "by sha256",
                    };
                    let _ = write!(out, " is {} ({how}", shown(d, WORD));
                    if let Some(p) = &s.package {
                        let _ = write!(out, "; {}", shown(p, WORD));
                    }
                    let _ = writeln!(out, "; features: {})", shown(&s.features.join(", "), WORD));
                }
                _ => out.push_str(", named by no descriptor\n"),
            }
        }
    }
    for f in &report.findings {
        let words: Vec<String> = f.words.iter().map(|w| shown(&w.word, WORD)).collect();
        let _ = writeln!(out, "\n{} {}", f.severity, f.id);
        if !words.is_empty() {
            let _ = writeln!(out, "  words: {}", words.join(" "));
        }
        let _ = writeln!(out, "  {}", shown(&f.detail, 4 * WORD));
        let _ = writeln!(out, "  why: {}", shown(&f.reason, 8 * WORD));
        let _ = writeln!(out, "  reference: {}", shown(&f.reference, 4 * WORD));
    }
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        out,
        "\n{} errors, {} warnings, {} infos",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    );
    out
}
