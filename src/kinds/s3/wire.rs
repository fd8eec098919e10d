//! The XML of the S3 API calls the kind makes, as serde types read with
//! quick-xml (which expands no entities and reads no DTD). Every field is
//! optional text: stores differ (MinIO, Ceph, R2, GCS leave fields out or
//! add their own), and numbers and flags are parsed leniently by the
//! accessors, so an odd field never fails a whole page.

use serde::Deserialize;

/// `ListMultipartUploadsResult`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UploadsPage {
    /// `true` when more uploads follow.
    pub is_truncated: Option<String>,
    /// Where the next page starts (with `next_upload_id_marker`).
    pub next_key_marker: Option<String>,
    /// Where the next page starts (with `next_key_marker`).
    pub next_upload_id_marker: Option<String>,
    /// `url` when keys and markers are URL-encoded.
    pub encoding_type: Option<String>,
    /// The uploads of this page.
    #[serde(rename = "Upload")]
    pub uploads: Vec<Upload>,
}

/// One incomplete multipart upload.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Upload {
    /// Object key.
    pub key: Option<String>,
    /// Upload id.
    pub upload_id: Option<String>,
    /// Who started it.
    pub initiator: Option<Principal>,
    /// Who owns the object once complete.
    pub owner: Option<Principal>,
    /// ISO 8601 start time.
    pub initiated: Option<String>,
}

/// `Initiator` / `Owner`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Principal {
    /// IAM ARN or canonical user id.
    #[serde(rename = "ID")]
    pub id: Option<String>,
    /// Display name, where the store still sends one.
    #[serde(rename = "DisplayName")]
    pub display_name: Option<String>,
}

/// `ListPartsResult`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PartsPage {
    /// `true` when more parts follow.
    pub is_truncated: Option<String>,
    /// Where the next page starts.
    pub next_part_number_marker: Option<String>,
    /// The parts of this page.
    #[serde(rename = "Part")]
    pub parts: Vec<Part>,
}

/// One uploaded part.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Part {
    /// 1..=10000.
    pub part_number: Option<String>,
    /// ISO 8601 time of the upload.
    pub last_modified: Option<String>,
    /// Bytes.
    pub size: Option<String>,
}

/// `LifecycleConfiguration`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Lifecycle {
    /// Its rules.
    #[serde(rename = "Rule")]
    pub rules: Vec<Rule>,
}

/// One lifecycle rule (only what decides incomplete uploads is read).
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Rule {
    /// Rule id.
    #[serde(rename = "ID")]
    pub id: Option<String>,
    /// `Enabled` or `Disabled`.
    pub status: Option<String>,
    /// The filter (`Prefix`, or `And` with a `Prefix`).
    pub filter: Option<Filter>,
    /// The prefix of rules written before `Filter` existed.
    pub prefix: Option<String>,
    /// The action this exporter cares about.
    pub abort_incomplete_multipart_upload: Option<Abort>,
}

/// `Filter`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Filter {
    /// Key prefix.
    pub prefix: Option<String>,
    /// Several conditions.
    pub and: Option<And>,
    /// A tag condition (uploads have no tags: such a rule never applies).
    pub tag: Option<Tag>,
}

/// `And`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct And {
    /// Key prefix.
    pub prefix: Option<String>,
    /// Tag conditions.
    #[serde(rename = "Tag")]
    pub tags: Vec<Tag>,
}

/// A tag condition; only its presence matters.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Tag {
    /// Tag key.
    pub key: Option<String>,
}

/// `AbortIncompleteMultipartUpload`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Abort {
    /// Days after initiation.
    pub days_after_initiation: Option<String>,
}

/// An S3 error body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ErrorBody {
    /// E.g. `AccessDenied`, `SlowDown`.
    pub code: Option<String>,
    /// For humans; may echo the request, so masked before use.
    pub message: Option<String>,
}

/// `ListAllMyBucketsResult` (ListBuckets).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BucketList {
    /// `Buckets`.
    pub buckets: Option<Buckets>,
}

/// `Buckets`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Buckets {
    /// Each `Bucket`.
    #[serde(rename = "Bucket")]
    pub bucket: Vec<Bucket>,
}

/// One bucket.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Bucket {
    /// Its name.
    pub name: Option<String>,
    /// Its region, where the store says it (AWS does).
    pub bucket_region: Option<String>,
}

/// `true` (any case, surrounding space ignored).
pub fn flag(v: &Option<String>) -> bool {
    v.as_deref()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("true"))
}

/// A non-negative integer, `None` when absent or not one.
pub fn number(v: &Option<String>) -> Option<u64> {
    v.as_deref().and_then(|s| s.trim().parse().ok())
}

/// The local name of the document's root element (after the declaration,
/// comments and processing instructions); `None` when there is none (an
/// empty body, or not XML). serde ignores the root's name, so without this
/// check an `<Error>` document sent with HTTP 200 would read as an empty
/// listing.
pub fn root(body: &[u8]) -> Option<String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    // Bounded: anything but a start tag before the root is rare and short.
    for _ in 0..64 {
        match reader.read_event_into(&mut buf) {
            Ok(quick_xml::events::Event::Start(e)) | Ok(quick_xml::events::Event::Empty(e)) => {
                return Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
            }
            Ok(quick_xml::events::Event::Eof) | Err(_) => return None,
            Ok(_) => buf.clear(),
        }
    }
    None
}

/// Decodes an XML document into `T`; the error says where it failed, never
/// what the document held.
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8 ({e})"))?;
    quick_xml::de::from_str(text).map_err(|e| {
        let mut m = e.to_string();
        // quick-xml quotes text from the document in some messages.
        m.truncate(m.find(['`', '"', '\'']).unwrap_or(m.len()).min(120));
        format!("not the XML expected: {}", m.trim_end_matches([':', ' ']))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uploads_page_as_the_reference_shows_it() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>bucket</Bucket>
  <KeyMarker></KeyMarker>
  <UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>my-movie.m2ts</NextKeyMarker>
  <NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>
  <MaxUploads>3</MaxUploads>
  <IsTruncated>true</IsTruncated>
  <Upload>
    <Key>my-divisor</Key>
    <UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>
    <Initiator>
      <ID>arn:aws:iam::111122223333:user/user1-11111a31-17b5-4fb7-9df5-b111111f13de</ID>
      <DisplayName>user1-11111a31-17b5-4fb7-9df5-b111111f13de</DisplayName>
    </Initiator>
    <Owner>
      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
      <DisplayName>OwnerDisplayName</DisplayName>
    </Owner>
    <StorageClass>REDUCED_REDUNDANCY</StorageClass>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated>
  </Upload>
  <Upload>
    <Key>my-movie.m2ts</Key>
    <UploadId>VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
    <Initiator><ID>b1d16700c70b0b05597d7acd6a3f92be</ID></Initiator>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated>
  </Upload>
</ListMultipartUploadsResult>"#;
        let p: UploadsPage = decode(xml.as_bytes()).unwrap();
        assert!(flag(&p.is_truncated));
        assert_eq!(p.next_key_marker.as_deref(), Some("my-movie.m2ts"));
        assert_eq!(
            p.next_upload_id_marker.as_deref(),
            Some("YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ")
        );
        assert_eq!(p.uploads.len(), 2);
        let u = &p.uploads[0];
        assert_eq!(u.key.as_deref(), Some("my-divisor"));
        assert_eq!(
            u.initiator.as_ref().and_then(|i| i.display_name.as_deref()),
            Some("user1-11111a31-17b5-4fb7-9df5-b111111f13de")
        );
        assert_eq!(u.initiated.as_deref(), Some("2010-11-10T20:48:33.000Z"));
        assert_eq!(p.uploads[1].initiator.as_ref().unwrap().display_name, None);
    }

    #[test]
    fn the_root_element_is_named() {
        let r = |b: &[u8]| root(b);
        assert_eq!(
            r(b"<?xml version=\"1.0\"?>\n<!-- hi --><ListPartsResult xmlns=\"x\"><a/></ListPartsResult>")
                .as_deref(),
            Some("ListPartsResult")
        );
        assert_eq!(r(b"<s3:Error xmlns:s3=\"x\"/>").as_deref(), Some("Error"));
        assert_eq!(r(b"").as_deref(), None);
        assert_eq!(r(b"not xml at all").as_deref(), None);
        assert_eq!(r(b"{\"json\": true}").as_deref(), None);
    }

    #[test]
    fn a_bucket_list_with_regions() {
        // As AWS documents ListBuckets' answer (BucketRegion is recent and
        // absent from other stores').
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Buckets>
    <Bucket><BucketRegion>us-east-2</BucketRegion><CreationDate>2024-10-01T00:00:00.000Z</CreationDate><Name>far</Name></Bucket>
    <Bucket><CreationDate>2024-10-01T00:00:00.000Z</CreationDate><Name>near</Name></Bucket>
  </Buckets>
  <Owner><DisplayName>me</DisplayName><ID>abc</ID></Owner>
  <ContinuationToken>x</ContinuationToken>
</ListAllMyBucketsResult>"#;
        let l: BucketList = decode(xml).unwrap();
        let b: Vec<(Option<&str>, Option<&str>)> = l
            .buckets
            .as_ref()
            .unwrap()
            .bucket
            .iter()
            .map(|b| (b.name.as_deref(), b.bucket_region.as_deref()))
            .collect();
        assert_eq!(b, [(Some("far"), Some("us-east-2")), (Some("near"), None)]);
        let empty: BucketList =
            decode(b"<ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>").unwrap();
        assert!(empty.buckets.unwrap().bucket.is_empty());
    }

    #[test]
    fn parts_lifecycle_and_errors() {
        let parts: PartsPage = decode(
            br#"<ListPartsResult><IsTruncated>false</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker>
<Part><PartNumber>1</PartNumber><LastModified>2010-11-10T20:48:34.000Z</LastModified><ETag>"x"</ETag><Size>10485760</Size></Part>
<Part><PartNumber>2</PartNumber><LastModified>2010-11-10T20:48:33.000Z</LastModified><Size> 5 </Size></Part>
<Part><PartNumber>3</PartNumber><Size>-1</Size></Part></ListPartsResult>"#,
        )
        .unwrap();
        assert!(!flag(&parts.is_truncated));
        assert_eq!(number(&parts.next_part_number_marker), Some(2));
        let sizes: Vec<Option<u64>> = parts.parts.iter().map(|p| number(&p.size)).collect();
        assert_eq!(sizes, [Some(10_485_760), Some(5), None]);

        let l: Lifecycle = decode(
            br#"<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Rule><ID>a</ID><Filter><Prefix>incoming/</Prefix></Filter><Status>Enabled</Status>
<AbortIncompleteMultipartUpload><DaysAfterInitiation>7</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>
<Rule><ID>b</ID><Filter><And><Prefix>x/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></And></Filter><Status>Disabled</Status></Rule>
<Rule><ID>c</ID><Prefix>old/</Prefix><Status>Enabled</Status><Expiration><Days>3</Days></Expiration></Rule>
</LifecycleConfiguration>"#,
        )
        .unwrap();
        assert_eq!(l.rules.len(), 3);
        assert_eq!(
            l.rules[0].filter.as_ref().unwrap().prefix.as_deref(),
            Some("incoming/")
        );
        assert_eq!(
            number(
                &l.rules[0]
                    .abort_incomplete_multipart_upload
                    .as_ref()
                    .unwrap()
                    .days_after_initiation
            ),
            Some(7)
        );
        assert_eq!(
            l.rules[1]
                .filter
                .as_ref()
                .unwrap()
                .and
                .as_ref()
                .unwrap()
                .tags
                .len(),
            1
        );
        assert_eq!(l.rules[2].prefix.as_deref(), Some("old/"));

        let e: ErrorBody = decode(
            b"<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message><RequestId>1</RequestId></Error>",
        )
        .unwrap();
        assert_eq!(e.code.as_deref(), Some("SignatureDoesNotMatch"));
    }

    #[test]
    fn bad_documents_are_errors_that_quote_nothing() {
        for body in [&b"<ListPartsResult><Part>"[..], b"\xff\xfe"] {
            let m = decode::<PartsPage>(body).expect_err("not a document");
            assert!(!m.contains("ListParts") && !m.contains('\u{fffd}'), "{m}");
        }
        // An external entity is never read: an error, or the text unexpanded.
        let xxe = b"<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>\
                    <ListPartsResult><Part><Size>&e;</Size></Part></ListPartsResult>";
        match decode::<PartsPage>(xxe) {
            Err(m) => assert!(!m.contains("passwd") && !m.contains("root:"), "{m}"),
            Ok(p) => assert!(
                p.parts.iter().all(|x| number(&x.size).is_none()
                    && !x.size.as_deref().unwrap_or("").contains("root:")),
                "{p:?}"
            ),
        }
        assert!(flag(&Some(" TRUE ".into())));
        assert!(!flag(&Some("yes".into())));
        assert_eq!(number(&Some("12x".into())), None);
    }
}
