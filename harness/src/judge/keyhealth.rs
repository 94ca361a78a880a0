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
                evidence.push("dbx holds only the SHA-256 of an empty file (e3b0c442...)".into());
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
