//! What `bootmatrix` accepts: one clap definition that parses the command line and also
//! generates the help texts, the shell completions and the man pages.
//!
//! Each subcommand takes only the options that change what it does: the option groups
//! ([`Found`], [`Cells`]) are flattened into the subcommands that use them, and every value is
//! checked by its parser, so a bad value is a usage error (exit status 2) naming its option.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueHint};
use regex::Regex;

use bootmatrix::discover::host::Accel;
use bootmatrix::discover::qemu;
use bootmatrix::discover::release::Edk2Release;
use bootmatrix::matrix::Profile;
use bootmatrix::plan::shard::Shard;
use bootmatrix::report::expect::Build;

/// Boot QEMU/OVMF guests and check the promises of firmware descriptors
///
/// bootmatrix boots QEMU/OVMF guests for every firmware descriptor and checks that the
/// firmware keeps the security promises its descriptor makes: Secure Boot enforcement
/// (secure-boot), option-ROM rejection (option-rom), direct-kernel-boot policy (kernel-boot),
/// the distro's signed shim, grub and kernel under the shipped keys (distro-chain), no
/// reachable UEFI shell (no-shell) and the health of the shipped Secure Boot keys
/// (key-health, read without a boot).
#[derive(Debug, Parser)]
#[command(
    name = "bootmatrix",
    version,
    arg_required_else_help = true,
    after_help = "Exit status of `run`: 0 when no cell failed or errored, 1 otherwise, 2 on bad usage."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What was found, and why anything was left out
    ///
    /// The firmware descriptors (usable, broken, masked), each QEMU binary with what KVM and
    /// SEV can do there, the kernel for the kernel-boot cells, and why anything was left out.
    /// Nothing is booted but the small KVM and SEV probes.
    List(ListArgs),
    /// Every cell with its exact argv or its skip reason
    ///
    /// The cells `run` would boot with the same options, each with the exact QEMU argv (paths
    /// under the run folder) or the reason it is skipped or refused. Nothing is booted but the
    /// small KVM and SEV probes.
    Plan(PlanArgs),
    /// Boot every cell, judge it, print a summary
    ///
    /// Prepares keys, signed payloads, option ROMs and varstores in the run folder, boots every
    /// cell, judges it against the scenarios and prints one progress line per cell, then a
    /// summary; report.json and each cell's logs stay in the run folder.
    #[command(
        after_help = "Exit status: 0 when no cell failed or errored, 1 otherwise, 2 on bad usage."
    )]
    Run(RunArgs),
    /// A cell's expectation, where it comes from, what was observed and the verdict
    ///
    /// For one cell: the expectation and where it came from (profile, rule and its condition,
    /// descriptor features, firmware identity, any known deviation for the build), the exact
    /// argv or the skip/refusal reason, and what the run folder recorded, with the verdict.
    Explain(ExplainArgs),
    /// Everything bootmatrix expects of one firmware build
    ///
    /// For every descriptor of the build (a package, or one descriptor or firmware file), on
    /// every QEMU found, with SEV off and on: each cell's expected outcome and the rule it comes
    /// from, or why it does not run; then the rules' reasons, the build's known deviations,
    /// whether it is a measured-direct-boot build, and the rules the edk2 release or the QEMU
    /// version decides. Nothing is booted but the small KVM and SEV probes.
    Expect(ExpectArgs),
    /// Markdown tables of what each firmware generation does on each QEMU, from run reports
    ///
    /// One table per check: a row per descriptor and variant (SEV off), a column per firmware
    /// generation (edk2 release), each entry what the cells showed and their verdict, naming
    /// the QEMU versions where they disagree. Several reports are read as one run, a cell of a
    /// later report replacing the same cell of an earlier one. With
    /// --readme, the part of FILE between the markers `<!-- bootmatrix table: begin ... -->` and
    /// `<!-- bootmatrix table: end -->` is replaced (the README's table is made this way).
    Table {
        /// report.json of a run (repeatable)
        #[arg(value_name = "REPORT", required = true, value_hint = ValueHint::FilePath)]
        reports: Vec<PathBuf>,
        /// Rewrite the table in FILE between its markers instead of printing it
        #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
        readme: Option<PathBuf>,
    },
    /// Reports of several runs as one: `report merge`
    #[command(subcommand, arg_required_else_help = true)]
    Report(ReportCommand),
    /// A varstore's Secure Boot keys and what they are worth (key-health)
    ///
    /// Reads FILE (an edk2 OVMF_VARS file) through virt-fw-vars and openssl, from a scratch
    /// copy, and prints PK, KEK, db and dbx: each certificate's subject, issuer, validity,
    /// well-known name (or -) and the start of its SHA-256 thumbprint, with dbx's entry count;
    /// then the key-health findings for the strict profile, and with --edk2 also for the
    /// upstream profile of that edk2 release. Nothing is booted, and FILE is never written.
    #[command(
        after_help = "Exit status: 0 when FILE was read (the findings are information), 1 when it could not be read, 2 on bad usage."
    )]
    Keys(KeysArgs),
    /// Judge a VM runtime's own QEMU command line against the firmware descriptors
    ///
    /// Reads a QEMU command line (after `--`, or from --file), identifies its firmware by path
    /// and sha256 against the descriptors, and reports findings, each with an id, a severity,
    /// the argv words it is about, the reason and a reference: a Secure Boot build under -bios
    /// or without a varstore, SMM missing, a shared or read-only varstore, -kernel with the
    /// legacy loader (CVE-2025-2296), -kernel under SEV unmeasured, option ROMs in a
    /// confidential guest, an unlisted machine type, a split varstore under SEV. Nothing is
    /// booted.
    #[command(
        after_help = "Exit status: 0 when no finding is an error, 1 when one is, 2 on bad usage or a command line that cannot be read.",
        arg_required_else_help = true
    )]
    Lint(LintArgs),
    /// Print a shell completion script
    ///
    /// For example: `bootmatrix completions bash > ~/.local/share/bash-completion/completions/bootmatrix`
    /// or `bootmatrix completions zsh > ~/.zfunc/_bootmatrix`.
    Completions {
        /// The shell the script is for
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page, or write one page per subcommand
    ///
    /// Without --out, the roff source of bootmatrix(1) goes to stdout (`bootmatrix man | man
    /// -l -`). With --out DIR, bootmatrix.1 and one bootmatrix-COMMAND.1 per subcommand are
    /// written into DIR (made if missing), and their paths printed.
    Man {
        /// Write bootmatrix.1 and one page per subcommand into DIR
        #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Put the reports of a matrix's shards back together
    ///
    /// Reads the report.json of each shard (`run --shard K/N`) and writes one report.json, one
    /// JUnit XML file (junit.xml) and one self-contained HTML page (report.html) into DIR. It
    /// refuses, naming the cells, shards that overlap, cells missing from the planned matrix,
    /// and shards planned from different inputs (their plan fingerprints differ). One
    /// unsharded run's report.json gives that run's page.
    #[command(
        after_help = "Exit status: 0 when merged and no cell failed or errored, 1 when merged with failed or errored cells, 2 when refused or on bad usage."
    )]
    Merge {
        /// report.json of each shard
        #[arg(value_name = "REPORT", required = true, value_hint = ValueHint::FilePath)]
        reports: Vec<PathBuf>,
        /// The folder to write report.json, junit.xml and report.html into (new or empty)
        #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The varstore (an edk2 OVMF_VARS file)
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// The firmware build's edk2 release (YYYY.MM): also judge it by the upstream profile
    #[arg(long, value_name = "YYYY.MM", value_parser = parse_edk2)]
    pub edk2: Option<Edk2Release>,
    /// Judge expiry on DATE (YYYY-MM-DD) instead of today (UTC)
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub today: Option<jiff::civil::Date>,
    /// Well-known certificates from DIR's scenario files instead of the built-in ones
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub scenarios: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[group(id = "line", required = true, multiple = false)]
pub struct LintLine {
    /// A file holding the command line: shell-style words, backslash-newline continuations,
    /// `#` comments
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: Option<PathBuf>,
    /// The QEMU command line, after `--` (with or without the program first)
    #[arg(value_name = "QEMU_ARGV", last = true, allow_hyphen_values = true)]
    pub argv: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    #[command(flatten)]
    pub line: LintLine,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Search DIR for descriptors instead of the default folders (repeatable, general to
    /// specific)
    #[arg(long = "descriptors", value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub descriptor_dirs: Vec<PathBuf>,
    /// The unpacked package tree the --descriptors folders name their files in (as for list)
    #[arg(
        long = "root",
        value_name = "ROOT",
        requires = "descriptor_dirs",
        value_hint = ValueHint::DirPath
    )]
    pub descriptor_root: Option<PathBuf>,
    /// Finding texts and measured builds from DIR's scenario files instead of the built-in ones
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub scenarios: Option<PathBuf>,
    /// Then boot the line's own shape: its firmware options, machine, -kernel and -fw_cfg as
    /// an argv template (`-via-lint` cells) with the secure-boot, option-rom and kernel-boot
    /// checks, on the firmware it loads and every QEMU found; exit 1 on a failed cell too
    #[arg(long)]
    pub boot: bool,
    /// --boot: the run folder (default: ./bootmatrix-runs/<UTC time>)
    #[arg(long, value_name = "DIR", requires = "boot", value_hint = ValueHint::DirPath)]
    pub out: Option<PathBuf>,
    /// --boot: multiply every cell deadline by F
    #[arg(long, value_name = "F", requires = "boot", value_parser = parse_timeout_scale)]
    pub timeout_scale: Option<f64>,
}

/// Where firmware, QEMU and the kernel are looked for: what `list` shows, and what every
/// command that plans starts from.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Firmware, QEMU and kernel")]
pub struct Found {
    /// Search DIR for descriptors instead of the default folders (repeatable, general to
    /// specific)
    #[arg(long = "descriptors", value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub descriptor_dirs: Vec<PathBuf>,
    /// The unpacked package tree (`dpkg-deb -x PKG.deb ROOT`) the --descriptors folders name
    /// their files in: each path resolves under ROOT, as in a chroot (default: ROOT for a
    /// folder ROOT/usr/share/qemu/firmware)
    #[arg(
        long = "root",
        value_name = "ROOT",
        requires = "descriptor_dirs",
        value_hint = ValueHint::DirPath
    )]
    pub descriptor_root: Option<PathBuf>,
    /// Also use this QEMU binary (repeatable); DATADIR is passed as -L
    #[arg(
        long = "qemu",
        value_name = "PATH[=DATADIR]",
        value_parser = parse_qemu,
        value_hint = ValueHint::ExecutablePath
    )]
    pub qemus: Vec<(PathBuf, Option<PathBuf>)>,
    /// Also use the QEMU of this unpacked Debian root (repeatable): DIR/usr/bin/qemu-system-x86_64,
    /// started through DIR's own dynamic loader and libraries (see ./ci/debian-matrix)
    #[arg(long = "qemu-root", value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub qemu_roots: Vec<PathBuf>,
    /// Do not use qemu-system-x86_64 from PATH
    #[arg(long)]
    pub no_path_qemu: bool,
    /// Linux bzImage for kernel-boot cells (default: the one ./ci/setup fetched into
    /// ~/.cache/bootmatrix, else the newest /boot/vmlinuz-*)
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub kernel: Option<PathBuf>,
    /// A Debian suite's signed boot chain for distro-chain cells: a folder with
    /// shimx64.efi.signed, grubx64.efi.signed, vmlinuz and .bootmatrix-chain (repeatable;
    /// default: the machine's own suite's, which ./ci/setup fetches into
    /// ~/.cache/bootmatrix/debian/SUITE/chain)
    #[arg(long = "chain", value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub chains: Vec<PathBuf>,
}

/// What shapes each cell: its accelerator, its expectation and its payloads.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Cells")]
pub struct Cells {
    /// Force the accelerator (default: KVM where it really works)
    #[arg(long, value_name = "ACCEL", value_parser = accel_parser())]
    pub accel: Option<Accel>,
    /// Expectations from DIR instead of the built-in scenarios/
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub scenarios: Option<PathBuf>,
    /// The policy the firmware is held to
    #[arg(long, value_name = "PROFILE", value_parser = profile_parser(), default_value = "strict")]
    pub profile: Profile,
    /// shim for the -shim kernel-boot cells (QEMU >= 10.0)
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub shim: Option<PathBuf>,
    /// A runtime's own QEMU command line with placeholders ({firmware}, {vars}, {esp},
    /// {kernel}, {initrd}, {append}, {romfile}, {accel}): the secure-boot, option-rom and
    /// kernel-boot cells also run in its shape, named -via-FILE-STEM (repeatable)
    #[arg(long = "argv-template", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub argv_templates: Vec<PathBuf>,
}

/// Which part of the matrix this job runs, for CI engines that split it over parallel jobs.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Shards")]
pub struct Sharding {
    /// Only shard K of N (1-based): N shards together are the whole matrix, no cell twice,
    /// balanced by expected cost (default: GitLab's CI_NODE_INDEX/CI_NODE_TOTAL, or
    /// Kubernetes' JOB_COMPLETION_INDEX with --shard-total)
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// The number of shards of a Kubernetes indexed Job (its completions): the shard is
    /// JOB_COMPLETION_INDEX + 1 of N
    #[arg(long, value_name = "N", value_parser = parse_jobs, conflicts_with = "shard")]
    pub shard_total: Option<usize>,
    /// Balance the shards by each cell's time in this earlier report.json (else: a probe
    /// cell costs 1, a kernel cell 2, a distro chain 3, a cell that does not boot 0)
    #[arg(long, value_name = "REPORT", value_hint = ValueHint::FilePath)]
    pub timings: Option<PathBuf>,
    /// Whether the CI engines' variables may choose the shard: for `plan` and `run`, not for
    /// the cells `lint --boot` runs (whose options are the default).
    #[arg(skip = true)]
    pub from_engine: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub found: Found,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Only cells whose id matches
    #[arg(long, value_name = "REGEX", value_parser = parse_filter)]
    pub filter: Option<Regex>,
    /// Run folder the printed argv use (default: ./bootmatrix-runs/<UTC time>)
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub out: Option<PathBuf>,
    /// Start every cell's argv paused (-S) on the cell's own QEMU, then quit it: one line per
    /// cell, accepted, rejected (a planner bug, naming the option) or needs-host (KVM or SEV
    /// missing here); cells skipped only for want of KVM or SEV are checked as planned for a
    /// host that has them. Exit status 1 when any argv is rejected
    #[arg(long)]
    pub verify: bool,
    /// Test only: append PROPERTY to the -machine option of every verified argv
    #[arg(long, value_name = "PROPERTY", hide = true, requires = "verify")]
    pub verify_machine_property: Option<String>,
    /// Print the plan as JSON: every cell with its argv or its rule and reason, and for
    /// SEV-SNP cells the launch measurement predicted offline by sev-snp-measure (predicted,
    /// not observed)
    #[arg(long, conflicts_with = "verify")]
    pub json: bool,
    #[command(flatten)]
    pub sharding: Sharding,
    #[command(flatten)]
    pub found: Found,
    #[command(flatten)]
    pub cells: Cells,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Only cells whose id matches
    #[arg(long, value_name = "REGEX", value_parser = parse_filter)]
    pub filter: Option<Regex>,
    /// Run folder, new or empty, held by one run at a time (default:
    /// ./bootmatrix-runs/<UTC time>, with -2, -3, ... when taken)
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub out: Option<PathBuf>,
    /// Cells booted at once (default: number of CPUs)
    #[arg(long, value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Multiply every cell deadline by F (slow hosts)
    #[arg(long, value_name = "F", value_parser = parse_timeout_scale, default_value = "1")]
    pub timeout_scale: f64,
    /// Also write the JSON report to FILE
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub report_json: Option<PathBuf>,
    /// Also write a JUnit XML report to FILE (fail = failure, error = error, skip = skipped,
    /// known-deviation passes with its reason in system-out)
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub sharding: Sharding,
    #[command(flatten)]
    pub found: Found,
    #[command(flatten)]
    pub cells: Cells,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A cell id, or a part of one that names a single cell (see `bootmatrix plan`)
    #[arg(value_name = "CELL")]
    pub cell: String,
    /// Run folder to read the observation from (default: the newest run under
    /// ./bootmatrix-runs)
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub out: Option<PathBuf>,
    /// Multiply the cell's deadline by F, as `run --timeout-scale F` did
    #[arg(long, value_name = "F", value_parser = parse_timeout_scale, default_value = "1")]
    pub timeout_scale: f64,
    #[command(flatten)]
    pub found: Found,
    #[command(flatten)]
    pub cells: Cells,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct BuildChoice {
    /// The package, with or without its version: `ovmf` or `ovmf 2022.11-6+deb12u2`
    #[arg(long, value_name = "NAME")]
    pub package: Option<String>,
    /// A descriptor file, or the firmware executable one names
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub firmware: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExpectArgs {
    #[command(flatten)]
    pub build: BuildChoice,
    #[command(flatten)]
    pub found: Found,
    #[command(flatten)]
    pub cells: Cells,
}

/// The commands that discover and plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    List,
    Plan,
    Run,
    Explain,
    Expect,
}

/// A `list`, `plan`, `run` or `explain` command line, every option at its value or default.
#[derive(Debug)]
pub struct Options {
    pub verb: Verb,
    /// explain: the cell id.
    pub cell: Option<String>,
    /// expect: the build.
    pub build: Option<Build>,
    pub found: Found,
    pub cells: Cells,
    pub filter: Option<Regex>,
    pub out: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub timeout_scale: f64,
    pub report_json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    /// plan: start every argv paused (`--verify`).
    pub verify: bool,
    /// plan --verify: test only, a property for every argv's `-machine`.
    pub verify_machine_property: Option<String>,
    /// plan: print JSON (`--json`).
    pub json: bool,
    /// Argv templates given in memory (`lint --boot`), besides `--argv-template` files.
    pub templates: Vec<bootmatrix::plan::template::ArgvTemplate>,
    /// plan, run: which shard (`--shard`, `--shard-total`, `--timings`).
    pub sharding: Sharding,
}

impl Options {
    pub fn new(verb: Verb, found: Found, cells: Cells) -> Options {
        Options {
            verb,
            cell: None,
            build: None,
            found,
            cells,
            filter: None,
            out: None,
            jobs: None,
            timeout_scale: 1.0,
            report_json: None,
            junit: None,
            verify: false,
            verify_machine_property: None,
            json: false,
            templates: Vec::new(),
            sharding: Sharding::default(),
        }
    }
}

impl Command {
    /// The options of `list`, `plan`, `run` or `explain`; None for the commands that only
    /// print what this definition generates.
    pub fn into_options(self) -> Option<Options> {
        Some(match self {
            Command::List(a) => Options::new(Verb::List, a.found, Cells::default()),
            Command::Plan(a) => Options {
                filter: a.filter,
                out: a.out,
                verify: a.verify,
                verify_machine_property: a.verify_machine_property,
                json: a.json,
                sharding: a.sharding,
                ..Options::new(Verb::Plan, a.found, a.cells)
            },
            Command::Run(a) => Options {
                filter: a.filter,
                out: a.out,
                jobs: a.jobs,
                timeout_scale: a.timeout_scale,
                report_json: a.report_json,
                junit: a.junit,
                sharding: a.sharding,
                ..Options::new(Verb::Run, a.found, a.cells)
            },
            Command::Explain(a) => Options {
                cell: Some(a.cell),
                out: a.out,
                timeout_scale: a.timeout_scale,
                ..Options::new(Verb::Explain, a.found, a.cells)
            },
            Command::Expect(a) => Options {
                build: Some(match (a.build.package, a.build.firmware) {
                    (Some(package), _) => Build::Package(package),
                    (None, Some(file)) => Build::Firmware(file),
                    (None, None) => unreachable!("clap requires --package or --firmware"),
                }),
                ..Options::new(Verb::Expect, a.found, a.cells)
            },
            Command::Completions { .. }
            | Command::Man { .. }
            | Command::Table { .. }
            | Command::Report(_)
            | Command::Keys(_)
            | Command::Lint(_) => return None,
        })
    }
}

fn accel_parser() -> impl TypedValueParser<Value = Accel> {
    PossibleValuesParser::new([
        PossibleValue::new("kvm").help("hardware virtualization (needs a usable /dev/kvm)"),
        PossibleValue::new("tcg").help("QEMU's emulation: slower, deadlines x4"),
    ])
    .try_map(|s| s.parse::<Accel>())
}

fn profile_parser() -> impl TypedValueParser<Value = Profile> {
    PossibleValuesParser::new([
        PossibleValue::new("strict").help("no unsigned code runs under enforcing Secure Boot"),
        PossibleValue::new("upstream").help("what edk2 documents for the firmware's release"),
    ])
    .try_map(|s| s.parse::<Profile>())
}

fn parse_qemu(arg: &str) -> Result<(PathBuf, Option<PathBuf>), String> {
    match qemu::parse_qemu_arg(arg) {
        (path, _) if path.as_os_str().is_empty() => Err("expected PATH or PATH=DATADIR".into()),
        parsed => Ok(parsed),
    }
}

fn parse_edk2(text: &str) -> Result<Edk2Release, String> {
    Edk2Release::parse(text).ok_or_else(|| "expected an edk2 release YYYY.MM, e.g. 2025.11".into())
}

fn parse_date(text: &str) -> Result<jiff::civil::Date, String> {
    text.parse()
        .map_err(|_| "expected a date YYYY-MM-DD".to_string())
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    text.parse()
}

fn parse_filter(re: &str) -> Result<Regex, regex::Error> {
    Regex::new(re)
}

fn parse_jobs(n: &str) -> Result<usize, String> {
    n.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| "expected a positive number".into())
}

fn parse_timeout_scale(f: &str) -> Result<f64, String> {
    f.parse()
        .ok()
        .filter(|f: &f64| f.is_finite() && *f > 0.0)
        .ok_or_else(|| "expected a positive, finite number".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn values_are_checked_by_their_parsers() {
        assert_eq!(parse_jobs("3"), Ok(3));
        assert!(parse_jobs("0").is_err());
        assert!(parse_jobs("-1").is_err());
        assert_eq!(parse_timeout_scale("2.5"), Ok(2.5));
        for bad in ["0", "-1", "inf", "NaN", "x"] {
            assert!(parse_timeout_scale(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_qemu("/q=/d"),
            Ok((PathBuf::from("/q"), Some(PathBuf::from("/d"))))
        );
        assert_eq!(parse_qemu("/q"), Ok((PathBuf::from("/q"), None)));
        assert!(parse_qemu("=/d").is_err());
        assert!(parse_filter("(").is_err());
    }

    #[test]
    fn each_command_keeps_only_its_own_options() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("bootmatrix").chain(args.iter().copied()))
                .map(|cli| cli.command.into_options())
        };
        let run = parse(&[
            "run",
            "--filter=^a",
            "--jobs",
            "2",
            "--timeout-scale=3",
            "--profile",
            "upstream",
            "--accel=tcg",
            "--qemu",
            "/q=/d",
            "--qemu=/r",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(run.verb, Verb::Run);
        assert_eq!(run.filter.unwrap().as_str(), "^a");
        assert_eq!(run.jobs, Some(2));
        assert_eq!(run.timeout_scale, 3.0);
        assert_eq!(run.cells.profile, Profile::Upstream);
        assert_eq!(run.cells.accel, Some(Accel::Tcg));
        assert_eq!(run.found.qemus.len(), 2);

        let explain = parse(&["explain", "--profile", "upstream", "some/cell"])
            .unwrap()
            .unwrap();
        assert_eq!(explain.cell.as_deref(), Some("some/cell"));
        assert_eq!(explain.cells.profile, Profile::Upstream);

        let list = parse(&["list"]).unwrap().unwrap();
        assert_eq!(list.cells.profile, Profile::Strict);
        assert_eq!(list.timeout_scale, 1.0);

        for wrong in [
            &["list", "--filter", "x"][..],
            &["plan", "--junit", "j.xml"],
            &["explain", "c", "--report-json", "r.json"],
            &["explain"],
            &["run", "extra"],
        ] {
            assert!(parse(wrong).is_err(), "{wrong:?} should be refused");
        }
        assert!(parse(&["completions", "bash"]).unwrap().is_none());
    }
}
