//! Scenario folders for tests: the repository's scenarios with one rule changed, so that a
//! real boot can be shown to fail when its expectation is flipped.

use std::path::Path;

use serde_json::Value;

/// A copy of the repository's scenarios, with `edit` applied to one file's JSON.
pub fn scenarios_with(file: &str, edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let target = dir.path().join(file);
    let mut value: Value =
        serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(&target, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    dir
}

pub fn rule_mut<'a>(scenario: &'a mut Value, id: &str) -> &'a mut Value {
    scenario["rules"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("rule {id}"))
}
