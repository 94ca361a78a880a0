//! A check's rules: when a rule applies to a cell ([`Condition`] over a [`Subject`]) and what it
//! expects ([`Expectation`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::discover::descriptor::{Descriptor, Feature};
use crate::discover::qemu::Version;
use crate::discover::release::Edk2Release;
use crate::matrix::{ChainKernel, Outcome, Payload, Profile, Tweak, Variant, Vars};

use super::{QemuRange, ReleaseRange};

/// One outcome, or several that are all acceptable (`"refused"`, `["verified", "legacy-silent"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcomes(pub Vec<Outcome>);

impl Outcomes {
    pub fn one(outcome: Outcome) -> Outcomes {
        Outcomes(vec![outcome])
    }

    pub fn admits(&self, outcome: Outcome) -> bool {
        self.0.contains(&outcome)
    }
}

impl fmt::Display for Outcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|o| o.as_str()).collect();
        f.write_str(&names.join("|"))
    }
}

impl Serialize for Outcomes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Outcomes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(Outcome),
            Many(Vec<Outcome>),
        }
        let list = match OneOrMany::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected an outcome or a list of outcomes (runs, refused, executed, \
                 not-executed, verified, legacy-warned, legacy-silent, booted)",
            )
        })? {
            OneOrMany::One(o) => vec![o],
            OneOrMany::Many(v) => v,
        };
        if list.is_empty() {
            return Err(serde::de::Error::custom(
                "an empty list of outcomes admits nothing",
            ));
        }
        Ok(Outcomes(list))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// What happens to the payload (probe, option ROM or kernel): one outcome, or a list of
    /// acceptable ones.
    pub payload: Outcomes,
    /// What the guest must report for Secure Boot when the payload runs (the probe's
    /// `SecureBoot` variable, or the kernel's `secureboot:` line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_mode: Option<u8>,
}

/// `"any"` or one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pick<T> {
    One(T),
    Any(AnyWord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnyWord {
    Any,
}

impl<T: PartialEq> Pick<T> {
    fn admits(&self, value: &T) -> bool {
        match self {
            Pick::Any(_) => true,
            Pick::One(v) => v == value,
        }
    }
}

impl<T> Pick<T> {
    /// Whether the rule leaves this field open (`any`, or absent).
    fn is_any(&self) -> bool {
        matches!(self, Pick::Any(_))
    }
}

impl<T> Default for Pick<T> {
    fn default() -> Self {
        Pick::Any(AnyWord::Any)
    }
}

/// What a rule is matched against: one cell, seen through its firmware.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub descriptor: &'a Descriptor,
    /// The firmware's edk2 release, when it can be told (package version).
    pub edk2: Option<Edk2Release>,
    pub qemu: Version,
    pub variant: Variant,
    pub sev: bool,
    pub profile: Profile,
    /// distro-chain: shim's default SBAT level revokes the chain's grub.
    pub sbat_revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The profile the rule belongs to; absent: every profile.
    #[serde(default)]
    pub profile: Pick<Profile>,
    /// Feature names the descriptor must have; `!name` means it must not have it.
    #[serde(default)]
    pub features: Vec<String>,
    /// The edk2 releases the rule covers; a firmware of unknown release matches no range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edk2: Option<ReleaseRange>,
    /// The QEMU versions the rule covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu: Option<QemuRange>,
    #[serde(default)]
    pub vars: Pick<Vars>,
    #[serde(default)]
    pub payload: Pick<Payload>,
    #[serde(default)]
    pub tweak: Pick<Tweak>,
    #[serde(default)]
    pub sev: Pick<bool>,
    /// distro-chain: the kernel grub boots (as shipped, unsigned, test-signed).
    #[serde(default)]
    pub chain_kernel: Pick<ChainKernel>,
    /// distro-chain: shim and grub from different suites.
    #[serde(default)]
    pub cross_release: Pick<bool>,
    /// distro-chain: shim's default SBAT level revokes grub's generation.
    #[serde(default)]
    pub sbat_revoked: Pick<bool>,
}

impl Condition {
    pub fn matches(&self, s: &Subject) -> bool {
        let features_ok = self.features.iter().all(|f| match f.strip_prefix('!') {
            Some(absent) => !s.descriptor.has(&Feature::parse(absent)),
            None => s.descriptor.has(&Feature::parse(f)),
        });
        let edk2_ok = match (&self.edk2, s.edk2) {
            (None, _) => true,
            (Some(range), Some(release)) => range.contains(release),
            (Some(_), None) => false,
        };
        features_ok
            && edk2_ok
            && self.qemu.is_none_or(|range| range.contains(s.qemu))
            && self.profile.admits(&s.profile)
            && self.vars.admits(&s.variant.vars)
            && self.payload.admits(&s.variant.payload)
            && self.tweak.admits(&s.variant.tweak)
            && self.sev.admits(&s.sev)
            && self.chain_matches(s)
    }

    /// The chain conditions: any rule without them matches every cell; a rule with one
    /// matches only distro-chain cells.
    fn chain_matches(&self, s: &Subject) -> bool {
        match s.variant.chain {
            None => {
                self.chain_kernel.is_any()
                    && self.cross_release.is_any()
                    && self.sbat_revoked.is_any()
            }
            Some(chain) => {
                self.chain_kernel.admits(&chain.kernel)
                    && self.cross_release.admits(&chain.is_cross_release())
                    && self.sbat_revoked.admits(&s.sbat_revoked)
            }
        }
    }
}

/// One rule of a check's scenario file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub when: Condition,
    pub expect: Expectation,
    /// Why the firmware must behave so.
    pub because: String,
}
