//! The matrix's vocabulary: the checks, the variants a cell is tried with (varstore, payload,
//! tweak), the policy profile, and the outcomes a firmware can show. Every stage speaks it.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// A probe on an ESP, signed with the test db key or unsigned.
    SecureBoot,
    /// A driver in a PCI option ROM on an emulated NIC, signed or unsigned.
    OptionRom,
    /// A Linux kernel given with `-kernel`, signed with the test db key or unsigned.
    KernelBoot,
}

impl Check {
    pub const ALL: &'static [Check] = &[Check::SecureBoot, Check::OptionRom, Check::KernelBoot];

    pub fn as_str(self) -> &'static str {
        match self {
            Check::SecureBoot => "secure-boot",
            Check::OptionRom => "option-rom",
            Check::KernelBoot => "kernel-boot",
        }
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
        }
    }

    /// The tweaks a cell of this check is tried with.
    pub fn tweaks(self) -> &'static [Tweak] {
        match self {
            Check::KernelBoot => &[Tweak::None, Tweak::NoLegacyLoader, Tweak::Shim],
            _ => &[Tweak::None],
        }
    }
}

impl std::str::FromStr for Check {
    type Err = String;
    fn from_str(s: &str) -> Result<Check, String> {
        Check::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown check {s:?} (secure-boot, option-rom, kernel-boot)"))
    }
}

/// Which policy the expectations hold the firmware to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// No unsigned code runs under enforcing Secure Boot: no option ROM, no `-kernel` bypass.
    #[default]
    Strict,
    /// What edk2 documents for the firmware's release.
    Upstream,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Strict => "strict",
            Profile::Upstream => "upstream",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Profile, String> {
        match s {
            "strict" => Ok(Profile::Strict),
            "upstream" => Ok(Profile::Upstream),
            other => Err(format!("unknown profile {other:?} (strict or upstream)")),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which variable store a cell boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vars {
    /// A private copy of the descriptor's template, as shipped.
    Shipped,
    /// The template with our own PK, KEK and db enrolled and Secure Boot turned on.
    OwnKeys,
    /// The shipped (already enrolled) template with our db certificate added.
    DbAdded,
}

impl Vars {
    pub fn as_str(self) -> &'static str {
        match self {
            Vars::Shipped => "shipped",
            Vars::OwnKeys => "own-keys",
            Vars::DbAdded => "db-added",
        }
    }
}

/// Which probe image the cell boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Payload {
    /// Signed with the run's test db key.
    Signed,
    Unsigned,
}

impl Payload {
    pub const ALL: [Payload; 2] = [Payload::Signed, Payload::Unsigned];

    pub fn as_str(self) -> &'static str {
        match self {
            Payload::Signed => "signed",
            Payload::Unsigned => "unsigned",
        }
    }
}

/// A change to how the payload is handed to the firmware (kernel-boot cells).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tweak {
    None,
    /// `-fw_cfg name=opt/org.tianocore/EnableLegacyLoader,string=no` (edk2 >= stable202502).
    NoLegacyLoader,
    /// `-shim FILE` (QEMU >= 10.0): the firmware loads shim, shim verifies the kernel.
    Shim,
}

impl Tweak {
    pub fn as_str(self) -> &'static str {
        match self {
            Tweak::None => "none",
            Tweak::NoLegacyLoader => "no-legacy-loader",
            Tweak::Shim => "shim",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variant {
    pub vars: Vars,
    pub payload: Payload,
    pub tweak: Tweak,
}

impl Variant {
    pub fn new(vars: Vars, payload: Payload) -> Variant {
        Variant {
            vars,
            payload,
            tweak: Tweak::None,
        }
    }

    /// The variant's part of a cell id: `own-keys-vars-unsigned-no-legacy-loader`.
    pub fn id_part(&self) -> String {
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
        write!(f, "{}-vars/{}", self.vars.as_str(), self.payload.as_str())?;
        match self.tweak {
            Tweak::None => Ok(()),
            t => write!(f, "/{}", t.as_str()),
        }
    }
}

/// What the firmware did with the payload. Each check has its own set ([`Check::outcomes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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
    /// kernel-boot: booted with Secure Boot off in the guest (nothing to verify against).
    Booted,
    /// kernel-boot: the kernel started, but how the firmware loaded it or the Secure Boot state
    /// it saw could not be told (it said `could not be determined`, or panicked first). No
    /// rule may expect it: it fails a rule that expects a refusal, and is an error otherwise.
    Started,
    /// The boot manager gave up without ever refusing or starting the payload: it was never
    /// handed over. No rule may expect it; it is always an error.
    NothingBootable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Runs => "runs",
            Outcome::Refused => "refused",
            Outcome::Executed => "executed",
            Outcome::NotExecuted => "not-executed",
            Outcome::Verified => "verified",
            Outcome::LegacyWarned => "legacy-warned",
            Outcome::LegacySilent => "legacy-silent",
            Outcome::Booted => "booted",
            Outcome::Started => "started",
            Outcome::NothingBootable => "nothing-bootable",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
