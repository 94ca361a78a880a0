//! `key-health`: a static look at a variable store's Secure Boot keys, pure.
//!
//! Microsoft's 2011 Secure Boot CAs expire in 2026 (KEK CA 2011 and UEFI CA 2011 in June,
//! Windows Production PCA 2011 in October); the 2023 set replaces them. A store with
//! Microsoft's keys enrolled should carry the 2023 set, a real dbx, and for every kind of
//! signer it trusts at least one CA still valid. Each rule gives a finding with the
//! certificates or counts it rests on, its reason and a public reference.
//!
//! The strict profile judges every rule. The upstream profile judges only what the build's
//! edk2 release promises: edk2's EnrollDefaultKeys enrolls the 2023 certificates since
//! stable202511, and its dbx holds nothing but the SHA-256 of an empty file, so `dbx-real` is
//! never an upstream promise.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::discover::release::Edk2Release;
use crate::discover::varstore::{Cert, CertSet, Role, Varstore, WellKnown};
use crate::matrix::Profile;

/// The first edk2 release whose EnrollDefaultKeys enrolls Microsoft's 2023 certificates.
pub const FIRST_2023_RELEASE: Edk2Release = Edk2Release {
    year: 2025,
    month: 11,
};

/// A key-health rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyRule {
    /// Microsoft UEFI CA 2023 and Microsoft Option ROM UEFI CA 2023 in db.
    #[serde(rename = "ms-2023-db")]
    Ms2023Db,
    /// Microsoft Corporation KEK 2K CA 2023 in KEK.
    #[serde(rename = "ms-2023-kek")]
    Ms2023Kek,
    /// dbx holds more than the SHA-256 of an empty file.
    #[serde(rename = "dbx-real")]
    DbxReal,
    /// Every kind of signer the store trusts has a CA that has not expired.
    #[serde(rename = "no-expired-only-path")]
    NoExpiredOnlyPath,
}

impl KeyRule {
    pub const ALL: [KeyRule; 4] = [
        KeyRule::Ms2023Db,
        KeyRule::Ms2023Kek,
        KeyRule::DbxReal,
        KeyRule::NoExpiredOnlyPath,
    ];

    pub fn id(self) -> &'static str {
        match self {
            KeyRule::Ms2023Db => "ms-2023-db",
            KeyRule::Ms2023Kek => "ms-2023-kek",
            KeyRule::DbxReal => "dbx-real",
            KeyRule::NoExpiredOnlyPath => "no-expired-only-path",
        }
    }

    /// The public reference the rule rests on.
    pub fn reference(self) -> &'static str {
        match self {
            KeyRule::Ms2023Db | KeyRule::Ms2023Kek => {
                "Microsoft, \"Windows Secure Boot certificate expiration and CA updates\" \
                 (support.microsoft.com); certificates: github.com/microsoft/secureboot_objects; \
                 edk2-stable202511 OvmfPkg EnrollDefaultKeys enrolls the 2023 set"
            }
            KeyRule::DbxReal => {
                "UEFI revocation list file (uefi.org/revocationlistfile) and \
                 github.com/microsoft/secureboot_objects (dbx updates); edk2 OvmfPkg \
                 EnrollDefaultKeys enrolls a dbx of only the SHA-256 of an empty file"
            }
            KeyRule::NoExpiredOnlyPath => {
                "Microsoft, \"Windows Secure Boot certificate expiration and CA updates\" \
                 (support.microsoft.com): KEK CA 2011 expires 2026-06-24, UEFI CA 2011 \
                 2026-06-27, Windows Production PCA 2011 2026-10-19"
            }
        }
    }
}

impl std::fmt::Display for KeyRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// A finding's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyStatus {
    Pass,
    Fail,
    NotApplicable,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Pass => "pass",
            KeyStatus::Fail => "fail",
            KeyStatus::NotApplicable => "not-applicable",
        }
    }
}

/// One rule's finding on one store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFinding {
    pub rule: KeyRule,
    pub status: KeyStatus,
    /// The certificates and counts it rests on, one fact a line.
    pub evidence: Vec<String>,
    pub reason: String,
    pub reference: String,
}

/// Every rule's finding on `store`, in [`KeyRule::ALL`] order. `known` names the well-known
/// certificates (by thumbprint, else subject); `today` is the day expiry is judged on.
pub fn key_health(
    store: &Varstore,
    edk2: Option<Edk2Release>,
    profile: Profile,
    known: &[WellKnown],
    today: Date,
) -> Vec<KeyFinding> {
    KeyRule::ALL
        .iter()
        .map(|&rule| {
            let (status, evidence, reason) = match gate(rule, store, edk2, profile, known) {
                Some(why) => (KeyStatus::NotApplicable, Vec::new(), why),
                None => judge_rule(rule, store, known, today),
            };
            KeyFinding {
                rule,
                status,
                evidence,
                reason,
                reference: rule.reference().to_string(),
            }
        })
        .collect()
}

/// Why `rule` is not judged on this store under this profile, if it is not.
fn gate(
    rule: KeyRule,
    store: &Varstore,
    edk2: Option<Edk2Release>,
    profile: Profile,
    known: &[WellKnown],
) -> Option<String> {
    if store.setup_mode() {
        return Some(
            "no PK: the store is in setup mode, so Secure Boot is not enforced and its keys \
             are enrolled later"
                .to_string(),
        );
    }
    if profile == Profile::Upstream {
        if rule == KeyRule::DbxReal {
            return Some(
                "not an upstream promise: edk2's EnrollDefaultKeys enrolls a dbx of only the \
                 SHA-256 of an empty file"
                    .to_string(),
            );
        }
        match edk2 {
            None => {
                return Some(format!(
                    "the edk2 release is unknown; upstream enrolls Microsoft's 2023 \
                     certificates since {FIRST_2023_RELEASE}"
                ))
            }
            Some(r) if r < FIRST_2023_RELEASE => {
                return Some(format!(
                    "edk2 {r} predates {FIRST_2023_RELEASE} (stable202511), the first release \
                     that enrolls Microsoft's 2023 certificates: not an upstream promise"
                ))
            }
            Some(_) => {}
        }
    }
    let microsoft = store
        .kek
        .iter()
        .chain(&store.db)
        .any(|c| known.iter().any(|k| k.matches(c)));
    (!microsoft).then(|| {
        "no well-known Microsoft CA in KEK or db: the store has its own keys, not Microsoft's"
            .to_string()
    })
}

/// The certificates of the variable `role` belongs in that are well-known ones of `role`.
fn of_role<'a>(
    store: &'a Varstore,
    known: &'a [WellKnown],
    role: Role,
    set: Option<CertSet>,
) -> impl Iterator<Item = (&'a WellKnown, &'a Cert)> {
    let var = match role {
        Role::Kek => &store.kek,
        _ => &store.db,
    };
    known
        .iter()
        .filter(move |k| k.role == role && set.is_none_or(|s| k.set == s))
        .flat_map(move |k| var.iter().filter(|c| k.matches(c)).map(move |c| (k, c)))
}

fn short(sha: &str) -> &str {
    sha.get(..16).unwrap_or(sha)
}

fn judge_rule(
    rule: KeyRule,
    store: &Varstore,
    known: &[WellKnown],
    today: Date,
) -> (KeyStatus, Vec<String>, String) {
    match rule {
        KeyRule::Ms2023Db => need_2023(
            store,
            known,
            "db",
            &[Role::DbThirdParty, Role::DbOptionRom],
            "db carries the 2023 CAs that sign shim and third-party drivers and option ROMs",
            "without them, boot loaders and option ROMs signed only under the 2023 CAs are \
             refused, and nothing new is signed under the 2011 UEFI CA after it expires",
        ),
        KeyRule::Ms2023Kek => need_2023(
            store,
            known,
            "KEK",
            &[Role::Kek],
            "KEK carries the 2023 KEK CA, so db and dbx updates signed by it apply",
            "without it, no db or dbx update signed after KEK CA 2011 expires can be applied",
        ),
        KeyRule::DbxReal => {
            let dbx = &store.dbx;
            let mut evidence = vec![format!(
                "dbx: {} entries ({} SHA-256, {} certificates, {} other)",
                dbx.entries(),
                dbx.hashes,
                dbx.certs.len(),
                dbx.other
            )];
            if dbx.only_empty_file_hash {
                evidence.push(if dbx.entries() == 0 {
                    "dbx is empty".into()
                } else {
                    "dbx holds only the SHA-256 of an empty file (e3b0c442...)".into()
                });
                (
                    KeyStatus::Fail,
                    evidence,
                    "dbx revokes nothing: boot loaders Microsoft has revoked (BlackLotus, \
                     BootHole-era shims) still run"
                        .into(),
                )
            } else {
                (
                    KeyStatus::Pass,
                    evidence,
                    "dbx holds real revocations".into(),
                )
            }
        }
        KeyRule::NoExpiredOnlyPath => {
            let mut evidence = Vec::new();
            let mut expired_classes = Vec::new();
            for role in Role::ALL {
                let certs: Vec<(&WellKnown, &Cert)> = of_role(store, known, role, None).collect();
                if certs.is_empty() {
                    continue;
                }
                let listed: Vec<String> = certs
                    .iter()
                    .map(|(k, c)| {
                        let state = if c.expired_on(today) {
                            "expired"
                        } else {
                            "valid until"
                        };
                        format!("{} ({state} {})", k.name, c.not_after)
                    })
                    .collect();
                evidence.push(format!("{role}: {}", listed.join(", ")));
                if certs.iter().all(|(_, c)| c.expired_on(today)) {
                    expired_classes.push(role.as_str());
                }
            }
            if evidence.is_empty() {
                return (
                    KeyStatus::NotApplicable,
                    evidence,
                    "no well-known signer class in KEK or db".into(),
                );
            }
            if expired_classes.is_empty() {
                (
                    KeyStatus::Pass,
                    evidence,
                    format!("every signer class present has a CA valid on {today}"),
                )
            } else {
                (
                    KeyStatus::Fail,
                    evidence,
                    format!(
                        "on {today} every CA of {} has expired: firmware does not check expiry \
                         when it verifies, but nothing new is signed under an expired CA, so \
                         that path receives no new boot loaders, option ROMs or key updates",
                        expired_classes.join(", ")
                    ),
                )
            }
        }
    }
}

/// A pass when `var` has a 2023 well-known certificate of each of `roles`.
fn need_2023(
    store: &Varstore,
    known: &[WellKnown],
    var: &str,
    roles: &[Role],
    pass: &str,
    fail: &str,
) -> (KeyStatus, Vec<String>, String) {
    let mut evidence = Vec::new();
    let mut missing = Vec::new();
    for &role in roles {
        let wanted: Vec<&WellKnown> = known
            .iter()
            .filter(|k| k.role == role && k.set == CertSet::Ms2023)
            .collect();
        if wanted.is_empty() {
            evidence.push(format!("no well-known 2023 {role} certificate is listed"));
            missing.push(role.to_string());
            continue;
        }
        let found: Vec<(&WellKnown, &Cert)> =
            of_role(store, known, role, Some(CertSet::Ms2023)).collect();
        match found.first() {
            Some((k, c)) => evidence.push(format!("{var} has {} ({})", k.name, short(&c.sha256))),
            None => {
                let names: Vec<&str> = wanted.iter().map(|k| k.name.as_str()).collect();
                evidence.push(format!("{var} lacks {}", names.join(" / ")));
                missing.push(names.join(" / "));
            }
        }
    }
    if missing.is_empty() {
        (KeyStatus::Pass, evidence, pass.to_string())
    } else {
        (
            KeyStatus::Fail,
            evidence,
            format!("{var} lacks {}: {fail}", missing.join(" and ")),
        )
    }
}

/// What a key-health cell observed: `keys-outdated` when a rule the profile judges failed,
/// `keys-current` otherwise, with one evidence line per finding (read from `what`, the cell's
/// varstore copy: stream `varstore`, time 0).
pub fn observation(findings: &[KeyFinding], what: &str) -> crate::observe::evidence::Observation {
    use crate::boot::Console;
    use crate::matrix::Outcome;
    use crate::observe::evidence::{Evidence, EvidenceLines, Observation};
    let line = |f: &KeyFinding| Evidence {
        stream: Console::Varstore,
        at: std::time::Duration::ZERO,
        line: format!(
            "{}: {}: {}{}",
            f.rule.id(),
            f.status.as_str(),
            f.reason,
            if f.evidence.is_empty() {
                String::new()
            } else {
                format!(" [{}]", f.evidence.join("; "))
            }
        ),
    };
    let failed: Vec<&str> = findings
        .iter()
        .filter(|f| f.status == KeyStatus::Fail)
        .map(|f| f.rule.id())
        .collect();
    let (outcome, description) = if failed.is_empty() {
        (Outcome::KeysCurrent, format!("has current keys ({what})"))
    } else {
        (
            Outcome::KeysOutdated,
            format!("has outdated keys: {} ({what})", failed.join(", ")),
        )
    };
    let mut lines = findings.iter().map(line);
    let first = lines.next().unwrap_or(Evidence {
        stream: Console::Varstore,
        at: std::time::Duration::ZERO,
        line: "no finding".into(),
    });
    Observation::new(outcome, description, EvidenceLines::new(first).with(lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::varstore::DbxSummary;

    fn day(text: &str) -> Date {
        text.parse().unwrap()
    }

    fn known(name: &str, set: CertSet, role: Role, sha: &str, expires: &str) -> WellKnown {
        WellKnown {
            name: name.into(),
            set,
            role,
            subject: format!("CN={name}"),
            sha256: Some(sha.into()),
            expires: day(expires),
            reference: "test".into(),
            note: None,
        }
    }

    /// The well-known list, shaped like the built-in one (short fake thumbprints).
    fn table() -> Vec<WellKnown> {
        use CertSet::*;
        vec![
            known("KEK 2011", Ms2011, Role::Kek, "k11", "2026-06-24"),
            known("PCA 2011", Ms2011, Role::DbWindows, "w11", "2026-10-19"),
            known(
                "UEFI CA 2011",
                Ms2011,
                Role::DbThirdParty,
                "u11",
                "2026-06-27",
            ),
            known("KEK 2023", Ms2023, Role::Kek, "k23", "2038-03-02"),
            known(
                "Windows UEFI CA 2023",
                Ms2023,
                Role::DbWindows,
                "w23",
                "2035-06-13",
            ),
            known(
                "UEFI CA 2023",
                Ms2023,
                Role::DbThirdParty,
                "u23",
                "2038-06-13",
            ),
            known(
                "Option ROM CA 2023",
                Ms2023,
                Role::DbOptionRom,
                "o23",
                "2038-10-26",
            ),
        ]
    }

    /// A certificate with the thumbprint and expiry of `sha` in [`table`], or a stranger.
    fn cert(sha: &str) -> Cert {
        let k = table()
            .into_iter()
            .find(|k| k.sha256.as_deref() == Some(sha));
        Cert {
            subject: k
                .as_ref()
                .map_or(format!("CN={sha}"), |k| k.subject.clone()),
            issuer: "CN=issuer".into(),
            not_before: day("2011-01-01"),
            not_after: k.map_or(day("2030-01-01"), |k| k.expires),
            sha256: sha.into(),
            owner: "77fa9abd-0359-4d32-bd60-28f4e78f784b".into(),
            well_known: None,
        }
    }

    fn store(kek: &[&str], db: &[&str], dbx_hashes: usize, only_empty: bool) -> Varstore {
        Varstore {
            pk: vec![cert("platform-key")],
            kek: kek.iter().map(|s| cert(s)).collect(),
            db: db.iter().map(|s| cert(s)).collect(),
            db_hashes: 0,
            dbx: DbxSummary {
                hashes: dbx_hashes,
                other: 0,
                certs: Vec::new(),
                only_empty_file_hash: only_empty,
            },
            secure_boot_enable: Some(true),
        }
    }

    /// Like bookworm's .ms store: the 2011 set only, dbx the empty-file hash.
    fn only_2011() -> Varstore {
        store(&["own-kek", "k11"], &["w11", "u11"], 1, true)
    }

    /// Like sid's .ms store: both sets, a real dbx.
    fn both_sets() -> Varstore {
        store(
            &["own-kek", "k11", "k23"],
            &["w11", "w23", "u11", "u23", "o23"],
            443,
            false,
        )
    }

    fn status(findings: &[KeyFinding], rule: KeyRule) -> KeyStatus {
        findings.iter().find(|f| f.rule == rule).unwrap().status
    }

    fn finding(findings: &[KeyFinding], rule: KeyRule) -> &KeyFinding {
        findings.iter().find(|f| f.rule == rule).unwrap()
    }

    const BEFORE: &str = "2026-01-01";
    const AFTER: &str = "2026-12-01";

    fn strict(s: &Varstore, today: &str) -> Vec<KeyFinding> {
        key_health(s, None, Profile::Strict, &table(), day(today))
    }

    #[test]
    fn every_rule_gives_one_finding_in_order_with_its_reference() {
        let f = strict(&only_2011(), BEFORE);
        let rules: Vec<KeyRule> = f.iter().map(|f| f.rule).collect();
        assert_eq!(rules, KeyRule::ALL);
        for f in &f {
            assert!(!f.reason.is_empty() && !f.reference.is_empty(), "{f:?}");
        }
    }

    #[test]
    fn the_2011_set_alone_fails_the_2023_rules_and_a_placeholder_dbx_fails() {
        let f = strict(&only_2011(), BEFORE);
        assert_eq!(status(&f, KeyRule::Ms2023Db), KeyStatus::Fail);
        assert_eq!(status(&f, KeyRule::Ms2023Kek), KeyStatus::Fail);
        assert_eq!(status(&f, KeyRule::DbxReal), KeyStatus::Fail);
        let db = finding(&f, KeyRule::Ms2023Db);
        assert!(
            db.evidence.contains(&"db lacks UEFI CA 2023".to_string()),
            "{db:?}"
        );
        assert!(db.reason.contains("Option ROM CA 2023"), "{db:?}");
        let kek = finding(&f, KeyRule::Ms2023Kek);
        assert_eq!(kek.evidence, ["KEK lacks KEK 2023"]);
    }

    #[test]
    fn the_2023_set_passes() {
        let f = strict(&both_sets(), AFTER);
        for rule in KeyRule::ALL {
            assert_eq!(status(&f, rule), KeyStatus::Pass, "{rule}: {f:?}");
        }
        let db = finding(&f, KeyRule::Ms2023Db);
        assert_eq!(
            db.evidence,
            [
                "db has UEFI CA 2023 (u23)",
                "db has Option ROM CA 2023 (o23)"
            ]
        );
    }

    #[test]
    fn ms_2023_db_needs_both_the_third_party_and_the_option_rom_ca() {
        let without_oprom = store(&["k23"], &["w23", "u23"], 443, false);
        let f = strict(&without_oprom, BEFORE);
        assert_eq!(status(&f, KeyRule::Ms2023Db), KeyStatus::Fail);
        assert!(finding(&f, KeyRule::Ms2023Db)
            .evidence
            .contains(&"db lacks Option ROM CA 2023".to_string()));
        assert_eq!(status(&f, KeyRule::Ms2023Kek), KeyStatus::Pass);
        // In KEK rather than db, a db certificate does not count.
        let misplaced = store(&["k23", "u23", "o23"], &["w11"], 443, false);
        assert_eq!(
            status(&strict(&misplaced, BEFORE), KeyRule::Ms2023Db),
            KeyStatus::Fail
        );
    }

    #[test]
    fn dbx_real_rests_on_more_than_the_empty_file_hash() {
        let mut s = both_sets();
        s.dbx = DbxSummary {
            hashes: 1,
            only_empty_file_hash: true,
            ..DbxSummary::default()
        };
        let f = strict(&s, BEFORE);
        let dbx = finding(&f, KeyRule::DbxReal);
        assert_eq!(dbx.status, KeyStatus::Fail);
        assert!(
            dbx.evidence[0].starts_with("dbx: 1 entries (1 SHA-256"),
            "{dbx:?}"
        );
        s.dbx.hashes = 0;
        let f = strict(&s, BEFORE);
        let dbx = finding(&f, KeyRule::DbxReal);
        assert_eq!(dbx.status, KeyStatus::Fail);
        assert_eq!(dbx.evidence[1], "dbx is empty");
        s.dbx.hashes = 2;
        s.dbx.only_empty_file_hash = false;
        assert_eq!(
            status(&strict(&s, BEFORE), KeyRule::DbxReal),
            KeyStatus::Pass
        );
    }

    #[test]
    fn expiry_is_judged_on_the_given_day() {
        // Before June 2026 every 2011 CA is valid; after October 2026 none is.
        let f = strict(&only_2011(), BEFORE);
        assert_eq!(status(&f, KeyRule::NoExpiredOnlyPath), KeyStatus::Pass);
        let f = strict(&only_2011(), AFTER);
        let path = finding(&f, KeyRule::NoExpiredOnlyPath);
        assert_eq!(path.status, KeyStatus::Fail);
        assert!(
            path.reason.contains("kek, db-windows, db-third-party"),
            "{path:?}"
        );
        assert!(path
            .evidence
            .contains(&"kek: KEK 2011 (expired 2026-06-24)".to_string()));
        // Between the June and October expiries only the Windows class still has a CA.
        let f = strict(&only_2011(), "2026-07-01");
        let path = finding(&f, KeyRule::NoExpiredOnlyPath);
        assert_eq!(path.status, KeyStatus::Fail);
        assert!(path.reason.contains("kek, db-third-party has"), "{path:?}");
        // Its last valid day is still valid.
        let f = strict(&only_2011(), "2026-06-24");
        assert_eq!(status(&f, KeyRule::NoExpiredOnlyPath), KeyStatus::Pass);
        // With a 2023 CA of each class next to the expired ones, every class has a path.
        let f = strict(&both_sets(), "2030-01-01");
        let path = finding(&f, KeyRule::NoExpiredOnlyPath);
        assert_eq!(path.status, KeyStatus::Pass, "{path:?}");
        assert_eq!(path.evidence.len(), 4, "{path:?}");
    }

    #[test]
    fn a_class_the_store_does_not_trust_is_not_judged() {
        // Only the Windows CAs in db: no third-party or option-ROM class to expire.
        let windows_only = store(&["k23"], &["w23"], 443, false);
        let f = strict(&windows_only, AFTER);
        let path = finding(&f, KeyRule::NoExpiredOnlyPath);
        assert_eq!(path.status, KeyStatus::Pass);
        assert_eq!(path.evidence.len(), 2, "{path:?}");
    }

    #[test]
    fn setup_mode_makes_every_rule_not_applicable() {
        let mut s = only_2011();
        s.pk.clear();
        for profile in [Profile::Strict, Profile::Upstream] {
            let f = key_health(&s, Some(day_release()), profile, &table(), day(AFTER));
            for f in &f {
                assert_eq!(f.status, KeyStatus::NotApplicable, "{f:?}");
                assert!(f.reason.contains("setup mode"), "{f:?}");
            }
        }
    }

    fn day_release() -> Edk2Release {
        Edk2Release::parse("2026.08").unwrap()
    }

    #[test]
    fn a_store_with_its_own_keys_only_is_not_judged() {
        let own = store(&["own-kek"], &["own-db"], 1, true);
        for f in strict(&own, AFTER) {
            assert_eq!(f.status, KeyStatus::NotApplicable, "{f:?}");
            assert!(f.reason.contains("its own keys"), "{f:?}");
        }
    }

    #[test]
    fn upstream_judges_only_what_the_release_promises() {
        let old = Edk2Release::parse("2025.02").unwrap();
        let new = Edk2Release::parse("2025.11").unwrap();
        let up = |release| {
            key_health(
                &only_2011(),
                release,
                Profile::Upstream,
                &table(),
                day(AFTER),
            )
        };
        // Before stable202511 nothing of the 2023 set is promised.
        for f in up(Some(old)) {
            assert_eq!(f.status, KeyStatus::NotApplicable, "{f:?}");
        }
        assert!(finding(&up(Some(old)), KeyRule::Ms2023Db)
            .reason
            .contains("predates 2025.11"));
        // An unknown release promises nothing either.
        for f in up(None) {
            assert_eq!(f.status, KeyStatus::NotApplicable, "{f:?}");
        }
        // From stable202511 the 2023 set is, the real dbx never is.
        let f = up(Some(new));
        assert_eq!(status(&f, KeyRule::Ms2023Db), KeyStatus::Fail);
        assert_eq!(status(&f, KeyRule::Ms2023Kek), KeyStatus::Fail);
        assert_eq!(status(&f, KeyRule::NoExpiredOnlyPath), KeyStatus::Fail);
        let dbx = finding(&f, KeyRule::DbxReal);
        assert_eq!(dbx.status, KeyStatus::NotApplicable);
        assert!(dbx.reason.contains("not an upstream promise"), "{dbx:?}");
        // The same store under strict fails the dbx rule.
        let strict = key_health(
            &only_2011(),
            Some(old),
            Profile::Strict,
            &table(),
            day(AFTER),
        );
        assert_eq!(status(&strict, KeyRule::DbxReal), KeyStatus::Fail);
        assert_eq!(status(&strict, KeyRule::Ms2023Db), KeyStatus::Fail);
    }

    #[test]
    fn a_well_known_entry_without_a_thumbprint_matches_by_subject() {
        let mut list = table();
        for k in &mut list {
            if k.name == "UEFI CA 2023" {
                k.sha256 = None;
            }
        }
        let mut s = both_sets();
        // Another certificate of that subject (a re-issue): matched by subject.
        s.db.iter_mut()
            .filter(|c| c.sha256 == "u23")
            .for_each(|c| c.sha256 = "reissued".into());
        let f = key_health(&s, None, Profile::Strict, &list, day(BEFORE));
        assert_eq!(status(&f, KeyRule::Ms2023Db), KeyStatus::Pass, "{f:?}");
        // A thumbprint that differs does not match, whatever the subject.
        let f = strict(&s, BEFORE);
        assert_eq!(status(&f, KeyRule::Ms2023Db), KeyStatus::Fail, "{f:?}");
    }

    #[test]
    fn findings_serialize_with_rule_ids_and_kebab_case_statuses() {
        let f = strict(&only_2011(), BEFORE);
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json[0]["rule"], "ms-2023-db");
        assert_eq!(json[0]["status"], "fail");
        assert_eq!(json[3]["rule"], "no-expired-only-path");
        let back: Vec<KeyFinding> = serde_json::from_value(json).unwrap();
        assert_eq!(back, f);
        for rule in KeyRule::ALL {
            assert_eq!(
                serde_json::to_value(rule).unwrap(),
                serde_json::Value::from(rule.id())
            );
        }
    }

    #[test]
    fn a_failed_rule_makes_the_store_outdated_with_every_finding_as_evidence() {
        use crate::boot::Console;
        use crate::matrix::Outcome;
        let f = strict(&only_2011(), AFTER);
        let o = observation(&f, "shipped, judged on 2026-12-01");
        assert_eq!(o.outcome, Outcome::KeysOutdated);
        assert_eq!(
            o.description,
            "has outdated keys: ms-2023-db, ms-2023-kek, dbx-real, no-expired-only-path (shipped, \
             judged on 2026-12-01)"
        );
        let lines = o.evidence.lines();
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|e| e.stream == Console::Varstore));
        assert!(lines[0].line.starts_with("ms-2023-db: fail: "), "{lines:?}");
        assert!(
            lines[0].line.ends_with("]"),
            "its evidence in brackets: {lines:?}"
        );

        let o = observation(&strict(&both_sets(), BEFORE), "x");
        assert_eq!(o.outcome, Outcome::KeysCurrent);
        assert_eq!(o.description, "has current keys (x)");
        assert!(o
            .evidence
            .lines()
            .iter()
            .all(|e| e.line.contains(": pass: ")));
    }

    #[test]
    fn a_finding_without_evidence_is_one_line_without_brackets() {
        let f = key_health(&only_2011(), None, Profile::Upstream, &table(), day(AFTER));
        let o = observation(&f, "x");
        for e in o.evidence.lines() {
            assert!(e.line.contains(": not-applicable: "), "{e:?}");
            assert!(!e.line.ends_with(']'), "{e:?}");
        }
        assert_eq!(observation(&[], "x").evidence.lines()[0].line, "no finding");
    }

    #[test]
    fn each_rule_is_named_by_its_id_and_cites_its_own_source() {
        for rule in KeyRule::ALL {
            assert_eq!(rule.to_string(), rule.id());
        }
        assert!(KeyRule::Ms2023Db.reference().contains("secureboot_objects"));
        assert!(KeyRule::Ms2023Kek.reference().contains("EnrollDefaultKeys"));
        assert!(KeyRule::DbxReal.reference().contains("revocationlistfile"));
        assert!(KeyRule::NoExpiredOnlyPath
            .reference()
            .contains("2026-06-27"));
    }
}
