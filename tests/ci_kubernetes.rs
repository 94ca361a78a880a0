//! The Kubernetes template of `ci/templates/` (an indexed Job of shards, and a Job that merges
//! them), run here so that it cannot rot: the shard container's command for each
//! `JOB_COMPLETION_INDEX`, as the Job's pods would run it, then the merge Job's init container
//! and container commands, every one with the environment the template gives it and the
//! results volume a folder of the test's own. The image (bootmatrix with its tools) is this
//! machine with this build's `bootmatrix` in PATH. The slice is the one of
//! tests/ci_templates.rs: QEMU starts, no guest boots.
#![cfg(feature = "qemu")]

use std::collections::BTreeMap;

mod ci_steps;

use ci_steps::*;
use yaml_rust2::{Yaml, YamlLoader};

const FILTER: &str = "/sev-on/|/as-bios/";

/// The template's two Jobs, by name.
fn jobs() -> BTreeMap<String, Yaml> {
    let path = templates().join("kubernetes-job.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    YamlLoader::load_from_str(&text)
        .unwrap()
        .into_iter()
        .map(|doc| {
            assert_eq!(text_of(&doc["kind"]), "Job");
            assert_eq!(text_of(&doc["apiVersion"]), "batch/v1");
            (text_of(&doc["metadata"]["name"]), doc)
        })
        .collect()
}

fn text_of(node: &Yaml) -> String {
    text(node, "kubernetes-job.yml")
}

/// A container's environment as the template sets it (`env: [{name, value}]`), over `base`.
fn container_env(container: &Yaml, base: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env = base.clone();
    for var in container["env"].as_vec().map(Vec::as_slice).unwrap_or(&[]) {
        only_keys(var, &["name", "value"], "env");
        env.insert(text_of(&var["name"]), text_of(&var["value"]));
    }
    env
}

/// A container's command: `sh -ec SCRIPT`, nothing else.
fn script(container: &Yaml) -> String {
    let command = lines(&container["command"], "command");
    assert_eq!(command[..2], ["sh", "-ec"], "{command:?}");
    assert_eq!(command.len(), 3, "{command:?}");
    assert_installs_nothing(&command, "command");
    command[2].clone()
}

/// The only container of a Job's pod (and its init containers).
fn containers(job: &Yaml, key: &str) -> Vec<Yaml> {
    job["spec"]["template"]["spec"][key]
        .as_vec()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn kubernetes_template_runs_three_indexed_shards_and_merges_them() {
    let jobs = jobs();
    assert_eq!(
        jobs.keys().collect::<Vec<_>>(),
        ["bootmatrix-merge", "bootmatrix-shards"],
        "the Jobs this test runs"
    );
    let shards = &jobs["bootmatrix-shards"];
    assert_eq!(text_of(&shards["spec"]["completionMode"]), "Indexed");
    let total: usize = text_of(&shards["spec"]["completions"]).parse().unwrap();
    assert_eq!(total, 3);
    // Each shard fails on its own: the others go on.
    assert_eq!(text_of(&shards["spec"]["backoffLimitPerIndex"]), "0");
    let [shard] = &containers(shards, "containers")[..] else {
        panic!("one container per shard pod")
    };
    assert!(containers(shards, "initContainers").is_empty());
    let shard_script = script(shard);
    assert_narrowed(&shard_script, "bootmatrix-shards");
    // The shard total is the Job's completions.
    assert!(
        shard_script.contains(&format!("--shard-total {total} ")),
        "{shard_script}"
    );

    let m = Machine::new();
    let planned = planned(&m, &["--filter", FILTER]);
    let results = m.folder("results");
    let mut base = m.env();
    let env = container_env(shard, &base);
    assert_eq!(env.get("BOOTMATRIX_FILTER").map(String::as_str), Some(""));
    let mount = text_of(&shard["volumeMounts"][0]["mountPath"]);
    assert_eq!(
        env.get("RESULTS"),
        Some(&mount),
        "RESULTS is the results volume"
    );
    base.insert("BOOTMATRIX_FILTER".into(), FILTER.into());
    for index in 0..total {
        let mut env = container_env(shard, &base);
        env.insert("BOOTMATRIX_FILTER".into(), FILTER.into());
        env.insert("RESULTS".into(), results.display().to_string());
        env.insert("JOB_COMPLETION_INDEX".into(), index.to_string());
        let pod = m.folder(&format!("pod-{index}"));
        shell(
            "sh",
            &shard_script,
            &pod,
            &env,
            &format!("shard index {index}"),
        );
        check_shard(
            &results.join(format!("shard-{index}/report.json")),
            index + 1,
            total,
            &planned,
        );
    }
    let merge = &jobs["bootmatrix-merge"];
    let pod = m.folder("merge-pod");
    for key in ["initContainers", "containers"] {
        for container in containers(merge, key) {
            let mut env = container_env(&container, &base);
            assert_eq!(env.get("RESULTS"), Some(&mount));
            env.insert("RESULTS".into(), results.display().to_string());
            let name = text_of(&container["name"]);
            shell("sh", &script(&container), &pod, &env, &name);
        }
    }
    check_merged(&results.join("merged"), &planned, total);
}
