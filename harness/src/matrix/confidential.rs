//! The confidential-guest axis of the matrix: how a cell's guest is isolated from the host.
//! `Off` and `Sev` are the cells bootmatrix always had (ids `sev-off`, `sev-on`); SEV-ES,
//! SEV-SNP, TDX and IGVM are planned from the descriptor's features and mapping.

use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray, VariantNames};

use super::{unknown_word, Word};

/// A cell's confidential-guest mode. Its word is the cell id's third part.
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
pub enum Confidential {
    /// A plain guest.
    #[serde(rename = "sev-off")]
    #[strum(serialize = "sev-off")]
    Off,
    /// AMD SEV: `-object sev-guest`, policy 0x1 (memory encrypted).
    #[serde(rename = "sev-on")]
    #[strum(serialize = "sev-on")]
    Sev,
    /// AMD SEV-ES: `-object sev-guest` with the ES policy bit (register state encrypted too).
    SevEs,
    /// AMD SEV-SNP: `-object sev-snp-guest`, the firmware through `-bios`.
    SevSnp,
    /// Intel TDX: `-object tdx-guest`, the firmware through `-bios`.
    Tdx,
    /// An IGVM file (`-object igvm-cfg`) launched as a SEV-SNP guest: the IGVM file carries
    /// the firmware (COCONUT-SVSM with OVMF).
    Igvm,
}

impl Word for Confidential {
    const KIND: &'static str = "confidential-guest mode";
}

impl Confidential {
    pub const ALL: &'static [Confidential] = <Confidential as VariantArray>::VARIANTS;

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the guest is confidential at all.
    pub fn is_on(self) -> bool {
        self != Confidential::Off
    }

    /// The name people know the mode by (`SEV`, `SEV-SNP`), for reasons.
    pub fn name(self) -> &'static str {
        match self {
            Confidential::Off => "no confidential guest",
            Confidential::Sev => "SEV",
            Confidential::SevEs => "SEV-ES",
            Confidential::SevSnp => "SEV-SNP",
            Confidential::Tdx => "TDX",
            Confidential::Igvm => "SEV-SNP (IGVM)",
        }
    }

    /// Whether the mode is AMD's (SEV, SEV-ES, SEV-SNP, and IGVM, which launches SEV-SNP).
    pub fn is_amd(self) -> bool {
        matches!(
            self,
            Confidential::Sev | Confidential::SevEs | Confidential::SevSnp | Confidential::Igvm
        )
    }

    /// Whether the guest's register state is encrypted (SEV-ES and later, TDX): such a guest
    /// has no SMM (QEMU's amd-memory-encryption.rst: "Does not support SMM"; tdx.rst likewise).
    pub fn encrypts_registers(self) -> bool {
        !matches!(self, Confidential::Off | Confidential::Sev)
    }

    /// Whether the mode is SEV-SNP (launched from `-bios` or from an IGVM file).
    pub fn is_snp(self) -> bool {
        matches!(self, Confidential::SevSnp | Confidential::Igvm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_spelled_once_and_keep_the_old_sev_words() {
        assert_eq!(
            crate::matrix::spelling::parses_back::<Confidential>(),
            ["sev-off", "sev-on", "sev-es", "sev-snp", "tdx", "igvm"]
        );
        assert_eq!(Confidential::Off.to_string(), "sev-off");
        assert_eq!(Confidential::Sev.as_str(), "sev-on");
        assert_eq!(
            serde_json::to_value(Confidential::SevSnp).unwrap(),
            serde_json::json!("sev-snp")
        );
        assert_eq!(
            "sev".parse::<Confidential>().unwrap_err(),
            "unknown confidential-guest mode \"sev\" (expected sev-off, sev-on, sev-es, sev-snp, tdx or igvm)"
        );
    }

    #[test]
    fn what_each_mode_is() {
        let on: Vec<_> = Confidential::ALL.iter().filter(|m| m.is_on()).collect();
        assert_eq!(on.len(), 5);
        assert!(!Confidential::Tdx.is_amd());
        assert!(Confidential::Igvm.is_amd() && Confidential::Igvm.is_snp());
        assert!(!Confidential::Sev.encrypts_registers());
        assert!(Confidential::SevEs.encrypts_registers());
        assert!(Confidential::Tdx.encrypts_registers());
    }
}
