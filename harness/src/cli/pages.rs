//! Shell completions and man pages, generated from the same clap definition that parses the
//! command line.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::args::Cli;

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), "bootmatrix", out);
}

/// Writes the roff source of bootmatrix(1) to `out`.
pub fn man_page(out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(man_command()).render(out)
}

/// Writes bootmatrix.1 and one bootmatrix-COMMAND.1 per subcommand into `dir` (made if
/// missing); returns their paths.
pub fn man_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let root = man_command();
    let mut written = vec![clap_mangen::Man::new(root.clone()).generate_to(dir)?];
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        written.push(clap_mangen::Man::new(sub.clone()).generate_to(dir)?);
    }
    Ok(written)
}

/// The definition as the man pages show it: without clap's `help` subcommand, built so that
/// each subcommand carries its full name (`bootmatrix-run`).
fn man_command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}
