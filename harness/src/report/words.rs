//! How a record reads back what the library only writes: the names of enums that serde writes
//! but cannot read (verdict kinds, accelerators, consoles, load paths), the matrix's kebab-case
//! names, variants, and fields that are either absent or present and null.

use serde::de::{self, DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::boot::Console;
use crate::discover::host::Accel;
use crate::judge::VerdictKind;
use crate::matrix::{Payload, Tweak, Variant, Vars};
use crate::observe::evidence::LoadPath;

/// The library's enums that serde writes by name but cannot read back: their names.
pub trait Word: Copy + 'static {
    const ALL: &'static [Self];
    fn word(self) -> &'static str;
}

impl Word for VerdictKind {
    const ALL: &'static [VerdictKind] = &VerdictKind::ALL;
    fn word(self) -> &'static str {
        self.as_str()
    }
}

impl Word for Accel {
    const ALL: &'static [Accel] = &[Accel::Kvm, Accel::Tcg];
    fn word(self) -> &'static str {
        // Exhaustive: a new accelerator does not compile until ALL names it too.
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl Word for Console {
    const ALL: &'static [Console] = &[Console::Serial, Console::Debug];
    fn word(self) -> &'static str {
        match self {
            Console::Serial | Console::Debug => self.as_str(),
        }
    }
}

impl Word for LoadPath {
    const ALL: &'static [LoadPath] = &[LoadPath::LoadImage, LoadPath::LegacyLoader];
    fn word(self) -> &'static str {
        match self {
            LoadPath::LoadImage => "load-image",
            LoadPath::LegacyLoader => "legacy-loader",
        }
    }
}

fn from_word<T: Word, E: de::Error>(text: &str) -> Result<T, E> {
    T::ALL
        .iter()
        .copied()
        .find(|t| t.word() == text)
        .ok_or_else(|| {
            let names: Vec<&str> = T::ALL.iter().map(|t| t.word()).collect();
            E::custom(format!("{text:?} is not one of {}", names.join(", ")))
        })
}

pub(super) fn word<'de, D: Deserializer<'de>, T: Word>(d: D) -> Result<T, D::Error> {
    from_word(&String::deserialize(d)?)
}

pub(super) fn optional_word<'de, D: Deserializer<'de>, T: Word>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|w| from_word(&w))
        .transpose()
}

/// A kebab-case name read as one of the matrix's enums.
pub(super) fn kebab<T: DeserializeOwned, E: de::Error>(text: &str) -> Result<T, E> {
    T::deserialize(text.into_deserializer()).map_err(|e: de::value::Error| E::custom(e))
}

pub(super) fn text<S: Serializer>(value: &Variant, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// `own-keys-vars/signed`, `own-keys-vars/unsigned/no-legacy-loader` (Variant's Display).
pub(super) fn variant<'de, D: Deserializer<'de>>(d: D) -> Result<Variant, D::Error> {
    let text = String::deserialize(d)?;
    let bad = || {
        de::Error::custom(format!(
            "{text:?} is no variant (e.g. own-keys-vars/signed)"
        ))
    };
    let parts: Vec<&str> = text.split('/').collect();
    let (vars, payload, tweak) = match parts.as_slice() {
        [vars, payload] => (vars, payload, None),
        [vars, payload, tweak] => (vars, payload, Some(tweak)),
        _ => return Err(bad()),
    };
    let vars: Vars = kebab(vars.strip_suffix("-vars").ok_or_else(bad)?)?;
    let payload: Payload = kebab(payload)?;
    let tweak: Tweak = tweak.map_or(Ok(Tweak::None), |t| kebab(t))?;
    Ok(Variant {
        vars,
        payload,
        tweak,
    })
}

/// A field that is either absent (outer None, skipped) or present and maybe null.
pub(super) fn present<S: Serializer>(
    value: &Option<Option<String>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(inner) => inner.serialize(s),
        None => s.serialize_none(),
    }
}

pub(super) fn nullable<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn json(text: &str) -> Value {
        Value::String(text.into())
    }

    /// Every name reads back as what wrote it, and the names are the ones serde writes.
    fn reads_back_what_serde_writes<T: Word + Serialize + PartialEq + std::fmt::Debug>() {
        for &t in T::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.word());
            assert_eq!(word::<_, T>(json(t.word())).unwrap(), t);
            assert_eq!(optional_word::<_, T>(json(t.word())).unwrap(), Some(t));
        }
        assert_eq!(optional_word::<_, T>(Value::Null).unwrap(), None);
    }

    #[test]
    fn names_read_back_as_serde_writes_them() {
        reads_back_what_serde_writes::<VerdictKind>();
        reads_back_what_serde_writes::<Accel>();
        reads_back_what_serde_writes::<Console>();
        reads_back_what_serde_writes::<LoadPath>();
        let err = word::<_, Accel>(json("hvf")).unwrap_err().to_string();
        assert_eq!(err, r#""hvf" is not one of kvm, tcg"#);
        assert!(word::<_, VerdictKind>(json("Pass")).is_err());
    }

    #[test]
    fn variants_read_back_with_their_tweak() {
        let read = |text: &str| variant(json(text));
        for v in [
            Variant::new(Vars::OwnKeys, Payload::Signed),
            Variant::new(Vars::DbAdded, Payload::Unsigned),
            Variant {
                tweak: Tweak::NoLegacyLoader,
                ..Variant::new(Vars::Shipped, Payload::Unsigned)
            },
            Variant {
                tweak: Tweak::Shim,
                ..Variant::new(Vars::DbAdded, Payload::Signed)
            },
        ] {
            assert_eq!(read(&v.to_string()).unwrap(), v);
        }
        for bad in [
            "own-keys/signed",
            "own-keys-vars",
            "own-keys-vars/signed/shim/x",
            "mine-vars/signed",
            "own-keys-vars/sealed",
            "own-keys-vars/signed/bios",
        ] {
            assert!(read(bad).is_err(), "{bad} read as a variant");
        }
    }

    #[test]
    fn absent_null_and_present_are_three_things() {
        assert_eq!(nullable(Value::Null).unwrap(), Some(None));
        assert_eq!(nullable(json("m")).unwrap(), Some(Some("m".into())));
        let write = |v: Option<Option<String>>| present(&v, serde_json::value::Serializer).unwrap();
        assert_eq!(write(Some(None)), Value::Null);
        assert_eq!(write(Some(Some("m".into()))), json("m"));
    }
}
