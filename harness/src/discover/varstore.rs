//! A UEFI variable store's Secure Boot keys: PK, KEK, db and dbx, read through `virt-fw-vars`.
//!
//! bootmatrix does not parse flash images itself: `virt-fw-vars --output-json` writes the
//! store's variables (name, vendor GUID, data in hex), and only the four key variables' data
//! (EFI_SIGNATURE_LISTs, UEFI 2.10 section 32.4.1) is decoded here. Each X.509 certificate's
//! fields come from `openssl x509`; its thumbprint is the SHA-256 of its DER.
//!
//! The store is copied (bounded, a regular file only) into a temporary folder first: the tools
//! read the copy, never the file given, and nothing is ever written back.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tools::{
    read_input, Bounded, Ended, InputError, RunError, ToolError, FIRMWARE_LIMIT, OPENSSL,
    VIRT_FW_VARS,
};

/// EFI_GLOBAL_VARIABLE: PK and KEK.
const GLOBAL: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// EFI_IMAGE_SECURITY_DATABASE_GUID: db and dbx.
const IMAGE_SECURITY: &str = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";
/// EFI_SECURE_BOOT_ENABLE_DISABLE (edk2): SecureBootEnable.
const SECURE_BOOT_ENABLE: &str = "f0a30bc7-af08-4556-99c4-001009c93a44";
/// EFI_CERT_X509_GUID.
const CERT_X509: &str = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072";
/// EFI_CERT_SHA256_GUID.
const CERT_SHA256: &str = "c1c41626-504c-4092-aca9-41f936934328";
/// SHA-256 of an empty file: the only dbx entry edk2's EnrollDefaultKeys enrolls.
pub const EMPTY_FILE_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// How long `virt-fw-vars` may take to read a store (it takes about a second).
const VIRT_FW_VARS_LIMIT: Duration = Duration::from_secs(60);
/// How long `openssl x509` may take for one certificate.
const OPENSSL_LIMIT: Duration = Duration::from_secs(20);
/// The most read of `virt-fw-vars`' JSON: the store's bytes in hex, and a little more.
const JSON_LIMIT: u64 = 2 * FIRMWARE_LIMIT + (1 << 20);
/// The most characters of a certificate's subject or issuer kept.
const NAME_MAX: usize = 400;

/// One X.509 certificate of a key variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cert {
    /// RFC 2253 form, as `openssl x509 -nameopt RFC2253` prints it: `CN=...,O=...,C=US`.
    pub subject: String,
    pub issuer: String,
    #[serde(with = "date_text")]
    pub not_before: Date,
    #[serde(with = "date_text")]
    pub not_after: Date,
    /// SHA-256 of the DER, lower-case hex (the certificate's thumbprint).
    pub sha256: String,
    /// The signature owner GUID of its entry.
    pub owner: String,
    /// The well-known certificate it is, by name ([`Varstore::recognize`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub well_known: Option<String>,
}

impl Cert {
    /// The subject's common name (CN), or the whole subject when it has none.
    pub fn common_name(&self) -> String {
        rdn(&self.subject, "CN").unwrap_or_else(|| self.subject.clone())
    }

    /// The subject's organization (O), if any.
    pub fn organization(&self) -> Option<String> {
        rdn(&self.subject, "O")
    }

    /// Whether it has expired on `day`: its last valid day is before it.
    pub fn expired_on(&self, day: Date) -> bool {
        self.not_after < day
    }
}

/// What dbx holds, in counts, with the certificates it revokes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbxSummary {
    /// SHA-256 entries.
    pub hashes: usize,
    /// Entries of other signature types (SHA-1, X509_SHA256 and others), counted only.
    pub other: usize,
    pub certs: Vec<Cert>,
    /// Its one entry is the SHA-256 of an empty file (edk2's placeholder), or it is empty.
    pub only_empty_file_hash: bool,
}

impl DbxSummary {
    /// Every entry, of any type.
    pub fn entries(&self) -> usize {
        self.hashes + self.other + self.certs.len()
    }
}

/// A variable store's Secure Boot keys. An absent variable reads as empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Varstore {
    pub pk: Vec<Cert>,
    pub kek: Vec<Cert>,
    pub db: Vec<Cert>,
    /// db entries that are not certificates (SHA-256 and other hashes).
    pub db_hashes: usize,
    pub dbx: DbxSummary,
    /// edk2's SecureBootEnable, where the store has it.
    pub secure_boot_enable: Option<bool>,
}

impl Varstore {
    /// Without a PK the firmware is in setup mode: nothing is enforced, keys come later.
    pub fn setup_mode(&self) -> bool {
        self.pk.is_empty()
    }

    /// Every certificate, with the variable it is in.
    pub fn certs(&self) -> impl Iterator<Item = (&'static str, &Cert)> {
        self.pk
            .iter()
            .map(|c| ("PK", c))
            .chain(self.kek.iter().map(|c| ("KEK", c)))
            .chain(self.db.iter().map(|c| ("db", c)))
            .chain(self.dbx.certs.iter().map(|c| ("dbx", c)))
    }

    /// Names every certificate that is a well-known one.
    pub fn recognize(&mut self, known: &[WellKnown]) {
        let all = self
            .pk
            .iter_mut()
            .chain(self.kek.iter_mut())
            .chain(self.db.iter_mut())
            .chain(self.dbx.certs.iter_mut());
        for cert in all {
            cert.well_known = known
                .iter()
                .find(|k| k.matches(cert))
                .map(|k| k.name.clone());
        }
    }
}

/// Which generation of Microsoft's Secure Boot CAs a certificate belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CertSet {
    #[serde(rename = "2011")]
    Ms2011,
    #[serde(rename = "2023")]
    Ms2023,
}

/// What a well-known certificate signs, and so the variable it belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// KEK: signs updates of db and dbx.
    Kek,
    /// db: signs Windows' boot manager.
    DbWindows,
    /// db: signs third-party boot loaders (shim) and drivers.
    DbThirdParty,
    /// db: signs third-party option ROMs.
    DbOptionRom,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Kek,
        Role::DbWindows,
        Role::DbThirdParty,
        Role::DbOptionRom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Kek => "kek",
            Role::DbWindows => "db-windows",
            Role::DbThirdParty => "db-third-party",
            Role::DbOptionRom => "db-option-rom",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A certificate known by name (`scenarios/well-known-certificates.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WellKnown {
    pub name: String,
    pub set: CertSet,
    pub role: Role,
    /// The full subject, RFC 2253 form.
    pub subject: String,
    /// The thumbprint, where a copy of the certificate was at hand to take it from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(with = "date_text")]
    pub expires: Date,
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl WellKnown {
    /// By thumbprint where one is known, else by the exact subject.
    pub fn matches(&self, cert: &Cert) -> bool {
        match &self.sha256 {
            Some(sha) => sha.eq_ignore_ascii_case(&cert.sha256),
            None => self.subject == cert.subject,
        }
    }
}

/// `well-known-certificates.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WellKnownFile {
    #[serde(default)]
    pub about: String,
    pub well_known_certificates: Vec<WellKnown>,
}

/// Why a store's keys could not be read: `cannot read the varstore FILE: PROBLEM`.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the varstore {}: {problem}", crate::tools::shown_name(.path.as_os_str()))]
pub struct VarstoreError {
    pub path: PathBuf,
    pub problem: VarstoreProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum VarstoreProblem {
    #[error("{0}")]
    Input(#[from] InputError),
    #[error("cannot make a scratch copy: {0}")]
    Scratch(std::io::Error),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("virt-fw-vars wrote no JSON that reads: {0}")]
    Json(String),
    #[error("{var}: {reason}")]
    Variable { var: String, reason: String },
}

/// Reads `path`'s Secure Boot keys (see the module documentation).
pub fn read(path: &Path) -> Result<Varstore, VarstoreError> {
    read_keys(path).map_err(|problem| VarstoreError {
        path: path.to_path_buf(),
        problem,
    })
}

fn read_keys(path: &Path) -> Result<Varstore, VarstoreProblem> {
    let bytes = read_input(path, FIRMWARE_LIMIT)?;
    let scratch = tempfile::tempdir().map_err(VarstoreProblem::Scratch)?;
    let copy = scratch.path().join("VARS.fd");
    let json = scratch.path().join("vars.json");
    std::fs::write(&copy, bytes).map_err(VarstoreProblem::Scratch)?;
    let program = VIRT_FW_VARS.find()?;
    let mut cmd = Command::new(program);
    cmd.arg("-i")
        .arg(&copy)
        .arg("--output-json")
        .arg(&json)
        .current_dir(scratch.path());
    let what = format!("virt-fw-vars -i {} --output-json", path.display());
    crate::tools::run_bounded(&mut cmd, VIRT_FW_VARS_LIMIT, &what)
        .map_err(|e| VarstoreProblem::Tool(ToolError::Run(e)))?;
    let text = read_input(&json, JSON_LIMIT)
        .map_err(|e| VarstoreProblem::Json(format!("its output file: {e}")))?;
    let raw = parse_json(&text)?;
    raw.describe(describe_cert)
}

/// The key variables of `virt-fw-vars --output-json` output, decoded into signature lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawStore {
    pub pk: Vec<Signature>,
    pub kek: Vec<Signature>,
    pub db: Vec<Signature>,
    pub dbx: Vec<Signature>,
    pub secure_boot_enable: Option<bool>,
}

/// One EFI_SIGNATURE_DATA: its list's type, its owner and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The EFI_SIGNATURE_LIST's SignatureType GUID.
    pub kind: String,
    pub owner: String,
    pub data: Vec<u8>,
}

impl Signature {
    pub fn is_x509(&self) -> bool {
        self.kind == CERT_X509
    }

    pub fn is_sha256(&self) -> bool {
        self.kind == CERT_SHA256
    }
}

#[derive(Deserialize)]
struct JsonStore {
    variables: Vec<JsonVariable>,
}

#[derive(Deserialize)]
struct JsonVariable {
    name: String,
    guid: String,
    data: String,
}

/// Decodes the key variables of `virt-fw-vars --output-json` output.
pub fn parse_json(text: &[u8]) -> Result<RawStore, VarstoreProblem> {
    let store: JsonStore =
        serde_json::from_slice(text).map_err(|e| VarstoreProblem::Json(e.to_string()))?;
    let mut raw = RawStore::default();
    for var in store.variables {
        let guid = var.guid.to_ascii_lowercase();
        let slot = match (var.name.as_str(), guid.as_str()) {
            ("PK", GLOBAL) => &mut raw.pk,
            ("KEK", GLOBAL) => &mut raw.kek,
            ("db", IMAGE_SECURITY) => &mut raw.db,
            ("dbx", IMAGE_SECURITY) => &mut raw.dbx,
            ("SecureBootEnable", SECURE_BOOT_ENABLE) => {
                let data = hex_bytes(&var.data).map_err(|reason| bad(&var.name, reason))?;
                raw.secure_boot_enable = data.first().map(|b| *b != 0);
                continue;
            }
            _ => continue,
        };
        let data = hex_bytes(&var.data).map_err(|reason| bad(&var.name, reason))?;
        *slot = signature_lists(&data).map_err(|reason| bad(&var.name, reason))?;
    }
    Ok(raw)
}

fn bad(var: &str, reason: String) -> VarstoreProblem {
    VarstoreProblem::Variable {
        var: crate::tools::shown(var, 64),
        reason,
    }
}

impl RawStore {
    /// The store with every certificate described by `describe` (DER in, facts out).
    pub fn describe(
        &self,
        describe: impl Fn(&[u8], &str) -> Result<Cert, String>,
    ) -> Result<Varstore, VarstoreProblem> {
        let certs = |var: &str, sigs: &[Signature]| -> Result<Vec<Cert>, VarstoreProblem> {
            sigs.iter()
                .filter(|s| s.is_x509())
                .enumerate()
                .map(|(i, s)| {
                    describe(&s.data, &s.owner).map_err(|reason| VarstoreProblem::Variable {
                        var: var.to_string(),
                        reason: format!("certificate {}: {reason}", i + 1),
                    })
                })
                .collect()
        };
        let hashes = self.dbx.iter().filter(|s| s.is_sha256()).count();
        let dbx_certs = certs("dbx", &self.dbx)?;
        let other = self.dbx.len() - hashes - dbx_certs.len();
        let only_empty = self
            .dbx
            .iter()
            .all(|s| s.is_sha256() && hex(&s.data) == EMPTY_FILE_SHA256);
        Ok(Varstore {
            pk: certs("PK", &self.pk)?,
            kek: certs("KEK", &self.kek)?,
            db: certs("db", &self.db)?,
            db_hashes: self.db.iter().filter(|s| !s.is_x509()).count(),
            dbx: DbxSummary {
                hashes,
                other,
                certs: dbx_certs,
                only_empty_file_hash: only_empty,
            },
            secure_boot_enable: self.secure_boot_enable,
        })
    }
}

/// Splits a variable's data into its EFI_SIGNATURE_LISTs' entries.
fn signature_lists(mut data: &[u8]) -> Result<Vec<Signature>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 28 {
            return Err(format!(
                "{} bytes left, too few for a signature list",
                data.len()
            ));
        }
        let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        let (list, header, size) = (word(16) as usize, word(20) as usize, word(24) as usize);
        if list > data.len() || list < 28 + header || size < 16 {
            return Err(format!(
                "a signature list's sizes do not fit (list {list}, header {header}, entry {size}, {} bytes left)",
                data.len()
            ));
        }
        let body = &data[28 + header..list];
        if body.len() % size != 0 {
            return Err(format!(
                "a signature list of {} bytes of {size}-byte entries",
                body.len()
            ));
        }
        let kind = guid(&data[..16]);
        for entry in body.chunks(size) {
            out.push(Signature {
                kind: kind.clone(),
                owner: guid(&entry[..16]),
                data: entry[16..].to_vec(),
            });
        }
        data = &data[list..];
    }
    Ok(out)
}

/// An EFI_GUID's 16 bytes (first three fields little-endian) as text.
fn guid(b: &[u8]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}-{}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        hex(&b[8..10]),
        hex(&b[10..16])
    )
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_bytes(text: &str) -> Result<Vec<u8>, String> {
    if text.len() % 2 != 0 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err("data is not hex".to_string());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// One certificate's facts, by `openssl x509` (its thumbprint computed here).
pub fn describe_cert(der: &[u8], owner: &str) -> Result<Cert, String> {
    let program = OPENSSL.find().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(program);
    cmd.args([
        "x509",
        "-inform",
        "DER",
        "-noout",
        "-nameopt",
        "RFC2253,-esc_msb",
    ])
    .args(["-subject", "-issuer", "-dates"].map(OsStr::new));
    let what = "openssl x509 -inform DER -noout -subject -issuer -dates";
    let out = Bounded::new(&mut cmd, what, OPENSSL_LIMIT)
        .stdin(der)
        .run()
        .map_err(|e: RunError| e.to_string())?;
    match out.ended {
        Ended::Exited(status) if status.success() => {}
        _ => {
            return Err(format!(
                "not an X.509 certificate openssl reads: {}",
                crate::tools::shown(out.stderr.trim(), 300)
            ))
        }
    }
    cert_from_openssl(&out.stdout, der, owner)
}

/// A certificate from `openssl x509 -subject -issuer -dates` output and its DER.
pub fn cert_from_openssl(text: &str, der: &[u8], owner: &str) -> Result<Cert, String> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .ok_or_else(|| format!("openssl printed no {key}"))
    };
    let date = |key: &str| -> Result<Date, String> {
        let value = field(key)?;
        openssl_date(&value).ok_or_else(|| format!("{key}{value:?} is not a date openssl prints"))
    };
    Ok(Cert {
        subject: crate::tools::shown(&field("subject=")?, NAME_MAX),
        issuer: crate::tools::shown(&field("issuer=")?, NAME_MAX),
        not_before: date("notBefore=")?,
        not_after: date("notAfter=")?,
        sha256: hex(&Sha256::digest(der)),
        owner: owner.to_string(),
        well_known: None,
    })
}

/// `Jun 24 20:51:29 2026 GMT` (openssl's default) or `2026-06-24 20:51:29Z` (iso_8601).
fn openssl_date(text: &str) -> Option<Date> {
    if let Some(day) = text.get(..10).and_then(|d| d.parse::<Date>().ok()) {
        return Some(day);
    }
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [month, day, _time, year, ..] = parts[..] else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as i8 + 1;
    Date::new(year.parse().ok()?, month, day.parse().ok()?).ok()
}

/// The value of the first `key=` attribute of an RFC 2253 name, unescaped.
fn rdn(name: &str, key: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ',' | '+' => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .find_map(|p| p.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// A date as `YYYY-MM-DD` text in JSON.
pub mod date_text {
    use jiff::civil::Date;

    pub fn serialize<S: serde::Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(d)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a date (YYYY-MM-DD)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/varstores")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A describer that needs no openssl: the thumbprint, the rest made up.
    fn by_thumbprint(der: &[u8], owner: &str) -> Result<Cert, String> {
        cert_from_openssl(
            "subject=CN=x\nissuer=CN=y\nnotBefore=Jan  1 00:00:00 2020 GMT\nnotAfter=Dec 31 23:59:59 2030 GMT\n",
            der,
            owner,
        )
    }

    fn shas(certs: &[Cert]) -> Vec<&str> {
        certs.iter().map(|c| &c.sha256[..16]).collect()
    }

    const MS_OWNER: &str = "77fa9abd-0359-4d32-bd60-28f4e78f784b";

    #[test]
    fn bookworm_ms_has_the_2011_set_and_the_empty_file_hash() {
        let raw = parse_json(&data("bookworm-ms.json")).unwrap();
        assert_eq!(raw.secure_boot_enable, Some(true));
        assert_eq!(raw.pk.len(), 1);
        assert!(raw
            .pk
            .iter()
            .chain(&raw.kek)
            .chain(&raw.db)
            .all(Signature::is_x509));
        let store = raw.describe(by_thumbprint).unwrap();
        // Debian's PK/KEK key, then Microsoft's KEK CA 2011.
        assert_eq!(shas(&store.pk), ["5fb05ed84c5170d5"]);
        assert_eq!(shas(&store.kek), ["5fb05ed84c5170d5", "a1117f516a32cefc"]);
        assert_eq!(store.kek[1].owner, MS_OWNER);
        // Windows Production PCA 2011, then Microsoft Corporation UEFI CA 2011.
        assert_eq!(shas(&store.db), ["e8e95f0733a55e8b", "48e99b991f57fc52"]);
        assert_eq!(store.db_hashes, 0);
        assert_eq!(
            store.dbx,
            DbxSummary {
                hashes: 1,
                other: 0,
                certs: vec![],
                only_empty_file_hash: true
            }
        );
        assert!(!store.setup_mode());
    }

    #[test]
    fn sid_ms_has_the_2023_set_and_a_real_dbx() {
        let store = parse_json(&data("sid-ms.json"))
            .unwrap()
            .describe(by_thumbprint)
            .unwrap();
        assert_eq!(store.secure_boot_enable, None, "sid's store has none");
        assert_eq!(
            shas(&store.kek),
            ["5fb05ed84c5170d5", "a1117f516a32cefc", "3cd3f0309edae228"]
        );
        assert_eq!(
            shas(&store.db),
            [
                "e8e95f0733a55e8b",
                "076f1fea90ac2915",
                "48e99b991f57fc52",
                "f6124e34125bee3f",
                "e5be3e64c6e66a28"
            ]
        );
        assert_eq!(store.dbx.hashes, 443);
        assert_eq!(store.dbx.entries(), 443);
        assert!(!store.dbx.only_empty_file_hash);
    }

    #[test]
    fn an_empty_store_is_in_setup_mode() {
        let store = parse_json(&data("bookworm-empty.json"))
            .unwrap()
            .describe(by_thumbprint)
            .unwrap();
        assert!(store.setup_mode());
        assert!(store.kek.is_empty() && store.db.is_empty() && store.db_hashes == 0);
        assert_eq!(store.secure_boot_enable, None);
        // No dbx at all counts as holding nothing more than the placeholder.
        assert!(store.dbx.only_empty_file_hash);
        assert_eq!(store.dbx.entries(), 0);
    }

    #[test]
    fn certificate_facts_come_from_openssl() {
        if OPENSSL.find().is_err() {
            eprintln!("skipped: openssl is not installed");
            return;
        }
        let mut store = parse_json(&data("sid-ms.json"))
            .unwrap()
            .describe(describe_cert)
            .unwrap();
        let kek = &store.kek[2];
        assert_eq!(
            kek.subject,
            "CN=Microsoft Corporation KEK 2K CA 2023,O=Microsoft Corporation,C=US"
        );
        assert_eq!(kek.common_name(), "Microsoft Corporation KEK 2K CA 2023");
        assert_eq!(kek.organization().as_deref(), Some("Microsoft Corporation"));
        assert_eq!(
            kek.issuer,
            "CN=Microsoft RSA Devices Root CA 2021,O=Microsoft Corporation,C=US"
        );
        assert_eq!(kek.not_before.to_string(), "2023-03-02");
        assert_eq!(kek.not_after.to_string(), "2038-03-02");
        let debian = &store.pk[0];
        assert_eq!(debian.common_name(), "Debian UEFI Secure Boot (PK/KEK key)");
        assert_eq!(debian.organization().as_deref(), Some("Debian"));
        // Every built-in well-known certificate is in sid's store, subject and expiry as listed.
        let file: WellKnownFile = serde_json::from_str(include_str!(
            "../../../scenarios/well-known-certificates.json"
        ))
        .unwrap();
        let known = file.well_known_certificates;
        assert_eq!(known.len(), 7);
        store.recognize(&known);
        for k in &known {
            let cert = store
                .certs()
                .map(|(_, c)| c)
                .find(|c| c.well_known.as_deref() == Some(k.name.as_str()))
                .unwrap_or_else(|| panic!("{} is not in sid's store", k.name));
            assert_eq!(cert.subject, k.subject, "{}", k.name);
            assert_eq!(cert.not_after, k.expires, "{}", k.name);
            let var = store.certs().find(|(_, c)| *c == cert).unwrap().0;
            let expected = if k.role == Role::Kek { "KEK" } else { "db" };
            assert_eq!(var, expected, "{}", k.name);
        }
        assert_eq!(store.pk[0].well_known, None);
    }

    #[test]
    fn openssl_refusing_the_der_is_an_error_naming_the_certificate() {
        if OPENSSL.find().is_err() {
            eprintln!("skipped: openssl is not installed");
            return;
        }
        let e = describe_cert(b"not a certificate", MS_OWNER).unwrap_err();
        assert!(
            e.starts_with("not an X.509 certificate openssl reads"),
            "{e}"
        );
        // Through a store: which variable and which certificate.
        let mut raw = parse_json(&data("bookworm-ms.json")).unwrap();
        raw.db[1].data = b"garbage".to_vec();
        let e = raw.describe(describe_cert).unwrap_err().to_string();
        assert!(e.starts_with("db: certificate 2: not an X.509"), "{e}");
    }

    /// One signature list of `count` entries of `size` bytes (owner included).
    fn list(kind: &[u8; 16], size: u32, count: usize) -> Vec<u8> {
        let mut out = kind.to_vec();
        out.extend((28 + size * count as u32).to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(size.to_le_bytes());
        for i in 0..count {
            out.extend([i as u8; 16]);
            out.extend(vec![0xab; size as usize - 16]);
        }
        out
    }

    const SHA256_KIND: [u8; 16] = [
        0x26, 0x16, 0xc4, 0xc1, 0x4c, 0x50, 0x92, 0x40, 0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43,
        0x28,
    ];

    #[test]
    fn signature_lists_are_split_and_their_sizes_checked() {
        let mut two = list(&SHA256_KIND, 48, 2);
        two.extend(list(&[7; 16], 36, 1));
        let sigs = signature_lists(&two).unwrap();
        assert_eq!(sigs.len(), 3);
        assert!(sigs[0].is_sha256() && sigs[1].is_sha256() && !sigs[2].is_sha256());
        assert_eq!(sigs[0].kind, CERT_SHA256);
        assert_eq!(sigs[1].owner, "01010101-0101-0101-0101-010101010101");
        assert_eq!(sigs[2].data.len(), 20);
        assert_eq!(signature_lists(&[]).unwrap(), vec![]);
        // Cut short, a list size past the end, entries that do not divide the body.
        let e = signature_lists(&two[..20]).unwrap_err();
        assert!(e.contains("too few for a signature list"), "{e}");
        let e = signature_lists(&two[..two.len() - 1]).unwrap_err();
        assert!(e.contains("do not fit"), "{e}");
        let mut odd = list(&SHA256_KIND, 48, 2);
        odd[24..28].copy_from_slice(&40u32.to_le_bytes());
        let e = signature_lists(&odd).unwrap_err();
        assert!(e.contains("of 40-byte entries"), "{e}");
        let mut tiny = list(&SHA256_KIND, 48, 1);
        tiny[24..28].copy_from_slice(&0u32.to_le_bytes());
        assert!(signature_lists(&tiny).is_err());
    }

    #[test]
    fn json_that_is_not_virt_fw_vars_output_is_refused_naming_the_variable() {
        let e = parse_json(b"[]").unwrap_err();
        assert!(matches!(e, VarstoreProblem::Json(_)), "{e}");
        let bad_hex = br#"{"version": 2, "variables": [{"name": "db", "guid": "d719b2cb-3d3a-4596-a3bc-dad00e67656f", "attr": "39", "data": "zz"}]}"#;
        let e = parse_json(bad_hex).unwrap_err().to_string();
        assert_eq!(e, "db: data is not hex");
        // A variable of the same name under another vendor GUID is not the key variable.
        let other_guid = br#"{"version": 2, "variables": [{"name": "db", "guid": "00000000-0000-0000-0000-000000000000", "attr": "7", "data": "zz"}]}"#;
        assert_eq!(parse_json(other_guid).unwrap(), RawStore::default());
    }

    #[test]
    fn openssl_dates_in_both_forms() {
        assert_eq!(
            openssl_date("Jun 24 20:51:29 2026 GMT")
                .unwrap()
                .to_string(),
            "2026-06-24"
        );
        assert_eq!(
            openssl_date("Mar  2 20:31:35 2038 GMT")
                .unwrap()
                .to_string(),
            "2038-03-02"
        );
        assert_eq!(
            openssl_date("2038-03-02 20:31:35Z").unwrap().to_string(),
            "2038-03-02"
        );
        assert_eq!(openssl_date("Foo 2 20:31:35 2038 GMT"), None);
        assert_eq!(openssl_date(""), None);
    }

    #[test]
    fn names_are_split_on_unescaped_commas() {
        let name = r"CN=Acme\, Inc. CA,O=Acme\, Inc.,C=US";
        assert_eq!(rdn(name, "CN").as_deref(), Some("Acme, Inc. CA"));
        assert_eq!(rdn(name, "O").as_deref(), Some("Acme, Inc."));
        assert_eq!(rdn(name, "OU"), None);
    }

    #[test]
    fn subjects_with_control_characters_are_escaped() {
        let c = cert_from_openssl(
            "subject=CN=evil\x1b[2J\nissuer=CN=y\nnotBefore=Jan  1 00:00:00 2020 GMT\nnotAfter=Jan  1 00:00:00 2030 GMT\n",
            b"der",
            MS_OWNER,
        )
        .unwrap();
        assert_eq!(c.subject, r"CN=evil\x1b[2J");
        let e = cert_from_openssl("subject=CN=x\n", b"der", MS_OWNER).unwrap_err();
        assert_eq!(e, "openssl printed no issuer=");
    }

    #[test]
    fn reading_a_file_that_is_not_a_varstore_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read the varstore {}: not a regular file but a folder",
                dir.path().display()
            )
        );
        if VIRT_FW_VARS.find().is_err() {
            eprintln!("skipped the rest: virt-fw-vars is not installed");
            return;
        }
        let text = dir.path().join("text");
        std::fs::write(&text, "not a varstore\n").unwrap();
        let e = read(&text).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "cannot read the varstore {}: `virt-fw-vars",
                text.display()
            )),
            "{e}"
        );
    }
}
