//! An edk2 release, as named by a package version or a stable tag.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An edk2 release, `2022.11` (stable202211).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edk2Release {
    pub year: u16,
    pub month: u8,
}

impl Edk2Release {
    /// `2022.11`, `stable202211` or `202211`.
    pub fn parse(text: &str) -> Option<Edk2Release> {
        let t = text
            .trim()
            .trim_start_matches("edk2-")
            .trim_start_matches("stable");
        let (year, month) = match t.split_once('.') {
            Some((y, m)) => (y, m),
            // Six ASCII digits: byte 4 is then a character boundary (other text of six bytes
            // may not have one there).
            None if t.len() == 6 && t.is_ascii() => t.split_at(4),
            None => return None,
        };
        let release = Edk2Release {
            year: year.parse().ok()?,
            month: month.parse().ok()?,
        };
        ((2000..=2999).contains(&release.year) && (1..=12).contains(&release.month))
            .then_some(release)
    }

    /// The release a package version names: Debian `2022.11-6+deb12u2`, Fedora
    /// `20230524-3.fc39`, or an `edk2-stable202502` tag.
    pub fn from_package_version(version: &str) -> Option<Edk2Release> {
        static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let re = RE.get_or_init(|| {
            regex::Regex::new(
                r"(?:^|[^0-9])(20\d{2})\.?(0[1-9]|1[0-2])(?:[^0-9]|\d{2}(?:[^0-9]|$)|$)",
            )
            .expect("valid regex")
        });
        let caps = re.captures(version)?;
        Edk2Release::parse(&format!("{}.{}", &caps[1], &caps[2]))
    }
}

impl fmt::Display for Edk2Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.year, self.month)
    }
}

impl Serialize for Edk2Release {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Edk2Release {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::discover::qemu::deserialize_text(
            d,
            Edk2Release::parse,
            "an edk2 release (expected YYYY.MM, e.g. 2025.02)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_bytes_that_are_not_six_ascii_characters_are_no_release() {
        // The fuzzer's find (FUZZ_SEED=1796194211938261348): `split_at(4)` inside a 3-byte
        // character panicked.
        assert_eq!(Edk2Release::parse("ೝ᭔"), None);
        assert_eq!(Edk2Release::parse("2022é"), None);
        assert_eq!(
            Edk2Release::parse("202211"),
            Some(Edk2Release {
                year: 2022,
                month: 11
            })
        );
    }
}
