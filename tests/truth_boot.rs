//! Truth test on real firmware: a firmware that refuses what its rule says must run comes out
//! `fail`. The signed probe's Authenticode SHA-256 goes into dbx of a copy of Debian's snakeoil
//! varstore, while the `db-added` variant makes db trust the probe's signer: OVMF must refuse
//! the probe, and bootmatrix must report the cell as a failure of rule db-added-signed.
//! Run with `cargo test --features qemu --test truth_boot`.
#![cfg(feature = "qemu")]

use std::path::Path;
use std::process::Command;

use bootmatrix::judge::VerdictKind;
use bootmatrix::matrix::Outcome;
use bootmatrix::report::record::CellRecord;
use serde_json::{json, Value};

mod common;
use common::run::bootmatrix;

/// Debian 12's OVMF: snakeoil PK/KEK/db enrolled, Secure Boot on.
const SNAKEOIL_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd";
/// The enrolled-keys descriptor the test's own descriptor is copied from.
const ENROLLED_DESCRIPTOR: &str = "/usr/share/qemu/firmware/40-edk2-x86_64-secure-enrolled.json";
/// The descriptor naming the varstore with the probe in dbx, and its control: the same
/// descriptor naming the unmodified snakeoil template.
const DBX_PROBE: &str = "40-edk2-x86_64-dbx-probe";
const CONTROL: &str = "40-edk2-x86_64-snakeoil";

/// `EFI_IMAGE_SECURITY_DATABASE_GUID`, the vendor GUID of db and dbx.
const IMAGE_SECURITY_DATABASE: &str = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";
/// `EFI_CERT_SHA256_GUID` c1c41626-504c-4092-aca9-41f936934328, as stored (mixed-endian).
const CERT_SHA256_GUID: [u8; 16] = [
    0x26, 0x16, 0xc4, 0xc1, 0x4c, 0x50, 0x92, 0x40, 0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28,
];
/// Owner of the dbx entry: b0075a7e-0b1e-4c3e-8e57-000000000b07 (bootmatrix's owner GUID).
const OWNER_GUID: [u8; 16] = [
    0x7e, 0x5a, 0x07, 0xb0, 0x1e, 0x0b, 0x3e, 0x4c, 0x8e, 0x57, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x07,
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(path: &Path) -> String {
    bootmatrix::discover::sha256_file(path).unwrap()
}

/// Runs virt-fw-vars with `args`; its stderr (INFO lines) on failure.
fn virt_fw_vars(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("virt-fw-vars")
        .args(args)
        .output()
        .expect("virt-fw-vars runs (./ci/setup installs it)");
    assert!(
        out.status.success(),
        "virt-fw-vars {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One `EFI_SIGNATURE_LIST` holding one `EFI_CERT_SHA256` entry.
fn sha256_signature_list(digest: &[u8; 32]) -> Vec<u8> {
    let entry_size = 16 + 32u32; // SignatureOwner + SignatureData
    let mut list = CERT_SHA256_GUID.to_vec();
    list.extend_from_slice(&(28 + entry_size).to_le_bytes()); // SignatureListSize
    list.extend_from_slice(&0u32.to_le_bytes()); // SignatureHeaderSize
    list.extend_from_slice(&entry_size.to_le_bytes()); // SignatureSize
    list.extend_from_slice(&OWNER_GUID);
    list.extend_from_slice(digest);
    list
}

/// `out`: a copy of `template` whose dbx holds its own lists plus one with `digest`.
fn varstore_with_dbx_hash(template: &Path, digest: &[u8; 32], dir: &Path, out: &Path) {
    let dump = dir.join("template-vars.json");
    virt_fw_vars(&[
        "-i".as_ref(),
        template.as_os_str(),
        "--output-json".as_ref(),
        dump.as_os_str(),
    ]);
    let vars: Value = serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    let mut dbx = vars["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "dbx" && v["guid"] == IMAGE_SECURITY_DATABASE)
        .cloned()
        .unwrap_or_else(|| {
            // NV, BS, RT, time-based authenticated write access.
            json!({"name": "dbx", "guid": IMAGE_SECURITY_DATABASE, "attr": 0x27, "data": ""})
        });
    let data = dbx["data"].as_str().unwrap().to_string() + &hex(&sha256_signature_list(digest));
    dbx["data"] = data.into();
    let update = dir.join("dbx.json");
    std::fs::write(
        &update,
        serde_json::to_string_pretty(&json!({"version": 2, "variables": [dbx]})).unwrap(),
    )
    .unwrap();
    virt_fw_vars(&[
        "-i".as_ref(),
        template.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--set-json".as_ref(),
        update.as_os_str(),
    ]);
}

/// The hex SHA-256 entries of dbx in `varstore`, read back by virt-fw-vars.
fn dbx_hashes(varstore: &Path) -> Vec<String> {
    let text = virt_fw_vars(&[
        "-i".as_ref(),
        varstore.as_os_str(),
        "--output-json".as_ref(),
        "-".as_ref(),
    ]);
    let vars: Value = serde_json::from_str(&text).unwrap();
    let dbx = vars["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "dbx")
        .expect("a dbx variable");
    let data = dbx["data"].as_str().unwrap();
    let bytes: Vec<u8> = (0..data.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&data[i..i + 2], 16).unwrap())
        .collect();
    // Walk the EFI_SIGNATURE_LISTs; keep the SHA-256 entries.
    let mut hashes = Vec::new();
    let mut at = 0;
    while at + 28 <= bytes.len() {
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
        let (list_size, header_size, entry_size) =
            (u32_at(at + 16), u32_at(at + 20), u32_at(at + 24));
        assert!(list_size >= 28 && at + list_size <= bytes.len(), "{data}");
        if bytes[at..at + 16] == CERT_SHA256_GUID && entry_size == 48 {
            let mut entry = at + 28 + header_size;
            while entry + entry_size <= at + list_size {
                hashes.push(hex(&bytes[entry + 16..entry + 48]));
                entry += entry_size;
            }
        }
        at += list_size;
    }
    hashes
}

/// The cell's serial console as text.
fn serial_log(cell: &CellRecord) -> String {
    let dir = cell
        .log_dir
        .as_ref()
        .unwrap_or_else(|| panic!("no log folder: {cell}"));
    let path = dir.join("serial.log");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    String::from_utf8_lossy(&bytes).replace('\r', "")
}

/// Prints the lines around the first that contains `needle`.
fn print_around(log: &str, needle: &str) {
    let lines: Vec<&str> = log.lines().collect();
    if let Some(i) = lines.iter().position(|l| l.contains(needle)) {
        println!("--- serial.log around {needle:?} ---");
        for line in &lines[i.saturating_sub(3)..lines.len().min(i + 8)] {
            println!("{line}");
        }
        println!("---");
    }
}

#[test]
fn signed_probe_in_dbx_is_refused_and_fails() {
    let template = Path::new(SNAKEOIL_VARS);
    assert!(
        template.exists() && Path::new(ENROLLED_DESCRIPTOR).exists(),
        "{SNAKEOIL_VARS} or {ENROLLED_DESCRIPTOR} is missing: ./ci/setup installs ovmf"
    );
    let digest =
        bootmatrix::prepare::pe::authenticode_sha256(bootmatrix::prepare::PROBE_EFI).unwrap();
    println!("probe Authenticode SHA-256: {}", hex(&digest));

    // The varstore template and the descriptor that names it.
    let dir = tempfile::tempdir().unwrap();
    let varstore = dir.path().join("OVMF_VARS_4M.snakeoil.dbx-probe.fd");
    varstore_with_dbx_hash(template, &digest, dir.path(), &varstore);
    let hashes = dbx_hashes(&varstore);
    assert!(hashes.contains(&hex(&digest)), "dbx holds {hashes:?}");
    // What the snakeoil template had in dbx stays.
    for old in dbx_hashes(template) {
        assert!(hashes.contains(&old), "{old} lost from dbx: {hashes:?}");
    }
    let descriptors = dir.path().join("firmware");
    std::fs::create_dir(&descriptors).unwrap();
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(ENROLLED_DESCRIPTOR).unwrap()).unwrap();
    let features = original["features"].as_array().unwrap();
    for feature in [
        "secure-boot",
        "enrolled-keys",
        "requires-smm",
        "verbose-dynamic",
    ] {
        assert!(features.contains(&feature.into()), "{original:#}");
    }
    for (name, vars, description) in [
        (
            DBX_PROBE,
            varstore.as_path(),
            "Debian's snakeoil-enrolled varstore with the bootmatrix probe's hash in dbx",
        ),
        (CONTROL, template, "Debian's snakeoil-enrolled varstore"),
    ] {
        let mut descriptor = original.clone();
        descriptor["description"] = description.into();
        descriptor["mapping"]["nvram-template"]["filename"] = vars.to_str().unwrap().into();
        std::fs::write(
            descriptors.join(format!("{name}.json")),
            serde_json::to_string_pretty(&descriptor).unwrap(),
        )
        .unwrap();
    }
    let before = [sha256(&varstore), sha256(template)];

    let run = bootmatrix(&[
        "--descriptors",
        descriptors.to_str().unwrap(),
        "--filter",
        &format!(
            "^({DBX_PROBE}/[^/]*/sev-off/secure-boot/db-added-vars-(un)?signed\
             |{CONTROL}/[^/]*/sev-off/secure-boot/db-added-vars-signed)$"
        ),
    ]);

    // db trusts the signer, dbx names the image: the firmware refuses it, against the rule.
    let signed = run.cell(DBX_PROBE, "/sev-off/secure-boot/db-added-vars-signed");
    println!(
        "{}: {} in {:?} ms",
        signed.id, signed.verdict, signed.decided_ms
    );
    let log = serial_log(signed);
    print_around(&log, "Access Denied");
    assert_eq!(signed.verdict, VerdictKind::Fail, "{signed}");
    assert_eq!(
        signed.observed.outcome(),
        Some(Outcome::Refused),
        "{signed}"
    );
    assert!(signed.reason.contains("db-added-signed"), "{signed}");
    assert!(
        log.lines()
            .any(|l| l.contains("BdsDxe: failed to load Boot0001") && l.contains("Access Denied")),
        "{log}"
    );
    assert!(!log.contains("BOOTMATRIX-PROBE"), "{log}");

    // The unsigned probe is refused as always: the dbx entry does not upset the other cell.
    let unsigned = run.cell(DBX_PROBE, "/sev-off/secure-boot/db-added-vars-unsigned");
    assert_eq!(unsigned.verdict, VerdictKind::Pass, "{unsigned}");
    assert_eq!(
        unsigned.observed.outcome(),
        Some(Outcome::Refused),
        "{unsigned}"
    );

    // Control: without the dbx entry the same firmware, keys and probe run, as the rule says.
    let control = run.cell(CONTROL, "/sev-off/secure-boot/db-added-vars-signed");
    assert_eq!(control.verdict, VerdictKind::Pass, "{control}");
    assert_eq!(control.observed.outcome(), Some(Outcome::Runs), "{control}");

    assert_eq!(run.status, 1, "a fail makes the run exit with 1");
    assert_eq!(
        [sha256(&varstore), sha256(template)],
        before,
        "a varstore template was modified"
    );
}

/// One planned, prepared cell of this machine's descriptors, for truth tests that break the
/// cell's set-up on purpose (the library's own stages, as `bootmatrix run` strings them).
struct OneCell {
    cell: bootmatrix::plan::Cell,
    prepared: bootmatrix::prepare::Prepared,
    scenarios: bootmatrix::scenario::Scenarios,
    _dir: tempfile::TempDir,
}

impl OneCell {
    fn new(filter: &str) -> OneCell {
        use bootmatrix::discover::{discover, DiscoverOptions};
        use bootmatrix::plan::layout::Layout;
        use bootmatrix::plan::{plan, PlanOptions};
        let dir = tempfile::tempdir().unwrap();
        let scenarios = bootmatrix::scenario::Scenarios::builtin();
        let inventory = discover(&DiscoverOptions {
            scratch: dir.path().join("scratch"),
            ..DiscoverOptions::default()
        });
        let mut options = PlanOptions::new(Layout::new(dir.path().join("run")));
        options.filter = Some(regex::Regex::new(filter).unwrap());
        options.kernel = bootmatrix::discover::find_kernel(None);
        let planned = plan(&inventory, &scenarios, &options);
        assert_eq!(planned.cells.len(), 1, "{filter}: {:#?}", planned.cells);
        let prepared = bootmatrix::prepare::prepare(&planned.artifacts, &options.layout);
        OneCell {
            cell: planned.cells[0].clone(),
            prepared,
            scenarios,
            _dir: dir,
        }
    }

    fn argv_mut(&mut self) -> &mut Vec<String> {
        match &mut self.cell.action {
            bootmatrix::plan::Action::Run(spec) => &mut spec.argv,
            other => panic!("{}: not runnable: {other:?}", self.cell.id),
        }
    }

    fn run(&self) -> bootmatrix::run::CellResult {
        let result = bootmatrix::run::run_cell(&self.cell, &self.prepared, &self.scenarios);
        println!(
            "{}: {} ({})",
            self.cell.id,
            result.verdict.kind(),
            result.verdict.reason()
        );
        for e in result.verdict.evidence() {
            println!("  {e}");
        }
        result
    }
}

/// The cell is an `error` whose reason says `why`.
fn assert_error(result: &bootmatrix::run::CellResult, why: &str) {
    let (kind, reason) = (result.verdict.kind(), result.verdict.reason());
    assert_eq!(kind, VerdictKind::Error, "{reason}");
    assert!(reason.contains(why), "{reason}");
}

#[test]
fn option_rom_that_is_not_attached_is_an_error_not_a_pass() {
    // The unsigned-ROM cell expects the ROM not to run. Take the ROM off its NIC: nothing runs,
    // and a judge that read "no marker" as "not executed" would pass the cell.
    let mut c = OneCell::new(
        "^50-edk2-x86_64-secure/qemu-7[^/]*/sev-off/option-rom/own-keys-vars-unsigned$",
    );
    let nic = c
        .argv_mut()
        .iter_mut()
        .find(|a| a.starts_with("e1000,"))
        .expect("the ROM's NIC");
    let rom = nic
        .split(',')
        .find(|p| p.starts_with("romfile="))
        .unwrap()
        .to_string();
    *nic = nic.replace(&rom, "romfile=");
    let result = c.run();
    assert_error(&result, "ROM not presented");
    // The probe's report of the NIC is the evidence: no ROM on it.
    assert!(result
        .verdict
        .evidence()
        .iter()
        .any(|e| e.line.contains("loc=0000:00:06.0") && e.line.contains("romsize=0")));
}

#[rstest::rstest]
#[case::no_kernel_at_all(false)]
#[case::empty_kernel_file(true)]
fn kernel_never_handed_over_is_an_error_not_a_refusal(#[case] empty_file: bool) {
    // The switch-off cell expects the unsigned kernel to be refused. Hand the firmware no
    // kernel: a judge that read "nothing booted" as "refused" would pass it.
    let mut c = OneCell::new(
        "^50-edk2-x86_64-secure/qemu-7[^/]*/sev-off/kernel-boot/own-keys-vars-unsigned-no-legacy-loader$",
    );
    let empty = c._dir.path().join("empty-kernel");
    std::fs::write(&empty, b"").unwrap();
    let argv = c.argv_mut();
    let at = argv.iter().position(|a| a == "-kernel").unwrap();
    if empty_file {
        argv[at + 1] = empty.display().to_string();
    } else {
        // -kernel, -initrd and -append with their values.
        for flag in ["-kernel", "-initrd", "-append"] {
            let at = argv.iter().position(|a| a == flag).unwrap();
            argv.drain(at..at + 2);
        }
    }
    let result = c.run();
    assert_error(&result, "");
    let observed = result.verdict.observation().map(|o| o.outcome);
    assert_ne!(observed, Some(Outcome::Refused));
    if !empty_file {
        assert_eq!(observed, Some(Outcome::NothingBootable));
        assert_error(&result, "never handed over");
        assert!(result
            .verdict
            .evidence()
            .iter()
            .any(|e| e.line.contains("BdsDxe: No bootable option")));
    }
}
