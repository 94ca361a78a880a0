// SPDX-License-Identifier: MIT OR Apache-2.0
//! Link flags for the option ROM driver.
//!
//! * `/Brepro` makes the .efi byte-reproducible, as for the probe: lld
//!   otherwise stamps the build time into the PE header and debug directory,
//!   so every build would have a different Authenticode hash.
//! * `/subsystem:efi_boot_service_driver` (PE Subsystem 11): PciBusDxe skips
//!   option ROM images whose subsystem is EFI application (10), and the EFI
//!   ROM header repeats the subsystem, so the image must be a driver. The
//!   x86_64-unknown-uefi target links applications by default; a later
//!   `/subsystem` on the lld-link command line overrides it.
//!
//! A build script is used rather than `.cargo/config.toml` because the latter
//! is only found relative to the current directory, not to `--manifest-path`.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("uefi") {
        println!("cargo:rustc-link-arg-bins=/Brepro");
        println!("cargo:rustc-link-arg-bins=/subsystem:efi_boot_service_driver");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
