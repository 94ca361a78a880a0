//! `bootmatrix lint`: a runtime's QEMU command line, judged against the descriptors.

use bootmatrix::discover::words;
use bootmatrix::discover::{discover_firmware, DiscoverOptions};
use bootmatrix::lint;
use bootmatrix::scenario::Scenarios;
use bootmatrix::tools::{read_input, shown, shown_name};

use std::path::Path;

use bootmatrix::plan::template::ArgvTemplate;

use super::args::{Cells, Found, LintArgs, Options, Verb};

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
    if !args.boot {
        return Ok(report.exit_code());
    }
    let booted = boot(args, &argv, &report)?;
    Ok(report.exit_code().max(booted))
}

/// `lint --boot`: the line's shape as the template `lint`, run on the firmware it loads.
fn boot(args: &LintArgs, argv: &[String], report: &lint::Report) -> Result<u8, String> {
    let descriptor = report
        .firmware
        .as_ref()
        .and_then(|f| f.descriptor.clone())
        .ok_or("--boot needs a firmware that a descriptor names: no cell would run it")?;
    let line = lint::argv::QemuLine::parse(argv)?;
    let shape = lint::shape::boot_shape(&line)?;
    let template = ArgvTemplate::parse(Path::new("lint"), shape.words)?;
    println!(
        "\nbooting the line's shape (template `lint`): {}",
        shown(&template.words.join(" "), 2000)
    );
    if !shape.left_out.is_empty() {
        println!(
            "left out (files and devices of the runtime's machine): {}",
            shown(&shape.left_out.join(" "), 2000)
        );
    }
    let stem = descriptor.strip_suffix(".json").unwrap_or(&descriptor);
    let filter = format!(
        "^{}(@[^/]*)?/[^/]*/sev-off/(secure-boot|option-rom|kernel-boot)/[^/]*-via-lint$",
        regex::escape(stem)
    );
    let found = Found {
        descriptor_dirs: args.descriptor_dirs.clone(),
        descriptor_root: args.descriptor_root.clone(),
        ..Found::default()
    };
    let cells = Cells {
        scenarios: args.scenarios.clone(),
        ..Cells::default()
    };
    let options = Options {
        filter: Some(regex::Regex::new(&filter).map_err(|e| e.to_string())?),
        out: args.out.clone(),
        timeout_scale: args.timeout_scale.unwrap_or(1.0),
        templates: vec![template],
        ..Options::new(Verb::Run, found, cells)
    };
    crate::execute(&options)
}
