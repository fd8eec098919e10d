//! What the S3 side keeps: buckets, their multipart uploads (part sizes and
//! MD5s only, never the bytes), completed objects' metadata and lifecycle
//! rules; the listing order, paging markers and lifecycle arithmetic.

use std::collections::BTreeMap;

use time::{OffsetDateTime, Time};

use super::wire::{Element, S3Error};
use super::{LifecycleRule, RuleFilter, S3Identity};
use crate::clock;

/// Highest part number (S3's limit).
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Most buckets the simulator holds.
pub const MAX_BUCKETS: usize = 100;
/// Most open multipart uploads per bucket.
pub const MAX_UPLOADS_PER_BUCKET: usize = 10_000;
/// Most parts held per bucket, all its uploads together.
pub const MAX_PARTS_PER_BUCKET: usize = 200_000;
/// Most objects (completed uploads, PutObject) per bucket; past it the
/// oldest are forgotten.
pub const MAX_OBJECTS_PER_BUCKET: usize = 10_000;
/// Largest part or object body accepted (streamed and hashed, not kept).
pub const MAX_PART_BYTES: u64 = 64 * 1024 * 1024;
/// Most lifecycle rules per configuration (S3's limit).
pub const MAX_RULES: usize = 1000;

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) size: u64,
    /// Hex MD5 of the part's bytes (the ETag without quotes).
    pub(crate) md5: String,
    pub(crate) last_modified: OffsetDateTime,
}

/// An open multipart upload.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub(crate) id: String,
    pub(crate) key: String,
    pub(crate) initiator: S3Identity,
    pub(crate) storage_class: String,
    pub(crate) initiated: OffsetDateTime,
    pub(crate) parts: BTreeMap<u32, Part>,
}

/// A completed object (metadata only).
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub(crate) size: u64,
    /// Quoted ETag.
    pub(crate) etag: String,
    pub(crate) last_modified: OffsetDateTime,
}

/// One bucket.
#[derive(Debug)]
pub(crate) struct Bucket {
    pub(crate) name: String,
    pub(crate) created: OffsetDateTime,
    /// Open uploads in listing order: by key, then initiation time, then
    /// upload id.
    pub(crate) uploads: BTreeMap<(String, OffsetDateTime, String), Upload>,
    /// Upload id → its listing key.
    pub(crate) ids: BTreeMap<String, (String, OffsetDateTime, String)>,
    pub(crate) objects: BTreeMap<String, Object>,
    pub(crate) lifecycle: Option<Vec<LifecycleRule>>,
    /// Uploads removed by an abort rule, in total.
    pub(crate) lifecycle_aborted: u64,
    pub(crate) parts_held: usize,
}

impl Bucket {
    pub(crate) fn new(name: &str, created: OffsetDateTime) -> Self {
        Self {
            name: name.to_owned(),
            created,
            uploads: BTreeMap::new(),
            ids: BTreeMap::new(),
            objects: BTreeMap::new(),
            lifecycle: None,
            lifecycle_aborted: 0,
            parts_held: 0,
        }
    }

    pub(crate) fn insert(&mut self, u: Upload) {
        if let Some(old) = self.remove(&u.id) {
            drop(old);
        }
        let k = (u.key.clone(), u.initiated, u.id.clone());
        self.parts_held += u.parts.len();
        self.ids.insert(u.id.clone(), k.clone());
        self.uploads.insert(k, u);
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Upload> {
        let k = self.ids.remove(id)?;
        let u = self.uploads.remove(&k)?;
        self.parts_held = self.parts_held.saturating_sub(u.parts.len());
        Some(u)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Upload> {
        let k = self.ids.get(id)?;
        self.uploads.get_mut(k)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Upload> {
        self.uploads.get(self.ids.get(id)?)
    }

    pub(crate) fn put_object(&mut self, key: &str, obj: Object) {
        self.objects.insert(key.to_owned(), obj);
        while self.objects.len() > MAX_OBJECTS_PER_BUCKET {
            let oldest = self
                .objects
                .iter()
                .min_by_key(|(_, o)| o.last_modified)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.objects.remove(&k);
                }
                None => break,
            }
        }
    }

    /// Applies enabled abort rules: every upload whose deadline (see
    /// [`abort_deadline`]) is not after `now` goes.
    pub(crate) fn settle(&mut self, now: OffsetDateTime) {
        let Some(rules) = &self.lifecycle else { return };
        let due: Vec<String> = self
            .uploads
            .values()
            .filter(|u| {
                rules.iter().any(|r| {
                    r.enabled
                        && r.filter.matches(&u.key)
                        && r.abort_after_days
                            .is_some_and(|d| abort_deadline(u.initiated, d) <= now)
                })
            })
            .map(|u| u.id.clone())
            .collect();
        for id in due {
            if self.remove(&id).is_some() {
                self.lifecycle_aborted += 1;
            }
        }
    }

    /// One page of the listing: uploads whose key starts with `prefix`,
    /// after the markers (see [`after_markers`]), at most `max`; and
    /// whether more remain.
    pub(crate) fn page(
        &self,
        prefix: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max: usize,
    ) -> (Vec<&Upload>, bool) {
        let mut matching = self
            .uploads
            .values()
            .filter(|u| u.key.starts_with(prefix))
            .filter(|u| after_markers(self, u, key_marker, upload_id_marker));
        let page: Vec<&Upload> = matching.by_ref().take(max).collect();
        let more = matching.next().is_some();
        (page, more)
    }
}

/// Whether `u` comes after the markers: its key is after `key_marker`, or
/// equal to it and `u` comes after the upload `upload_id_marker` in the
/// listing order. With no key marker the upload id marker is ignored (as
/// S3 does). An upload id marker that names no open upload of that key
/// (completed or aborted since) compares as an id: generated ids sort in
/// initiation order, so the listing resumes where it was.
pub(crate) fn after_markers(
    bucket: &Bucket,
    u: &Upload,
    key_marker: Option<&str>,
    upload_id_marker: Option<&str>,
) -> bool {
    let Some(km) = key_marker else { return true };
    match u.key.as_str().cmp(km) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => match upload_id_marker {
            None => false,
            Some(idm) => match bucket.ids.get(idm) {
                Some(pos) if pos.0 == km => (&u.key, u.initiated, &u.id) > (&pos.0, pos.1, &pos.2),
                _ => u.id.as_str() > idm,
            },
        },
    }
}

/// When an abort rule of `days` removes an upload initiated at
/// `initiated`: `initiated + days`, rounded up to the next midnight UTC
/// (a time that is already midnight stays).
pub(crate) fn abort_deadline(initiated: OffsetDateTime, days: u32) -> OffsetDateTime {
    let t = clock::add(
        initiated.to_offset(time::UtcOffset::UTC),
        std::time::Duration::from_secs(u64::from(days) * 86_400),
    );
    if t.time() == Time::MIDNIGHT {
        return t;
    }
    let next = t.date().next_day().unwrap_or(t.date());
    next.with_time(Time::MIDNIGHT).assume_utc()
}

/// The ETag of a completed multipart object: MD5 of the parts' binary
/// MD5s, `-` and the number of parts, quoted.
pub(crate) fn multipart_etag(md5s: &[&str]) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for m in md5s {
        if let Ok(b) = hex::decode(m) {
            h.update(&b);
        }
    }
    format!("\"{}-{}\"", hex::encode(h.finalize()), md5s.len())
}

/// A fresh upload id that sorts after every id made earlier (hex of the
/// initiation time in milliseconds and a sequence number, then random
/// letters).
pub(crate) fn new_upload_id(initiated: OffsetDateTime, seq: u64) -> String {
    use rand::Rng;
    let ms = u64::try_from(initiated.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let mut rng = rand::rng();
    let tail: String = (0..24)
        .map(|_| {
            let i = rng.random_range(0..62u8);
            char::from(match i {
                0..=9 => b'0' + i,
                10..=35 => b'A' + i - 10,
                _ => b'a' + i - 36,
            })
        })
        .collect();
    format!("{ms:012x}{seq:08x}{tail}")
}

// ---------------------------------------------------------------- lifecycle

/// Parses a `LifecycleConfiguration` document.
pub(crate) fn parse_lifecycle(doc: &Element) -> Result<Vec<LifecycleRule>, S3Error> {
    if doc.name != "LifecycleConfiguration" {
        return Err(S3Error::malformed_xml());
    }
    let rules: Vec<&Element> = doc.all("Rule").collect();
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(S3Error::malformed_xml());
    }
    let mut out: Vec<LifecycleRule> = Vec::with_capacity(rules.len());
    for r in rules {
        let id = r.text_of("ID").unwrap_or("").to_owned();
        if id.chars().count() > 255 {
            return Err(S3Error::invalid_argument(
                "ID length should not exceed allowed limit of 255",
            ));
        }
        if !id.is_empty() && out.iter().any(|o| o.id == id) {
            return Err(S3Error::invalid_argument(
                "Rule ID must be unique. Found same ID for more than one rule",
            ));
        }
        let enabled = match r.text_of("Status") {
            Some("Enabled") => true,
            Some("Disabled") => false,
            _ => return Err(S3Error::malformed_xml()),
        };
        let filter = match (r.child("Filter"), r.child("Prefix")) {
            (Some(_), Some(_)) => return Err(S3Error::malformed_xml()),
            (None, Some(p)) => RuleFilter::LegacyPrefix(p.text.clone()),
            (None, None) => RuleFilter::None,
            (Some(f), None) => parse_filter(f)?,
        };
        let abort_after_days = match r.child("AbortIncompleteMultipartUpload") {
            None => None,
            Some(a) => Some(positive_days(a.text_of("DaysAfterInitiation"))?),
        };
        let expiration_days = match r.child("Expiration") {
            None => None,
            Some(e) => match (
                e.text_of("Days"),
                e.text_of("Date"),
                e.text_of("ExpiredObjectDeleteMarker"),
            ) {
                (Some(d), _, _) => Some(positive_days(Some(d))?),
                (None, Some(_), _) | (None, None, Some(_)) => None,
                (None, None, None) => return Err(S3Error::malformed_xml()),
            },
        };
        let has_action = r.children.iter().any(|c| {
            matches!(
                c.name.as_str(),
                "Expiration"
                    | "AbortIncompleteMultipartUpload"
                    | "Transition"
                    | "NoncurrentVersionExpiration"
                    | "NoncurrentVersionTransition"
            )
        });
        if !has_action {
            return Err(S3Error::invalid_request(
                "At least one action needs to be specified in a rule",
            ));
        }
        if abort_after_days.is_some() && filter.has_tags() {
            return Err(S3Error::invalid_request(
                "AbortIncompleteMultipartUpload cannot be specified with Tags.",
            ));
        }
        out.push(LifecycleRule {
            id,
            filter,
            enabled,
            abort_after_days,
            expiration_days,
        });
    }
    Ok(out)
}

fn parse_filter(f: &Element) -> Result<RuleFilter, S3Error> {
    let tags = |e: &Element| -> Vec<(String, String)> {
        e.all("Tag")
            .map(|t| {
                (
                    t.text_of("Key").unwrap_or("").to_owned(),
                    t.text_of("Value").unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let kinds = f.children.len();
    if kinds > 1 {
        return Err(S3Error::malformed_xml());
    }
    Ok(match f.children.first() {
        None => RuleFilter::Empty,
        Some(c) if c.name == "Prefix" => RuleFilter::Prefix(c.text.clone()),
        Some(c) if c.name == "Tag" => RuleFilter::And {
            prefix: None,
            tags: tags(f),
        },
        Some(c) if c.name == "And" => RuleFilter::And {
            prefix: c.child("Prefix").map(|p| p.text.clone()),
            tags: tags(c),
        },
        Some(c) if c.name == "ObjectSizeGreaterThan" || c.name == "ObjectSizeLessThan" => {
            RuleFilter::Empty
        }
        Some(_) => return Err(S3Error::malformed_xml()),
    })
}

fn positive_days(s: Option<&str>) -> Result<u32, S3Error> {
    match s.and_then(|s| s.parse::<u32>().ok()) {
        Some(d) if d > 0 => Ok(d),
        _ => Err(S3Error::invalid_argument(
            "'Days' for Expiration action and 'DaysAfterInitiation' must be a positive integer",
        )),
    }
}

/// Renders rules as `GetBucketLifecycleConfiguration` answers them.
pub(crate) fn render_lifecycle(x: &mut super::wire::Xml, rules: &[LifecycleRule]) {
    x.root("LifecycleConfiguration");
    for r in rules {
        x.open("Rule");
        if !r.id.is_empty() {
            x.leaf("ID", &r.id);
        }
        match &r.filter {
            RuleFilter::None => {}
            RuleFilter::LegacyPrefix(p) => x.leaf("Prefix", p),
            RuleFilter::Empty => {
                x.open("Filter");
                x.close("Filter");
            }
            RuleFilter::Prefix(p) => {
                x.open("Filter");
                x.leaf("Prefix", p);
                x.close("Filter");
            }
            RuleFilter::And { prefix, tags } => {
                x.open("Filter");
                let and = prefix.is_some() || tags.len() > 1;
                if and {
                    x.open("And");
                }
                if let Some(p) = prefix {
                    x.leaf("Prefix", p);
                }
                for (k, v) in tags {
                    x.open("Tag");
                    x.leaf("Key", k);
                    x.leaf("Value", v);
                    x.close("Tag");
                }
                if and {
                    x.close("And");
                }
                x.close("Filter");
            }
        }
        x.leaf("Status", if r.enabled { "Enabled" } else { "Disabled" });
        if let Some(d) = r.expiration_days {
            x.open("Expiration");
            x.leaf("Days", &d.to_string());
            x.close("Expiration");
        }
        if let Some(d) = r.abort_after_days {
            x.open("AbortIncompleteMultipartUpload");
            x.leaf("DaysAfterInitiation", &d.to_string());
            x.close("AbortIncompleteMultipartUpload");
        }
        x.close("Rule");
    }
    x.close("LifecycleConfiguration");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::wire;
    use time::macros::datetime;

    fn upload(key: &str, at: OffsetDateTime, seq: u64) -> Upload {
        Upload {
            id: new_upload_id(at, seq),
            key: key.to_owned(),
            initiator: S3Identity::new("arn:aws:iam::1:user/a", "a"),
            storage_class: "STANDARD".to_owned(),
            initiated: at,
            parts: BTreeMap::new(),
        }
    }

    #[test]
    fn deadline_rounds_up_to_midnight() {
        assert_eq!(
            abort_deadline(datetime!(2025-03-14 09:26:53.123 UTC), 1),
            datetime!(2025-03-16 00:00 UTC)
        );
        assert_eq!(
            abort_deadline(datetime!(2025-03-14 00:00 UTC), 2),
            datetime!(2025-03-16 00:00 UTC)
        );
        assert_eq!(
            abort_deadline(datetime!(2025-12-31 23:59:59.999 UTC), 1),
            datetime!(2026-01-02 00:00 UTC)
        );
    }

    #[test]
    fn ids_sort_by_initiation() {
        let a = new_upload_id(datetime!(2025-03-14 09:00 UTC), 7);
        let b = new_upload_id(datetime!(2025-03-14 09:00 UTC), 8);
        let c = new_upload_id(datetime!(2025-03-14 09:00:00.001 UTC), 1);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(a.len(), 44);
    }

    #[test]
    fn pages_follow_markers() {
        let mut b = Bucket::new("b", datetime!(2025-01-01 00:00 UTC));
        let t = datetime!(2025-03-14 09:00 UTC);
        let ups = [
            upload("a", t, 1),
            upload("b", t, 2),
            upload("b", t + time::Duration::SECOND, 3),
            upload("c", t, 4),
        ];
        for u in ups.iter().cloned() {
            b.insert(u);
        }
        let keys = |v: &[&Upload]| v.iter().map(|u| u.id.clone()).collect::<Vec<_>>();
        let (p, more) = b.page("", None, None, 2);
        assert_eq!(keys(&p), [ups[0].id.clone(), ups[1].id.clone()]);
        assert!(more);
        let (p, more) = b.page("", Some("b"), Some(&ups[1].id), 2);
        assert_eq!(keys(&p), [ups[2].id.clone(), ups[3].id.clone()]);
        assert!(!more);
        // The marker upload is gone: resumes by id order.
        let gone = ups[1].id.clone();
        b.remove(&gone);
        let (p, _) = b.page("", Some("b"), Some(&gone), 10);
        assert_eq!(keys(&p), [ups[2].id.clone(), ups[3].id.clone()]);
        let (p, _) = b.page("", Some("b"), None, 10);
        assert_eq!(keys(&p), [ups[3].id.clone()]);
        let (p, _) = b.page("b", None, None, 10);
        assert_eq!(p.len(), 1);
        assert_eq!(
            multipart_etag(&["d41d8cd98f00b204e9800998ecf8427e"]),
            "\"59adb24ef3cdbe0297f05b395827453f-1\""
        );
    }

    #[test]
    fn lifecycle_round_trips() {
        let doc = wire::parse(
            "<LifecycleConfiguration><Rule><ID>abort</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule><Rule><Prefix></Prefix><Status>Disabled</Status><Expiration><Days>30</Days></Expiration></Rule></LifecycleConfiguration>",
        )
        .unwrap();
        let rules = parse_lifecycle(&doc).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].abort_after_days, Some(1));
        assert!(rules[0].filter.matches("tmp/x"));
        assert!(!rules[0].filter.matches("x"));
        let mut x = wire::Xml::new();
        render_lifecycle(&mut x, &rules);
        let again = parse_lifecycle(&wire::parse(&x.finish()).unwrap()).unwrap();
        assert_eq!(again, rules);
        for bad in [
            "<LifecycleConfiguration/>",
            "<LifecycleConfiguration><Rule><Status>On</Status><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>",
            "<LifecycleConfiguration><Rule><Status>Enabled</Status></Rule></LifecycleConfiguration>",
            "<LifecycleConfiguration><Rule><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>0</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>",
            "<Other/>",
        ] {
            assert!(parse_lifecycle(&wire::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }
}
