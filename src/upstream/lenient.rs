//! Lenient decoding shared by every kind's wire types: upstreams send numbers as
//! strings, nulls where a list or flag belongs, and now and then an entry of the
//! wrong shape. None of that may fail a whole response; an unreadable value
//! decodes as absent and the record is judged later.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A non-negative integer, or `None` for null, negative, fractional or
/// non-numeric values (strings of digits are accepted).
pub fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// `null` decodes like a missing field.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `null` decodes as `false`.
pub fn null_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

/// A list payload whose entries are decoded one by one, so that a single
/// entry of the wrong shape (say a string where an object belongs) is
/// skipped and counted instead of failing the whole list.
#[derive(Debug)]
pub struct Lenient<T> {
    /// The entries that decoded.
    pub items: Vec<T>,
    /// How many entries did not.
    pub skipped: usize,
}

impl<T: serde::de::DeserializeOwned> Lenient<T> {
    /// Decodes a list. The usual list, every entry of the expected shape,
    /// is decoded in one pass; only a list with an odd entry takes the
    /// entry-by-entry path (same result, one more pass).
    pub fn from_slice(data: &[u8]) -> serde_json::Result<Self> {
        if let Ok(items) = serde_json::from_slice::<Option<Vec<T>>>(data) {
            return Ok(Lenient {
                items: items.unwrap_or_default(),
                skipped: 0,
            });
        }
        serde_json::from_slice(data)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Option::<Vec<&'de RawValue>>::deserialize(d)?.unwrap_or_default();
        let mut items = Vec::with_capacity(raw.len());
        let mut skipped = 0;
        for r in raw {
            match serde_json::from_str::<T>(r.get()) {
                Ok(v) => items.push(v),
                Err(_) => skipped += 1,
            }
        }
        Ok(Lenient { items, skipped })
    }
}

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient {
            items: Vec::new(),
            skipped: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct N {
        #[serde(default, deserialize_with = "lenient_u64")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "null_false")]
        b: bool,
        #[serde(default, deserialize_with = "null_as_default")]
        v: Vec<u64>,
    }

    fn n(json: &str) -> Option<u64> {
        serde_json::from_str::<N>(json).unwrap().n
    }

    #[test]
    fn numbers_decode_leniently() {
        assert_eq!(n(r#"{"n": 42}"#), Some(42));
        assert_eq!(n(r#"{"n": 18446744073709551615}"#), Some(u64::MAX));
        assert_eq!(n(r#"{"n": " 42 "}"#), Some(42));
        assert_eq!(n(r#"{"n": -1}"#), None);
        assert_eq!(n(r#"{"n": 1.5}"#), None);
        assert_eq!(n(r#"{"n": "1.5"}"#), None);
        assert_eq!(n(r#"{"n": "many"}"#), None);
        assert_eq!(n(r#"{"n": true}"#), None);
        assert_eq!(n(r#"{"n": null}"#), None);
        assert_eq!(n(r#"{}"#), None);
    }

    #[test]
    fn nulls_decode_as_defaults() {
        let v: N = serde_json::from_str(r#"{"b": null, "v": null}"#).unwrap();
        assert!(!v.b);
        assert!(v.v.is_empty());
        let v: N = serde_json::from_str(r#"{"b": true, "v": [3, 4]}"#).unwrap();
        assert!(v.b);
        assert_eq!(v.v, [3, 4]);
    }

    #[test]
    fn odd_entries_are_skipped_and_counted() {
        let l = Lenient::<N>::from_slice(br#"[{"n": 1}, "odd", {"n": "2"}, 7]"#).unwrap();
        assert_eq!(
            l.items.iter().map(|x| x.n).collect::<Vec<_>>(),
            [Some(1), Some(2)]
        );
        assert_eq!(l.skipped, 2);
        let l = Lenient::<N>::from_slice(b"null").unwrap();
        assert!(l.items.is_empty() && l.skipped == 0);
        assert!(Lenient::<N>::from_slice(br#"{"n": 1}"#).is_err());
    }
}
