// SPDX-License-Identifier: MIT OR Apache-2.0
//! Makes the .efi byte-reproducible.
//!
//! By default lld stamps the build time into the PE header and the debug
//! directory, so every build has a different Authenticode hash. A stable
//! image lets the harness enroll the probe's hash in db/dbx (and cache
//! signatures) across rebuilds. A build script is used rather than
//! `.cargo/config.toml` because the latter is only found relative to the
//! current directory, not to `--manifest-path`.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("uefi") {
        // /Brepro: lld-link replaces timestamps with a hash of the image.
        println!("cargo:rustc-link-arg-bins=/Brepro");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
