//! Which variants each check tries on a descriptor: the varstores, payloads and tweaks, and
//! for distro-chain the chains.

use crate::discover::chain::DistroChain;
use crate::discover::descriptor::{Descriptor, Feature, FlashMode, ImageFormat, Mapping};
use crate::matrix::{Chain, ChainKernel, Check, Payload, Suite, Tweak, Variant, Vars};
use crate::plan::layout::Layout;
use crate::plan::Artifact;

/// The varstore variants a descriptor is tested with.
pub fn vars_variants(descriptor: &Descriptor) -> Vec<Vars> {
    let has_template = matches!(&descriptor.mapping,
        Mapping::Flash(f) if f.mode == FlashMode::Split && f.nvram_template.is_some());
    if !has_template {
        return vec![Vars::Shipped];
    }
    if descriptor.has(&Feature::EnrolledKeys) {
        vec![Vars::Shipped, Vars::DbAdded]
    } else if descriptor.has(&Feature::SecureBoot) {
        vec![Vars::Shipped, Vars::OwnKeys]
    } else {
        vec![Vars::Shipped]
    }
}

/// The varstore under which Secure Boot enforces with the test db key trusted (or the shipped
/// one, for builds without Secure Boot): what option-rom and kernel-boot cells boot with.
pub fn enforcing_vars(descriptor: &Descriptor) -> Vars {
    *vars_variants(descriptor)
        .last()
        .expect("vars_variants is never empty")
}

/// The variants a check tries on a descriptor.
pub fn variants(
    check: Check,
    descriptor: &Descriptor,
    chains: &Result<Vec<DistroChain>, String>,
    host: Suite,
) -> Vec<Variant> {
    let vars = match check {
        Check::SecureBoot => vars_variants(descriptor),
        Check::OptionRom | Check::KernelBoot => vec![enforcing_vars(descriptor)],
        Check::DistroChain => return chain_variants(descriptor, chains, host),
        // The build's own keys, as shipped: only a build that ships them enrolled enforces.
        Check::NoShell if descriptor.has(&Feature::EnrolledKeys) => {
            return vec![Variant::new(Vars::Shipped, Payload::Unsigned)]
        }
        Check::NoShell => return Vec::new(),
        // Static: the shipped store and the one bootmatrix enrolls, where there is a template.
        Check::KeyHealth if descriptor.has(&Feature::EnrolledKeys) && has_template(descriptor) => {
            return vec![
                Variant::new(Vars::Shipped, Payload::Unsigned),
                Variant::new(Vars::DbAdded, Payload::Unsigned),
            ]
        }
        Check::KeyHealth => return Vec::new(),
        Check::AsBios => return as_bios_variants(descriptor),
    };
    let mut out = Vec::new();
    for &vars in &vars {
        for &payload in Payload::ALL {
            for &tweak in check.tweaks() {
                // shim is signed for the vendor's db: only builds that ship with keys enrolled
                // trust it.
                if tweak == Tweak::Shim && !descriptor.has(&Feature::EnrolledKeys) {
                    continue;
                }
                out.push(Variant {
                    tweak,
                    ..Variant::new(vars, payload)
                });
            }
        }
    }
    out
}

/// as-bios: the unsigned probe on an ESP, and the unsigned kernel with `-kernel`, under no
/// varstore of ours, for every build whose executable `-bios` can be given: a raw flash
/// executable or a `memory` image. (A qcow2 flash image is no BIOS ROM to QEMU, and a `kernel`
/// or `igvm` mapping is no firmware image at all.)
fn as_bios_variants(descriptor: &Descriptor) -> Vec<Variant> {
    let loadable = match &descriptor.mapping {
        Mapping::Flash(f) => f.executable.format == ImageFormat::Raw,
        Mapping::Memory { .. } => true,
        Mapping::Kernel { .. } | Mapping::Igvm { .. } => false,
    };
    if !loadable {
        return Vec::new();
    }
    Check::AsBios
        .tweaks()
        .iter()
        .map(|&tweak| Variant {
            tweak,
            ..Variant::new(Vars::Builtin, Payload::Unsigned)
        })
        .collect()
}

/// Whether the descriptor has a varstore template of its own (split flash).
fn has_template(descriptor: &Descriptor) -> bool {
    matches!(&descriptor.mapping,
        Mapping::Flash(f) if f.mode == FlashMode::Split && f.nvram_template.is_some())
}

/// The distro chains a build that ships with keys enrolled is booted with, under its shipped
/// varstore (with shim's `SHIM_VERBOSE` set where there is a template to set it in):
///
/// - every provisioned suite's chain as it ships;
/// - the machine's own suite's chain (else the newest) with its kernel unsigned, and with it
///   signed only by the run's test key;
/// - across releases, where there is a template (without shim's verbose lines an SBAT
///   revocation cannot be told from a bad signature): the oldest suite's shim with the newest
///   suite's grub, and the other way round.
///
/// Without chains, the machine's own suite's three variants, which admission then skips with
/// the reason.
pub fn chain_variants(
    descriptor: &Descriptor,
    chains: &Result<Vec<DistroChain>, String>,
    host: Suite,
) -> Vec<Variant> {
    if !descriptor.has(&Feature::EnrolledKeys) {
        return Vec::new();
    }
    let vars = if has_template(descriptor) {
        Vars::ShimVerbose
    } else {
        Vars::Shipped
    };
    let suites: Vec<Suite> = match chains {
        Ok(chains) if !chains.is_empty() => chains.iter().map(|c| c.suite).collect(),
        _ => vec![host],
    };
    let primary = if suites.contains(&host) {
        host
    } else {
        *suites.last().expect("suites is never empty")
    };
    let mut out: Vec<Variant> = suites
        .iter()
        .map(|s| Variant::chain(vars, Chain::of(*s, ChainKernel::AsShipped)))
        .collect();
    for kernel in [ChainKernel::Unsigned, ChainKernel::TestSigned] {
        out.push(Variant::chain(vars, Chain::of(primary, kernel)));
    }
    if let (Some(&oldest), Some(&newest), true) =
        (suites.first(), suites.last(), vars == Vars::ShimVerbose)
    {
        if oldest != newest {
            for (shim, grub) in [(oldest, newest), (newest, oldest)] {
                out.push(Variant::chain(
                    vars,
                    Chain {
                        shim,
                        grub,
                        kernel: ChainKernel::AsShipped,
                    },
                ));
            }
        }
    }
    out
}

/// The ESP a distro-chain variant boots, from its suites' chains; None where a suite was not
/// provisioned (admission skips such a cell).
pub fn chain_esp(
    variant: Variant,
    chains: &Result<Vec<DistroChain>, String>,
    _layout: &Layout,
) -> Option<Artifact> {
    let chain = variant.chain?;
    let chains = chains.as_ref().ok()?;
    let of = |suite: Suite| chain_of(chains, suite);
    let (shim, grub) = (of(chain.shim)?, of(chain.grub)?);
    Some(Artifact::ChainEsp {
        chain,
        shim: shim.shim.path.clone(),
        grub: grub.grub.path.clone(),
        kernel: grub.kernel.path.clone(),
    })
}

/// Why shim's default SBAT level (its `.sbatlevel`) revokes the grub of a distro-chain
/// variant: one text per grub entry below it; empty when it does not (or for other cells).
pub fn sbat_revocations(
    variant: Variant,
    chains: &Result<Vec<DistroChain>, String>,
) -> Vec<String> {
    let (Some(chain), Ok(chains)) = (variant.chain, chains) else {
        return Vec::new();
    };
    let of = |suite: Suite| chain_of(chains, suite);
    match (of(chain.shim), of(chain.grub)) {
        (Some(shim), Some(grub)) => shim
            .shim_level
            .as_ref()
            .map(|level| level.revokes(&grub.grub_sbat))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// One binary of a distro chain a cell boots, for its report: which, from which suite and
/// package, and its sha256.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PayloadPart {
    /// `shim`, `grub` or `kernel`.
    pub role: String,
    pub suite: Suite,
    /// `shim-signed 1.51~1+deb12u1+16.1-2~deb12u1`.
    pub package: String,
    pub sha256: String,
}

/// The shim, grub and kernel a distro-chain variant boots; empty for other cells and for
/// suites that were not provisioned. The kernel is the one as shipped (an unsigned or
/// test-signed one is made from it).
pub fn chain_parts(
    variant: Variant,
    chains: &Result<Vec<DistroChain>, String>,
) -> Vec<PayloadPart> {
    let (Some(chain), Ok(chains)) = (variant.chain, chains) else {
        return Vec::new();
    };
    let of = |suite: Suite| chain_of(chains, suite);
    let part =
        |role: &str, suite: Suite, pick: fn(&DistroChain) -> &crate::discover::chain::Component| {
            of(suite).map(|c| {
                let component = pick(c);
                PayloadPart {
                    role: role.into(),
                    suite,
                    package: component.package.clone(),
                    sha256: component.sha256.clone(),
                }
            })
        };
    [
        part("shim", chain.shim, |c| &c.shim),
        part("grub", chain.grub, |c| &c.grub),
        part("kernel", chain.grub, |c| &c.kernel),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The provisioned chain of `suite`.
fn chain_of(chains: &[DistroChain], suite: Suite) -> Option<&DistroChain> {
    chains.iter().find(|c| c.suite == suite)
}
