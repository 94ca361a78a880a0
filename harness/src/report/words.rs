//! How a record reads back what the library writes in a form serde alone cannot read: the
//! matrix's kebab-case names, variants, and fields that are either absent or present and null.

use serde::de::{self, DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::matrix::{Payload, Tweak, Variant, Vars};

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
    if let [vars, chain] = parts.as_slice() {
        if let Ok(chain) = chain.parse::<crate::matrix::Chain>() {
            let vars: Vars = kebab(vars.strip_suffix("-vars").ok_or_else(bad)?)?;
            return Ok(Variant::chain(vars, chain));
        }
    }
    let (vars, payload, tweak) = match parts.as_slice() {
        [vars, payload] => (vars, payload, None),
        [vars, payload, tweak] => (vars, payload, Some(tweak)),
        _ => return Err(bad()),
    };
    let vars: Vars = kebab(vars.strip_suffix("-vars").ok_or_else(bad)?)?;
    let payload: Payload = kebab(payload)?;
    let tweak: Tweak = tweak.map_or(Ok(Tweak::None), |t| kebab(t))?;
    Ok(Variant {
        tweak,
        ..Variant::new(vars, payload)
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

    /// Every value reads back as what wrote it, by the name its Display gives.
    fn round_trips<T>(all: &[T])
    where
        T: Serialize
            + serde::de::DeserializeOwned
            + PartialEq
            + std::fmt::Debug
            + std::fmt::Display,
    {
        for t in all {
            let written = serde_json::to_value(t).unwrap();
            assert_eq!(written, json(&t.to_string()));
            assert_eq!(&serde_json::from_value::<T>(written).unwrap(), t);
        }
    }

    #[test]
    fn the_records_enums_read_back_as_serde_writes_them() {
        use crate::boot::Console;
        use crate::discover::host::Accel;
        use crate::judge::VerdictKind;
        use crate::observe::evidence::LoadPath;
        use strum::VariantArray;
        round_trips(VerdictKind::VARIANTS);
        round_trips(Accel::VARIANTS);
        round_trips(Console::VARIANTS);
        round_trips(&[LoadPath::LoadImage, LoadPath::LegacyLoader]);
        assert!(serde_json::from_value::<Accel>(json("hvf")).is_err());
        assert!(serde_json::from_value::<VerdictKind>(json("Pass")).is_err());
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
