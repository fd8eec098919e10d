//! Spreading targets over several replicas: replica INDEX of COUNT polls the
//! targets whose name hashes to INDEX. The hash (FNV-1a, 64 bit) is fixed
//! by this file, not by the Rust version, so every replica and every
//! restart agrees: each target is polled by exactly one replica.

use std::fmt;

/// This replica's share of the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index of this replica.
    pub index: u32,
    /// Number of replicas.
    pub count: u32,
}

/// Environment variable read when `--shard` is not given.
pub const SHARD_ENV: &str = "UPLOAD_SESSION_EXPORTER_SHARD";

impl Shard {
    /// Parses `INDEX/COUNT`. INDEX may be `ordinal`: the number at the end
    /// of `hostname` (a Kubernetes StatefulSet pod `exporter-2` is 2).
    pub fn parse(spec: &str, hostname: Option<&str>) -> Result<Shard, String> {
        let usage = "write it as INDEX/COUNT (e.g. 0/3), or ordinal/COUNT in a StatefulSet";
        let (index, count) = spec
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("shard {spec:?}: {usage}"))?;
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| format!("shard {spec:?}: COUNT must be a number from 1; {usage}"))?;
        let index: u32 = if index.trim() == "ordinal" {
            let host = hostname.unwrap_or("");
            let digits: String = host
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            digits.parse().map_err(|_| {
                format!("shard {spec:?}: host name {host:?} does not end in a pod ordinal (like exporter-2)")
            })?
        } else {
            index
                .trim()
                .parse()
                .map_err(|_| format!("shard {spec:?}: INDEX must be a number; {usage}"))?
        };
        if index >= count {
            return Err(format!(
                "shard {spec:?}: INDEX {index} must be below COUNT {count} (replicas are numbered from 0)"
            ));
        }
        Ok(Shard { index, count })
    }

    /// True if this replica polls `target`.
    pub fn owns(&self, target: &str) -> bool {
        self.owner_of(target).index == self.index
    }

    /// The replica (of this one's COUNT) that polls `target`.
    pub fn owner_of(&self, target: &str) -> Shard {
        let index = fnv1a(target.as_bytes()) % u64::from(self.count);
        Shard {
            // Below `count`, a u32.
            index: u32::try_from(index).unwrap_or(0),
            count: self.count,
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// FNV-1a, 64 bit.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        assert_eq!(Shard::parse("1/3", None), Ok(Shard { index: 1, count: 3 }));
        assert_eq!(
            Shard::parse("ordinal/4", Some("use-exporter-3")),
            Ok(Shard { index: 3, count: 4 })
        );
        assert!(Shard::parse("3/3", None)
            .unwrap_err()
            .contains("below COUNT"));
        assert!(Shard::parse("0/0", None).is_err());
        assert!(Shard::parse("x", None).is_err());
        assert!(Shard::parse("ordinal/2", Some("exporter"))
            .unwrap_err()
            .contains("ordinal"));
    }

    #[test]
    fn every_target_has_exactly_one_replica() {
        let names: Vec<String> = (0..1000).map(|i| format!("vault-{i}")).collect();
        for count in [1u32, 2, 3, 7] {
            let mut per_shard = vec![0; count as usize];
            for n in &names {
                let owners: Vec<u32> = (0..count)
                    .filter(|&i| Shard { index: i, count }.owns(n))
                    .collect();
                assert_eq!(owners.len(), 1, "{n} with {count} replicas: {owners:?}");
                assert_eq!(Shard { index: 0, count }.owner_of(n).index, owners[0]);
                per_shard[owners[0] as usize] += 1;
            }
            // Roughly even: no replica gets less than half its share.
            let fair = names.len() / count as usize;
            assert!(per_shard.iter().all(|&n| n * 2 >= fair), "{per_shard:?}");
        }
    }

    #[test]
    fn the_hash_is_fixed() {
        // Changing these moves targets between replicas: a breaking change.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"vault-prod"), fnv1a(b"vault-prod"));
    }

    #[test]
    fn known_targets_land_on_fixed_replicas() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a(b"\xff"), 0xaf64_724c_8602_eb6e);
        // Which replica owns what is part of the contract (moving a target
        // loses its history); these pin the modulo as well as the hash.
        let owner = |name: &str, count: u32| {
            (0..count)
                .find(|&i| Shard { index: i, count }.owns(name))
                .unwrap()
        };
        let h = fnv1a(b"vault-prod");
        assert_eq!(owner("vault-prod", 7), (h % 7) as u32);
        assert_eq!(owner("vault-prod", 1), 0);
        let placed: Vec<u32> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|n| owner(n, 3))
            .collect();
        let want: Vec<u32> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|n| (fnv1a(n.as_bytes()) % 3) as u32)
            .collect();
        assert_eq!(placed, want);
    }

    #[test]
    fn parse_edges_and_display() {
        assert_eq!(
            Shard::parse(" 0 / 1 ", None),
            Ok(Shard { index: 0, count: 1 })
        );
        assert_eq!(Shard::parse("2/3", None).unwrap().to_string(), "2/3");
        let e = Shard::parse("0/0", None).unwrap_err();
        assert!(e.contains("COUNT must be a number from 1"), "{e}");
        let e = Shard::parse("-1/3", None).unwrap_err();
        assert!(e.contains("INDEX must be a number"), "{e}");
        // Only the trailing digits of the host name count.
        assert_eq!(
            Shard::parse("ordinal/20", Some("exporter2-12")),
            Ok(Shard {
                index: 12,
                count: 20
            })
        );
        let e = Shard::parse("ordinal/3", Some("exporter-3")).unwrap_err();
        assert!(e.contains("INDEX 3 must be below COUNT 3"), "{e}");
        assert!(Shard::parse("ordinal/3", None).is_err());
    }
}
