//! What a bucket's lifecycle configuration says about incomplete uploads:
//! the enabled `AbortIncompleteMultipartUpload` rules, which of them covers
//! a key, and when S3 aborts an upload (its initiation plus the rule's
//! days, rounded up to the next midnight UTC, as S3 documents for every
//! lifecycle action).

use super::wire::{self, Lifecycle};
use crate::model::UnixMillis;

const DAY_MS: i64 = 86_400_000;

/// An enabled rule that aborts incomplete uploads under `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortRule {
    /// Key prefix the rule covers (empty: the whole bucket).
    pub prefix: String,
    /// `DaysAfterInitiation`.
    pub days: u32,
}

/// The enabled abort rules of a configuration. Rules with a tag condition
/// never apply to uploads (they have no tags), and rules without days are
/// not abort rules.
pub fn abort_rules(l: &Lifecycle) -> Vec<AbortRule> {
    l.rules
        .iter()
        .filter(|r| {
            r.status
                .as_deref()
                .is_some_and(|s| s.trim().eq_ignore_ascii_case("enabled"))
        })
        .filter_map(|r| {
            let days = r
                .abort_incomplete_multipart_upload
                .as_ref()
                .and_then(|a| wire::number(&a.days_after_initiation))
                .and_then(|d| u32::try_from(d).ok())?;
            let prefix = match &r.filter {
                Some(f) => {
                    let and_tags = f.and.as_ref().is_some_and(|a| !a.tags.is_empty());
                    if f.tag.is_some() || and_tags {
                        return None;
                    }
                    f.prefix
                        .clone()
                        .or_else(|| f.and.as_ref().and_then(|a| a.prefix.clone()))
                        .unwrap_or_default()
                }
                None => r.prefix.clone().unwrap_or_default(),
            };
            Some(AbortRule { prefix, days })
        })
        .collect()
}

/// The rule that aborts uploads of `key` first: of the rules whose prefix
/// the key starts with, the one with the fewest days. Given a target's
/// prefix instead of a key, the rule that covers every key under it.
pub fn rule_for<'a>(rules: &'a [AbortRule], key: &str) -> Option<&'a AbortRule> {
    rules
        .iter()
        .filter(|r| key.starts_with(&r.prefix))
        .min_by_key(|r| r.days)
}

/// When S3 aborts an upload initiated at `initiated` under a rule of `days`:
/// the sum rounded up to the next midnight UTC (a sum that is midnight
/// already stays).
pub fn abort_at(initiated: UnixMillis, days: u32) -> UnixMillis {
    let t = initiated.saturating_add(i64::from(days).saturating_mul(DAY_MS));
    let into_day = t.rem_euclid(DAY_MS);
    if into_day == 0 {
        t
    } else {
        t.saturating_add(DAY_MS - into_day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_timestamp;

    fn ts(s: &str) -> i64 {
        parse_timestamp(s).unwrap()
    }

    fn rules(xml: &str) -> Vec<AbortRule> {
        abort_rules(&wire::decode(xml.as_bytes()).unwrap())
    }

    #[test]
    fn rounded_up_to_the_next_midnight_utc() {
        // The reference's example: created 2014-01-15 10:30 UTC, 3 days.
        assert_eq!(
            abort_at(ts("2014-01-15T10:30:00Z"), 3),
            ts("2014-01-19T00:00:00Z")
        );
        assert_eq!(
            abort_at(ts("2014-01-15T00:00:00Z"), 3),
            ts("2014-01-18T00:00:00Z")
        );
        assert_eq!(
            abort_at(ts("2014-01-15T23:59:59.999Z"), 0),
            ts("2014-01-16T00:00:00Z")
        );
        assert_eq!(
            abort_at(ts("2014-01-15T00:00:00.001Z"), 1),
            ts("2014-01-17T00:00:00Z")
        );
        assert_eq!(abort_at(i64::MAX - 5, 1), i64::MAX);
    }

    #[test]
    fn which_rules_count_and_which_one_applies() {
        let r = rules(
            r#"<LifecycleConfiguration>
<Rule><ID>all</ID><Filter></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>7</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>
<Rule><ID>in</ID><Filter><Prefix>incoming/</Prefix></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>
<Rule><ID>off</ID><Filter><Prefix>incoming/x</Prefix></Filter><Status>Disabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>
<Rule><ID>tag</ID><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>
<Rule><ID>andtag</ID><Filter><And><Prefix>a/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></And></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>
<Rule><ID>and</ID><Filter><And><Prefix>b/</Prefix><ObjectSizeGreaterThan>1</ObjectSizeGreaterThan></And></Filter><Status>enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>3</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>
<Rule><ID>legacy</ID><Prefix>old/</Prefix><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>5</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>
<Rule><ID>expire</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>
</LifecycleConfiguration>"#,
        );
        let got: Vec<(&str, u32)> = r.iter().map(|r| (r.prefix.as_str(), r.days)).collect();
        assert_eq!(got, [("", 7), ("incoming/", 2), ("b/", 3), ("old/", 5)]);
        assert_eq!(rule_for(&r, "incoming/x.bin").map(|r| r.days), Some(2));
        assert_eq!(rule_for(&r, "other").map(|r| r.days), Some(7));
        assert_eq!(rule_for(&r, "old/a").map(|r| r.days), Some(5));
        // A target's prefix: the rule covering every key under it.
        assert_eq!(rule_for(&r, "incoming/").map(|r| r.days), Some(2));
        assert_eq!(rule_for(&r, "incoming").map(|r| r.days), Some(7));
        let only_in = vec![AbortRule {
            prefix: "incoming/".into(),
            days: 2,
        }];
        assert_eq!(rule_for(&only_in, "elsewhere/x"), None);
        assert_eq!(rule_for(&only_in, ""), None);
        assert!(rules("<LifecycleConfiguration/>").is_empty());
    }
}
