//! Reading `--argv-template FILE`: a regular file of at most 1 MiB, UTF-8, split into words as
//! a shell would (nothing expanded), then checked ([`ArgvTemplate::parse`]).

use std::path::PathBuf;

use bootmatrix::discover::words;
use bootmatrix::plan::template::ArgvTemplate;
use bootmatrix::tools::{read_input, shown_name};

const TEMPLATE_LIMIT: u64 = 1 << 20;

/// Every template given, or the first one's problem, naming the file. Two templates with the
/// same name would give their cells the same ids: an error.
pub fn read_all(files: &[PathBuf]) -> Result<Vec<ArgvTemplate>, String> {
    let mut out: Vec<ArgvTemplate> = Vec::new();
    for file in files {
        let name = shown_name(file.as_os_str());
        let at = |e: String| format!("--argv-template {name}: {e}");
        let bytes = read_input(file, TEMPLATE_LIMIT).map_err(|e| at(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| at("not UTF-8".into()))?;
        let words = words::split(&text).map_err(at)?;
        let template = ArgvTemplate::parse(file, words)?;
        if let Some(same) = out.iter().find(|t| t.name == template.name) {
            return Err(at(format!(
                "its cells would be named -via-{} like those of {}; rename one file",
                template.name,
                same.source.display()
            )));
        }
        out.push(template);
    }
    Ok(out)
}
