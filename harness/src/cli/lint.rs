//! `bootmatrix lint`: a runtime's QEMU command line, judged against the descriptors.

use bootmatrix::discover::words;
use bootmatrix::discover::{discover_firmware, DiscoverOptions};
use bootmatrix::lint;
use bootmatrix::scenario::Scenarios;
use bootmatrix::tools::{read_input, shown, shown_name};

use super::args::LintArgs;

/// The most `--file` reads (1 MiB; a libvirt command line is a few KiB).
const LINE_LIMIT: u64 = 1 << 20;

/// Runs `bootmatrix lint`; returns the exit status: 1 on an error finding, 2 on bad input.
pub fn lint(args: &LintArgs) -> u8 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bootmatrix: {}", shown(&e, 2000));
            2
        }
    }
}

fn run(args: &LintArgs) -> Result<u8, String> {
    let scenarios = match &args.scenarios {
        Some(dir) => Scenarios::load_dir(dir).map_err(|e| e.to_string())?,
        None => Scenarios::builtin(),
    };
    let argv = match &args.line.file {
        Some(file) => {
            let name = shown_name(file.as_os_str());
            let bytes = read_input(file, LINE_LIMIT).map_err(|e| format!("--file {name}: {e}"))?;
            let text = String::from_utf8(bytes).map_err(|_| format!("--file {name}: not UTF-8"))?;
            let words = words::split(&text).map_err(|e| format!("--file {name}: {e}"))?;
            if words.is_empty() {
                return Err(format!("--file {name}: no command line in it"));
            }
            words
        }
        None => args.line.argv.clone(),
    };
    if let Some(root) = &args.descriptor_root {
        if !root.is_dir() {
            return Err(format!(
                "--root {}: not a folder",
                shown_name(root.as_os_str())
            ));
        }
    }
    let inventory = discover_firmware(&DiscoverOptions {
        descriptor_dirs: args.descriptor_dirs.clone(),
        descriptor_root: args.descriptor_root.clone(),
        ..DiscoverOptions::default()
    });
    let report = lint::lint(&argv, &inventory.firmware, &scenarios)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report serializes")
        );
    } else {
        print!("{}", lint::text(&report));
    }
    Ok(report.exit_code())
}
