//! The distro chain a `distro-chain` cell boots: shim, then grub, then the kernel, each from a
//! Debian suite's signed packages.

use std::fmt;

use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray, VariantNames};

use super::{unknown_word, Word};

/// A Debian suite whose signed boot chain (shim-signed, grub-efi-amd64-signed, the signed
/// kernel) bootmatrix can boot, oldest first.
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
pub enum Suite {
    Bullseye,
    Bookworm,
    Trixie,
    Forky,
    Sid,
}

impl Word for Suite {
    const KIND: &'static str = "Debian suite";
}

impl Suite {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The kernel grub is told to boot.
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
pub enum ChainKernel {
    /// As the suite ships it, signed by Debian.
    AsShipped,
    /// Its signature stripped.
    Unsigned,
    /// Signed only by the run's test key, which neither db nor shim's vendor certificate holds.
    TestSigned,
}

impl ChainKernel {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Whose shim and whose grub (and that grub's suite's kernel) a cell boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Chain {
    pub shim: Suite,
    pub grub: Suite,
    pub kernel: ChainKernel,
}

impl Chain {
    /// One suite's own chain.
    pub fn of(suite: Suite, kernel: ChainKernel) -> Chain {
        Chain {
            shim: suite,
            grub: suite,
            kernel,
        }
    }

    /// shim from one suite, grub (and kernel) from another.
    pub fn is_cross_release(&self) -> bool {
        self.shim != self.grub
    }
}

/// `bookworm-as-shipped`, `bookworm-unsigned-kernel`, `shim-bullseye-grub-trixie`.
impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_cross_release() {
            write!(f, "shim-{}-grub-{}", self.shim, self.grub)?;
            match self.kernel {
                ChainKernel::AsShipped => Ok(()),
                k => write!(f, "-{k}-kernel"),
            }
        } else {
            match self.kernel {
                ChainKernel::AsShipped => write!(f, "{}-as-shipped", self.shim),
                k => write!(f, "{}-{k}-kernel", self.shim),
            }
        }
    }
}

/// Reads back what [`Chain`]'s Display writes.
impl std::str::FromStr for Chain {
    type Err = String;

    fn from_str(text: &str) -> Result<Chain, String> {
        let bad = || format!("{text:?} is no distro chain (e.g. bookworm-as-shipped)");
        let (rest, kernel) = if let Some(r) = text.strip_suffix("-unsigned-kernel") {
            (r, ChainKernel::Unsigned)
        } else if let Some(r) = text.strip_suffix("-test-signed-kernel") {
            (r, ChainKernel::TestSigned)
        } else if let Some(r) = text.strip_suffix("-as-shipped") {
            (r, ChainKernel::AsShipped)
        } else {
            (text, ChainKernel::AsShipped)
        };
        if let Some(pair) = rest.strip_prefix("shim-") {
            let (shim, grub) = pair.split_once("-grub-").ok_or_else(bad)?;
            let chain = Chain {
                shim: shim.parse()?,
                grub: grub.parse()?,
                kernel,
            };
            return if chain.is_cross_release() && !text.ends_with("-as-shipped") {
                Ok(chain)
            } else {
                Err(bad())
            };
        }
        if rest == text {
            return Err(bad());
        }
        Ok(Chain::of(rest.parse()?, kernel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_named_by_their_suites_and_kernel() {
        let own = Chain::of(Suite::Bookworm, ChainKernel::AsShipped);
        assert_eq!(own.to_string(), "bookworm-as-shipped");
        assert!(!own.is_cross_release());
        assert_eq!(
            Chain::of(Suite::Bookworm, ChainKernel::TestSigned).to_string(),
            "bookworm-test-signed-kernel"
        );
        let cross = Chain {
            shim: Suite::Bullseye,
            grub: Suite::Trixie,
            kernel: ChainKernel::AsShipped,
        };
        assert_eq!(cross.to_string(), "shim-bullseye-grub-trixie");
        assert!(cross.is_cross_release());
        assert_eq!("sid".parse::<Suite>(), Ok(Suite::Sid));
        assert!("buster"
            .parse::<Suite>()
            .unwrap_err()
            .contains("bullseye, bookworm"));
        assert!(Suite::Bullseye < Suite::Sid);
    }

    #[test]
    fn chain_names_read_back() {
        for suite in <Suite as VariantArray>::VARIANTS {
            for kernel in <ChainKernel as VariantArray>::VARIANTS {
                let c = Chain::of(*suite, *kernel);
                assert_eq!(c.to_string().parse::<Chain>(), Ok(c));
            }
        }
        let cross = Chain {
            shim: Suite::Sid,
            grub: Suite::Bullseye,
            kernel: ChainKernel::Unsigned,
        };
        assert_eq!(cross.to_string().parse::<Chain>(), Ok(cross));
        for bad in [
            "bookworm",
            "shim-sid-grub-sid",
            "shim-sid",
            "x-as-shipped",
            "",
        ] {
            assert!(bad.parse::<Chain>().is_err(), "{bad}");
        }
    }
}
