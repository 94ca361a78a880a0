//! The matrix's vocabulary: the checks, the variants a cell is tried with (varstore, payload,
//! tweak), the policy profile, and the outcomes a firmware can show. Every stage speaks it.

use std::fmt;

use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray, VariantNames};

pub mod chain;
pub use chain::{Chain, ChainKernel, Suite};
pub mod confidential;
pub use confidential::Confidential;

/// A word that is read from text (the command line): `secure-boot`, `strict`, `kvm`. Like every
/// enum of the vocabulary, its spelling is written once, as strum's `serialize_all` next to
/// serde's `rename_all` on the enum (a test per enum checks that the two agree); strum derives
/// `as_str` (through `IntoStaticStr`), `Display` and `FromStr` from it.
pub trait Word: VariantNames + 'static {
    /// What one is called in an error message: `check`, `profile`.
    const KIND: &'static str;
}

/// The error for a text that is none of `T`'s words: it names the kind, the text and the words
/// allowed (`unknown check "x" (expected secure-boot, option-rom, kernel-boot, distro-chain, no-shell or key-health)`).
pub fn unknown_word<T: Word>(text: &str) -> String {
    let expected = match T::VARIANTS {
        [rest @ .., last] if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        all => all.join(""),
    };
    format!("unknown {} {text:?} (expected {expected})", T::KIND)
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    IntoStaticStr,
    Display,
    EnumString,
    VariantArray,
    VariantNames,
)]
#[serde(rename_all = "kebab-case")]
#[strum(
    serialize_all = "kebab-case",
    parse_err_ty = String,
    parse_err_fn = unknown_word::<Self>
)]
pub enum Check {
    /// A probe on an ESP, signed with the test db key or unsigned.
    SecureBoot,
    /// A driver in a PCI option ROM on an emulated NIC, signed or unsigned.
    OptionRom,
    /// A Linux kernel given with `-kernel`, signed with the test db key or unsigned.
    KernelBoot,
    /// The distro chain (shim, grub, kernel) under the varstore the firmware ships.
    DistroChain,
    /// No bootable media under the enforcing varstore the firmware ships: the UEFI shell must
    /// not be reachable.
    NoShell,
    /// The varstore's Secure Boot keys, read without a boot: the 2023 Microsoft CAs, a real
    /// dbx, no signer class left with expired CAs only.
    KeyHealth,
    /// The executable started the way a runtime that ignores the descriptor starts it:
    /// `-bios FILE`, no varstore, no SMM settings; then the unsigned probe, or `-kernel`.
    AsBios,
}

impl Word for Check {
    const KIND: &'static str = "check";
}

impl Check {
    pub const ALL: &'static [Check] = <Check as VariantArray>::VARIANTS;

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The checks that boot a guest (all but key-health, which reads a varstore).
    pub fn booting() -> impl Iterator<Item = Check> {
        Check::ALL
            .iter()
            .copied()
            .filter(|c| *c != Check::KeyHealth)
    }

    /// The outcomes a rule or a deviation of this check may name.
    pub fn outcomes(self) -> &'static [Outcome] {
        match self {
            Check::SecureBoot => &[Outcome::Runs, Outcome::Refused],
            Check::OptionRom => &[Outcome::Executed, Outcome::NotExecuted],
            Check::KernelBoot => &[
                Outcome::Refused,
                Outcome::Verified,
                Outcome::LegacyWarned,
                Outcome::LegacySilent,
                Outcome::Booted,
            ],
            Check::DistroChain => &[
                Outcome::ChainBooted,
                Outcome::ShimRefused,
                Outcome::GrubRefused,
                Outcome::KernelRefused,
                Outcome::SbatRevoked,
            ],
            Check::NoShell => &[
                Outcome::ShellRefused,
                Outcome::ShellAbsent,
                Outcome::ShellReached,
            ],
            Check::KeyHealth => &[Outcome::KeysCurrent, Outcome::KeysOutdated],
            Check::AsBios => &[
                Outcome::QemuRefused,
                Outcome::NoBoot,
                Outcome::Refused,
                Outcome::Booted,
            ],
        }
    }

    /// The tweaks a cell of this check is tried with.
    pub fn tweaks(self) -> &'static [Tweak] {
        match self {
            Check::KernelBoot => &[Tweak::None, Tweak::NoLegacyLoader, Tweak::Shim],
            Check::AsBios => &[Tweak::None, Tweak::Kernel],
            _ => &[Tweak::None],
        }
    }
}

/// Which policy the expectations hold the firmware to.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    IntoStaticStr,
    Display,
    EnumString,
    VariantArray,
    VariantNames,
    Default,
)]
#[serde(rename_all = "kebab-case")]
#[strum(
    serialize_all = "kebab-case",
    parse_err_ty = String,
    parse_err_fn = unknown_word::<Self>
)]
pub enum Profile {
    /// No unsigned code runs under enforcing Secure Boot: no option ROM, no `-kernel` bypass.
    #[default]
    Strict,
    /// What edk2 documents for the firmware's release.
    Upstream,
}

impl Word for Profile {
    const KIND: &'static str = "profile";
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Which variable store a cell boots with.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    IntoStaticStr,
    Display,
    VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Vars {
    /// A private copy of the descriptor's template, as shipped.
    Shipped,
    /// The template with our own PK, KEK and db enrolled and Secure Boot turned on.
    OwnKeys,
    /// The shipped (already enrolled) template with our db certificate added.
    DbAdded,
    /// The shipped template with shim's own `SHIM_VERBOSE` variable set, keys untouched: shim
    /// then says why it refuses an image (an SBAT revocation or a signature).
    ShimVerbose,
    /// No varstore of ours: what `-bios` gives the firmware (nothing, or the variables built
    /// into the image).
    Builtin,
}

impl Vars {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Which probe image the cell boots.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    IntoStaticStr,
    Display,
    VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Payload {
    /// Signed with the run's test db key.
    Signed,
    Unsigned,
}

impl Payload {
    pub const ALL: &'static [Payload] = <Payload as VariantArray>::VARIANTS;

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A change to how the payload is handed to the firmware (kernel-boot cells).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    IntoStaticStr,
    Display,
    VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Tweak {
    None,
    /// `-fw_cfg name=opt/org.tianocore/EnableLegacyLoader,string=no` (edk2 >= stable202502).
    NoLegacyLoader,
    /// `-shim FILE` (QEMU >= 10.0): the firmware loads shim, shim verifies the kernel.
    Shim,
    /// as-bios: the payload is the kernel, given with `-kernel`, instead of the probe on an ESP.
    Kernel,
}

impl Tweak {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variant {
    pub vars: Vars,
    pub payload: Payload,
    pub tweak: Tweak,
    /// distro-chain: the chain it boots (its payload is then the chain's, not ours).
    pub chain: Option<Chain>,
}

impl Variant {
    pub fn new(vars: Vars, payload: Payload) -> Variant {
        Variant {
            vars,
            payload,
            tweak: Tweak::None,
            chain: None,
        }
    }

    /// A distro-chain variant: `chain` under `vars` (its payload is the chain's kernel).
    pub fn chain(vars: Vars, chain: Chain) -> Variant {
        Variant {
            chain: Some(chain),
            ..Variant::new(vars, Payload::Signed)
        }
    }

    /// The variant's part of a cell id: `own-keys-vars-unsigned-no-legacy-loader`, or for a
    /// distro chain `shim-verbose-vars-bookworm-as-shipped`.
    pub fn id_part(&self) -> String {
        if let Some(chain) = self.chain {
            return format!("{}-vars-{chain}", self.vars.as_str());
        }
        match self.tweak {
            Tweak::None => format!("{}-vars-{}", self.vars.as_str(), self.payload.as_str()),
            t => format!(
                "{}-vars-{}-{}",
                self.vars.as_str(),
                self.payload.as_str(),
                t.as_str()
            ),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(chain) = self.chain {
            return write!(f, "{}-vars/{chain}", self.vars.as_str());
        }
        write!(f, "{}-vars/{}", self.vars.as_str(), self.payload.as_str())?;
        match self.tweak {
            Tweak::None => Ok(()),
            t => write!(f, "/{}", t.as_str()),
        }
    }
}

/// What the firmware did with the payload. Each check has its own set ([`Check::outcomes`]).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    IntoStaticStr,
    Display,
    VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Outcome {
    /// secure-boot: the probe ran.
    Runs,
    /// secure-boot: the probe was refused; kernel-boot: the kernel never started.
    Refused,
    /// option-rom: the ROM's driver ran.
    Executed,
    /// option-rom: the probe ran and the ROM's driver had not.
    NotExecuted,
    /// kernel-boot: Secure Boot on, a kernel signed with a db key booted, no legacy warning.
    Verified,
    /// kernel-boot: booted through the legacy loader, which said so.
    LegacyWarned,
    /// kernel-boot: Secure Boot on, a kernel signed by no db key booted, and the firmware said
    /// nothing: the silent legacy-loader fallback.
    LegacySilent,
    /// kernel-boot: booted with Secure Boot off in the guest (nothing to verify against);
    /// as-bios: the payload (probe or kernel) started, with the SecureBoot value it read.
    Booted,
    /// as-bios: QEMU would not load the firmware as `-bios` (its message is the evidence).
    QemuRefused,
    /// kernel-boot: the kernel started, but how the firmware loaded it or the Secure Boot state
    /// it saw could not be told (it said `could not be determined`, or panicked first). No
    /// rule may expect it: it fails a rule that expects a refusal, and is an error otherwise.
    Started,
    /// The boot manager gave up without ever refusing or starting the payload: it was never
    /// handed over. No rule may expect it; it is always an error.
    NothingBootable,
    /// The firmware never reached its boot manager: its debug console showed firmware lines,
    /// none from the boot manager, the serial console nothing, and the guest ran to the
    /// deadline or reset. No rule may expect it: it fails where the descriptor's machine list
    /// promises the cell's machine type, and is skipped where it does not. as-bios: no payload
    /// line within the check's bound, which rules may expect.
    NoBoot,
    /// distro-chain: the kernel said `secureboot: Secure boot enabled` (or disabled).
    ChainBooted,
    /// distro-chain: the firmware refused shim.
    ShimRefused,
    /// distro-chain: shim refused grub's signature.
    GrubRefused,
    /// distro-chain: grub (through shim's verifier) refused the kernel.
    KernelRefused,
    /// distro-chain: shim's SBAT check refused a component.
    SbatRevoked,
    /// no-shell: the boot manager refused the built-in shell's boot option.
    ShellRefused,
    /// no-shell: the boot manager gave up without a shell option to try.
    ShellAbsent,
    /// no-shell: the UEFI shell started.
    ShellReached,
    /// key-health: every key-health rule the profile judges passed.
    KeysCurrent,
    /// key-health: a key-health rule failed.
    KeysOutdated,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The test every spelled enum runs: strum's word for each variant is serde's, and `Display`
/// and (for a [`Word`]) `FromStr` use the same, so the two spellings cannot drift apart.
#[cfg(test)]
pub(crate) mod spelling {
    use std::fmt::{Debug, Display};
    use std::str::FromStr;

    use serde::Serialize;
    use strum::VariantArray;

    /// Every variant's strum word is its serde string and its `Display`; returns the words.
    pub fn serde_agrees<T>() -> Vec<&'static str>
    where
        T: VariantArray + Serialize + Display + Copy + Into<&'static str>,
    {
        T::VARIANTS
            .iter()
            .map(|&v| {
                let word: &'static str = v.into();
                assert_eq!(
                    serde_json::to_value(v).unwrap(),
                    word,
                    "serde and strum differ"
                );
                assert_eq!(v.to_string(), word, "Display and strum differ");
                word
            })
            .collect()
    }

    /// [`serde_agrees`], and every word parses back to its variant.
    pub fn parses_back<T>() -> Vec<&'static str>
    where
        T: VariantArray + Serialize + Display + Copy + Into<&'static str>,
        T: FromStr<Err = String> + PartialEq + Debug,
    {
        let words = serde_agrees::<T>();
        for (word, v) in words.iter().zip(T::VARIANTS) {
            assert_eq!(word.parse::<T>().as_ref(), Ok(v));
        }
        words
    }
}

#[cfg(test)]
mod tests {
    use super::spelling::{parses_back, serde_agrees};
    use super::*;

    #[test]
    fn every_word_is_spelled_once() {
        assert_eq!(
            parses_back::<Check>(),
            [
                "secure-boot",
                "option-rom",
                "kernel-boot",
                "distro-chain",
                "no-shell",
                "key-health",
                "as-bios"
            ]
        );
        assert_eq!(parses_back::<Profile>(), ["strict", "upstream"]);
        assert_eq!(
            serde_agrees::<Vars>(),
            ["shipped", "own-keys", "db-added", "shim-verbose", "builtin"]
        );
        assert_eq!(serde_agrees::<Payload>(), ["signed", "unsigned"]);
        assert_eq!(
            serde_agrees::<Tweak>(),
            ["none", "no-legacy-loader", "shim", "kernel"]
        );
        assert_eq!(
            serde_agrees::<Outcome>(),
            [
                "runs",
                "refused",
                "executed",
                "not-executed",
                "verified",
                "legacy-warned",
                "legacy-silent",
                "booted",
                "qemu-refused",
                "started",
                "nothing-bootable",
                "no-boot",
                "chain-booted",
                "shim-refused",
                "grub-refused",
                "kernel-refused",
                "sbat-revoked",
                "shell-refused",
                "shell-absent",
                "shell-reached",
                "keys-current",
                "keys-outdated"
            ]
        );
    }

    #[test]
    fn as_str_is_the_word() {
        assert_eq!(Check::OptionRom.as_str(), "option-rom");
        assert_eq!(Profile::Upstream.as_str(), "upstream");
        assert_eq!(Vars::OwnKeys.as_str(), "own-keys");
        assert_eq!(Payload::Unsigned.as_str(), "unsigned");
        assert_eq!(Tweak::NoLegacyLoader.as_str(), "no-legacy-loader");
        assert_eq!(Outcome::NothingBootable.as_str(), "nothing-bootable");
    }

    #[test]
    fn serde_reads_the_same_words() {
        let read: Vec<Outcome> =
            serde_json::from_str(r#"["not-executed", "legacy-silent"]"#).unwrap();
        assert_eq!(read, [Outcome::NotExecuted, Outcome::LegacySilent]);
        let profile: Profile = serde_json::from_str(r#""upstream""#).unwrap();
        assert_eq!(profile, Profile::Upstream);
    }

    #[test]
    fn an_unknown_word_lists_the_allowed_ones() {
        assert_eq!(
            "secureboot".parse::<Check>().unwrap_err(),
            r#"unknown check "secureboot" (expected secure-boot, option-rom, kernel-boot, distro-chain, no-shell, key-health or as-bios)"#
        );
        assert_eq!(
            "lax".parse::<Profile>().unwrap_err(),
            r#"unknown profile "lax" (expected strict or upstream)"#
        );
        // Words are matched exactly, as written.
        assert!("Strict".parse::<Profile>().is_err());
    }

    #[test]
    fn variant_ids_and_names_use_the_words() {
        let v = Variant {
            tweak: Tweak::NoLegacyLoader,
            ..Variant::new(Vars::OwnKeys, Payload::Unsigned)
        };
        assert_eq!(v.id_part(), "own-keys-vars-unsigned-no-legacy-loader");
        assert_eq!(v.to_string(), "own-keys-vars/unsigned/no-legacy-loader");
        let plain = Variant::new(Vars::Shipped, Payload::Signed);
        assert_eq!(plain.id_part(), "shipped-vars-signed");
        assert_eq!(plain.to_string(), "shipped-vars/signed");
    }
}
