//! Builds the guest payloads under `images/` for `x86_64-unknown-uefi` and hands them to the
//! harness (`include_bytes!`), so `cargo build` is the only step. Cargo caches the nested build
//! in `target/images`; it reruns only when an image's sources change.

use std::path::{Path, PathBuf};
use std::process::Command;

const UEFI_TARGET: &str = "x86_64-unknown-uefi";

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("images");
    for (krate, binary) in [("probe", "bootmatrix-probe"), ("oprom", "bootmatrix-oprom")] {
        let dir = root.join("images").join(krate);
        for watched in ["src", "Cargo.toml", "Cargo.lock", "build.rs"] {
            println!("cargo:rerun-if-changed={}", dir.join(watched).display());
        }
        let efi = build_image(&dir, binary, &target_dir);
        let dest = out_dir.join(format!("{binary}.efi"));
        std::fs::copy(&efi, &dest)
            .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", efi.display(), dest.display()));
    }
}

fn build_image(dir: &Path, binary: &str, target_dir: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // A clean environment: the outer build's RUSTFLAGS, wrappers (clippy-driver) and target
    // settings are meant for the host crate, not for the UEFI image.
    let keep = [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
    ];
    let mut cmd = Command::new(cargo);
    cmd.env_clear();
    for key in keep {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    let status = cmd
        .args(["build", "--release", "--locked", "--target", UEFI_TARGET])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {}: {e}", dir.display()));
    if !status.success() {
        panic!(
            "building the guest image {} failed ({status}). If the error above says the target \
             is missing, install it with: rustup target add {UEFI_TARGET}",
            dir.display()
        );
    }
    target_dir
        .join(UEFI_TARGET)
        .join("release")
        .join(format!("{binary}.efi"))
}
