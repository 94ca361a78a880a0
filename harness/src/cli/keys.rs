//! `bootmatrix keys FILE`: a varstore's Secure Boot keys and their key-health findings.

use std::fmt::Write;

use bootmatrix::discover::release::Edk2Release;
use bootmatrix::discover::varstore::{self, Cert, Varstore};
use bootmatrix::judge::keyhealth::{key_health, KeyFinding};
use bootmatrix::matrix::Profile;
use bootmatrix::scenario::Scenarios;
use bootmatrix::tools::{shown, shown_name};
use jiff::civil::Date;
use serde::Serialize;

use super::args::KeysArgs;

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct KeysReport<'a> {
    file: String,
    today: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    edk2: Option<Edk2Release>,
    setup_mode: bool,
    varstore: &'a Varstore,
    /// The findings by profile: `strict`, and `upstream` with --edk2.
    findings: Vec<ProfileFindings>,
}

#[derive(Debug, Serialize)]
struct ProfileFindings {
    profile: Profile,
    findings: Vec<KeyFinding>,
}

/// Runs `bootmatrix keys`; returns the exit status.
pub fn keys(args: &KeysArgs) -> u8 {
    let scenarios = match &args.scenarios {
        Some(dir) => match Scenarios::load_dir(dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("bootmatrix: {e}");
                return 2;
            }
        },
        None => Scenarios::builtin(),
    };
    let mut store = match varstore::read(&args.file) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("bootmatrix: {}", shown(&e.to_string(), 2000));
            return 1;
        }
    };
    store.recognize(&scenarios.well_known);
    let today = args.today.unwrap_or_else(today_utc);
    let mut profiles = vec![Profile::Strict];
    if args.edk2.is_some() {
        profiles.push(Profile::Upstream);
    }
    let findings: Vec<ProfileFindings> = profiles
        .into_iter()
        .map(|profile| ProfileFindings {
            profile,
            findings: key_health(&store, args.edk2, profile, &scenarios.well_known, today),
        })
        .collect();
    let report = KeysReport {
        file: shown_name(args.file.as_os_str()),
        today: today.to_string(),
        edk2: args.edk2,
        setup_mode: store.setup_mode(),
        varstore: &store,
        findings,
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report).expect("the report serializes");
        println!("{text}");
    } else {
        print!("{}", text(&report));
    }
    0
}

fn today_utc() -> Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

/// The report for people.
fn text(r: &KeysReport) -> String {
    let mut out = String::new();
    let store = r.varstore;
    let _ = writeln!(out, "Varstore {}", r.file);
    let sb = match store.secure_boot_enable {
        Some(true) => "on",
        Some(false) => "off",
        None => "absent",
    };
    let _ = writeln!(out, "SecureBootEnable: {sb}");
    if store.setup_mode() {
        let _ = writeln!(out, "Setup mode: no PK enrolled");
    }
    certs(&mut out, "PK", &store.pk, "", r.today.as_str());
    certs(&mut out, "KEK", &store.kek, "", r.today.as_str());
    let db_hashes = format!(", {}", count(store.db_hashes, "hash"));
    certs(&mut out, "db", &store.db, &db_hashes, r.today.as_str());
    let dbx = &store.dbx;
    let _ = writeln!(
        out,
        "\ndbx: {} ({} SHA-256, {} certificates, {} other){}",
        count(dbx.entries(), "entry"),
        dbx.hashes,
        dbx.certs.len(),
        dbx.other,
        if dbx.only_empty_file_hash && dbx.entries() > 0 {
            ": only the SHA-256 of an empty file"
        } else {
            ""
        }
    );
    for cert in &dbx.certs {
        cert_lines(&mut out, cert, r.today.as_str());
    }
    for group in &r.findings {
        let release = match (group.profile, r.edk2) {
            (Profile::Upstream, Some(e)) => format!(", edk2 {e}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "\nkey-health ({} profile{release}, on {}):",
            group.profile.as_str(),
            r.today
        );
        for f in &group.findings {
            let _ = writeln!(out, "  {:<14} {}: {}", f.status.as_str(), f.rule, f.reason);
            for e in &f.evidence {
                let _ = writeln!(out, "                 - {}", shown(e, 400));
            }
            let _ = writeln!(out, "                 reference: {}", f.reference);
        }
    }
    out
}

fn certs(out: &mut String, var: &str, certs: &[Cert], extra: &str, today: &str) {
    let _ = writeln!(out, "\n{var}: {}{extra}", count(certs.len(), "certificate"));
    for cert in certs {
        cert_lines(out, cert, today);
    }
}

fn cert_lines(out: &mut String, cert: &Cert, today: &str) {
    let expired = match today.parse::<Date>() {
        Ok(day) if cert.expired_on(day) => " (expired)",
        _ => "",
    };
    let known = cert.well_known.as_deref().unwrap_or("-");
    let _ = writeln!(out, "  - subject: {}", shown(&cert.subject, 400));
    let _ = writeln!(out, "    issuer:  {}", shown(&cert.issuer, 400));
    let _ = writeln!(
        out,
        "    valid:   {} to {}{expired}",
        cert.not_before, cert.not_after
    );
    let _ = writeln!(out, "    known:   {}", shown(known, 200));
    let _ = writeln!(
        out,
        "    sha256:  {}",
        cert.sha256.get(..16).unwrap_or(&cert.sha256)
    );
}

/// `1 entry`, `2 entries`, `0 hashes`.
fn count(n: usize, word: &str) -> String {
    match (n, word) {
        (1, w) => format!("1 {w}"),
        (n, "entry") => format!("{n} entries"),
        (n, "hash") => format!("{n} hashes"),
        (n, w) => format!("{n} {w}s"),
    }
}
