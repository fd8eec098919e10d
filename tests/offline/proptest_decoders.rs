//! Property tests of the upstream decoders (issue 6): whatever bytes or
//! JSON an upstream sends, decoding never panics; and a well-formed record
//! always decodes to exactly the values it carries.

use proptest::prelude::*;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use upload_session_exporter::kinds::deepset::{self, wire as dw};
use upload_session_exporter::kinds::vault::{self, wire as vw};
use upload_session_exporter::model::{parse_timestamp, SessionState};

/// Every field name the decoders know, so generated objects hit them.
const KNOWN_KEYS: &[&str] = &[
    "responseStatus",
    "responseMessage",
    "errors",
    "errorType",
    "data",
    "responseDetails",
    "next_page",
    "type",
    "message",
    "sessionId",
    "userId",
    "vaultId",
    "vaultIds",
    "id",
    "name",
    "url",
    "values",
    "path",
    "owner",
    "size",
    "uploaded",
    "uploaded_parts",
    "created_date",
    "expiration_date",
    "last_uploaded_date",
    "part_number",
    "part_content_md5",
    "users",
    "user",
    "user_name__v",
    "user_first_name__v",
    "user_last_name__v",
    "has_more",
    "total",
    "session_id",
    "created_by",
    "created_at",
    "expires_at",
    "status",
    "write_mode",
    "user_id",
    "given_name",
    "family_name",
    "ingestion_status",
    "failed_files",
    "finished_files",
    "detail",
    "loc",
    "msg",
];

/// Strings upstreams send, and near misses.
const INTERESTING: &[&str] = &[
    "",
    " ",
    "SUCCESS",
    "FAILURE",
    "EXCEPTION",
    "WARNING",
    "INVALID_SESSION_ID",
    "API_LIMIT_EXCEEDED",
    "OPEN",
    "CLOSED",
    "EXPIRED",
    "ARCHIVED",
    "2025-03-14T09:26:53.123456Z",
    "2025-03-14T09:26:53.123456+00:00",
    "2020-10-10T18:32:55.000Z",
    "9999-12-31T23:59:59.999999999Z",
    "0000-01-01T00:00:00Z",
    "2020-13-45T99:99:99Z",
    "42",
    " 42 ",
    "-1",
    "18446744073709551615",
    "18446744073709551616",
    "1e300",
    "NaN",
    "http://evil.example.com/api/v25.2/x",
    "/api/v25.2/services/file_staging/upload/x/parts?cursor=abc",
    "<html><body>Sign in</body></html>",
];

fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        prop::sample::select(vec![
            0.0,
            -0.0,
            0.5,
            1.5e300,
            -1.5e300,
            f64::MAX,
            f64::MIN,
            5e-324,
            1e19,
            18446744073709551616.0,
        ])
        .prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
    ]
}

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        prop::sample::select(INTERESTING).prop_map(|s| Value::String(s.to_string())),
        ".{0,24}".prop_map(Value::String),
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KNOWN_KEYS).prop_map(str::to_string),
        1 => "[a-zA-Z_]{0,10}",
    ]
}

/// JSON trees: objects keyed mostly by known field names, any values.
fn arb_json() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A record shaped like an upload session of either API, with any values.
fn arb_record() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KNOWN_KEYS), arb_json()), 0..12)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// A Vault or deepset envelope around generated records.
fn arb_envelope() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "SUCCESS",
            "FAILURE",
            "WARNING",
            "EXCEPTION",
            "SOMETHING",
        ]),
        prop::collection::vec(arb_record(), 0..6),
        arb_json(),
        any::<bool>(),
    )
        .prop_map(|(status, records, extra, has_more)| {
            json!({
                "responseStatus": status,
                "data": records,
                "errors": extra,
                "has_more": has_more,
                "total": records_len_guess(&extra),
                "responseDetails": {"next_page": extra},
            })
        })
}

fn records_len_guess(v: &Value) -> Value {
    match v {
        Value::Array(a) => json!(a.len()),
        other => other.clone(),
    }
}

/// Decodes `bytes` with every decoder a response may meet, as the clients
/// chain them, and converts what decodes to the model.
fn decode_everything(bytes: &[u8], now: i64) {
    if let Ok(env) = serde_json::from_slice::<vw::Envelope>(bytes) {
        if let Some(data) = env.data {
            if let Ok(list) = serde_json::from_str::<vw::Lenient<vw::UploadSession>>(data.get()) {
                for s in list.items {
                    let _ = vault::to_model(s, now);
                }
            }
            if let Ok(s) = serde_json::from_str::<vw::UploadSession>(data.get()) {
                let _ = vault::to_model(s, now);
            }
            let _ = serde_json::from_str::<vw::Lenient<vw::FilePart>>(data.get());
        }
    }
    let _ = serde_json::from_slice::<vw::AuthResponse>(bytes);
    let _ = serde_json::from_slice::<vw::VersionsResponse>(bytes);
    if let Ok(users) = serde_json::from_slice::<vw::UsersResponse>(bytes) {
        for u in users.users.into_iter().filter_map(|n| n.user) {
            let _ = u.display_name();
        }
    }
    if let Ok(page) = serde_json::from_slice::<dw::SessionPage>(bytes) {
        for s in page.data.items {
            let _ = deepset::to_model(s, now);
        }
    }
    let _ = serde_json::from_slice::<dw::SessionStatus>(bytes);
    let _ = serde_json::from_slice::<dw::FilePage>(bytes);
    if let Ok(v) = serde_json::from_slice::<dw::ValidationError>(bytes) {
        let _ = v.summary();
    }
    let _ = parse_timestamp(&String::from_utf8_lossy(bytes));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), now: i64) {
        decode_everything(&bytes, now);
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json(), now: i64) {
        decode_everything(v.to_string().as_bytes(), now);
    }

    #[test]
    fn arbitrary_envelopes_never_panic(v in arb_envelope(), now: i64) {
        let text = v.to_string();
        decode_everything(text.as_bytes(), now);
        // Cut anywhere, as a truncated answer is.
        for cut in [text.len() / 3, text.len() / 2, text.len().saturating_sub(1)] {
            decode_everything(&text.as_bytes()[..cut], now);
        }
    }

    #[test]
    fn odd_records_never_spoil_good_ones(odd in prop::collection::vec(arb_record(), 0..6), owner: u64, uploaded: u64) {
        let good = json!({"id": "good-1", "owner": owner, "uploaded": uploaded, "size": uploaded});
        let mut data = odd;
        data.insert(data.len() / 2, good);
        let body = json!({"responseStatus": "SUCCESS", "data": data}).to_string();
        let env: vw::Envelope = serde_json::from_str(&body).unwrap();
        let list: vw::Lenient<vw::UploadSession> =
            serde_json::from_str(env.data.unwrap().get()).unwrap();
        prop_assert_eq!(list.items.len() + list.skipped, data.len());
        let good = list
            .items
            .into_iter()
            .filter_map(|s| vault::to_model(s, 0))
            .find(|s| s.id == "good-1");
        let good = good.expect("the good record survives");
        prop_assert_eq!(good.owner_id, owner.to_string());
        prop_assert_eq!(good.uploaded, uploaded);
        prop_assert_eq!(good.size, Some(uploaded));
    }

    #[test]
    fn arbitrary_strings_are_no_timestamps_unless_valid(s in ".{0,40}") {
        if let Some(ms) = parse_timestamp(&s) {
            // Anything accepted is a real RFC 3339 time.
            let t = OffsetDateTime::parse(s.trim(), &Rfc3339).unwrap();
            prop_assert_eq!(i128::from(ms), t.unix_timestamp_nanos() / 1_000_000);
        }
    }
}

/// Unix milliseconds from 1970 to the end of year 9999.
fn arb_millis() -> impl Strategy<Value = i64> {
    0i64..=253_402_300_799_999
}

fn vault_ts(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap()
}

fn deepset_ts(us: i64, legacy: bool) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).unwrap();
    let s = t
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"
        ))
        .unwrap();
    if legacy {
        s + "+00:00"
    } else {
        s + "Z"
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A valid List Upload Sessions record decodes to exactly its values.
    #[test]
    fn valid_vault_sessions_round_trip(
        id in "[A-Za-z0-9._-]{1,80}",
        path in "/u[0-9]{1,8}/[A-Za-z0-9 ._-]{1,40}",
        owner: u64,
        size: u64,
        uploaded: u64,
        parts in 0u64..=2000,
        created in arb_millis(),
        expires in arb_millis(),
        last in arb_millis(),
        now in arb_millis(),
        as_strings: bool,
    ) {
        let num = |n: u64| if as_strings { json!(n.to_string()) } else { json!(n) };
        let record = json!({
            "path": path, "id": id,
            "expiration_date": vault_ts(expires), "created_date": vault_ts(created),
            "last_uploaded_date": vault_ts(last),
            "owner": num(owner), "uploaded_parts": num(parts), "size": num(size),
            "uploaded": num(uploaded),
        });
        let body = json!({"responseStatus": "SUCCESS", "data": [record]}).to_string();
        let env: vw::Envelope = serde_json::from_str(&body).unwrap();
        let list: vw::Lenient<vw::UploadSession> =
            serde_json::from_str(env.data.unwrap().get()).unwrap();
        prop_assert_eq!(list.skipped, 0);
        prop_assert_eq!(list.items.len(), 1);
        let s = vault::to_model(list.items.into_iter().next().unwrap(), now).unwrap();
        prop_assert_eq!(&s.id, &id);
        prop_assert_eq!(s.path.as_deref(), Some(path.as_str()));
        prop_assert_eq!(&s.owner_id, &owner.to_string());
        prop_assert_eq!(s.size, Some(size));
        prop_assert_eq!(s.uploaded, uploaded);
        prop_assert_eq!(s.parts, parts);
        prop_assert_eq!(s.created, Some(created));
        prop_assert_eq!(s.expires, Some(expires));
        prop_assert_eq!(s.last_upload, Some(last));
        let want = if expires <= now { SessionState::Expired } else { SessionState::Active };
        prop_assert_eq!(s.state, want);
    }

    /// A valid deepset session decodes to exactly its values.
    #[test]
    fn valid_deepset_sessions_round_trip(
        id in "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        user in "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        given in "[A-Za-z]{1,12}",
        family in "[A-Za-z]{1,12}",
        status in prop::sample::select(vec!["OPEN", "CLOSED", "EXPIRED", "ARCHIVED"]),
        created in arb_millis(),
        expires in proptest::option::of(arb_millis()),
        sub_ms in 0i64..1000,
        now in arb_millis(),
        legacy: bool,
        total in 0u64..1_000_000,
    ) {
        let created_us = created * 1000 + sub_ms;
        let record = json!({
            "session_id": id,
            "created_by": {"user_id": user, "given_name": given, "family_name": family},
            "created_at": deepset_ts(created_us, legacy),
            "expires_at": expires.map(|e| deepset_ts(e * 1000 + sub_ms, legacy)),
            "status": status,
            "write_mode": "KEEP",
        });
        let body = json!({"data": [record], "has_more": false, "total": total}).to_string();
        let page: dw::SessionPage = serde_json::from_str(&body).unwrap();
        prop_assert_eq!(page.total, Some(total));
        prop_assert!(!page.has_more);
        prop_assert_eq!(page.data.skipped, 0);
        let s = deepset::to_model(page.data.items.into_iter().next().unwrap(), now).unwrap();
        prop_assert_eq!(&s.id, &id);
        prop_assert_eq!(&s.owner_id, &user);
        let name = format!("{given} {family}");
        prop_assert_eq!(s.owner_name.as_deref(), Some(name.as_str()));
        prop_assert_eq!(s.created, Some(created));
        prop_assert_eq!(s.expires, expires);
        let want = match status {
            "CLOSED" => SessionState::Closed,
            "EXPIRED" => SessionState::Expired,
            _ if expires.is_some_and(|e| e <= now) => SessionState::Expired,
            _ => SessionState::Open,
        };
        prop_assert_eq!(s.state, want);
    }

    /// Any RFC 3339 time, at any offset, parses to its instant.
    #[test]
    fn timestamps_parse_to_their_instant(
        ms in arb_millis(),
        offset_min in -(23i32 * 60 + 59)..=(23 * 60 + 59),
        digits in 0usize..=9,
    ) {
        let offset = UtcOffset::from_whole_seconds(offset_min * 60).unwrap();
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap()
            .to_offset(offset);
        prop_assume!((0..=9999).contains(&t.year()));
        let base = t
            .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"))
            .unwrap();
        let frac = format!("{:09}", t.nanosecond());
        let frac = if digits == 0 { String::new() } else { format!(".{}", &frac[..digits]) };
        let (sign, abs) = if offset_min < 0 { ('-', -offset_min) } else { ('+', offset_min) };
        let text = format!("{base}{frac}{sign}{:02}:{:02}", abs / 60, abs % 60);
        // Fewer than three fraction digits lose the milliseconds they drop.
        let keep = 10i64.pow(3u32.saturating_sub(digits as u32));
        let want = ms - ms.rem_euclid(keep);
        prop_assert_eq!(parse_timestamp(&text), Some(want), "{}", text);
        prop_assert_eq!(parse_timestamp(&format!("  {text}\n")), Some(want));
    }
}

#[test]
fn documented_examples_decode() {
    // Decoding the vendor examples in tests/fixtures never panics either.
    for dir in ["tests/fixtures/vault", "tests/fixtures/deepset"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                decode_everything(&bytes, 1_700_000_000_000);
            }
        }
    }
}

/// XML of the S3 kind: pieces of the documents it reads, shuffled and cut,
/// so generated inputs reach its element names.
fn arb_s3_xml() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "<ListMultipartUploadsResult>",
        "</ListMultipartUploadsResult>",
        "<Upload>",
        "</Upload>",
        "<Key>k</Key>",
        "<UploadId>u</UploadId>",
        "<Initiator><ID>arn</ID><DisplayName>n</DisplayName></Initiator>",
        "<Initiated>2026-12-01T10:30:00.000Z</Initiated>",
        "<IsTruncated>true</IsTruncated>",
        "<NextKeyMarker>&amp;x</NextKeyMarker>",
        "<ListPartsResult>",
        "</ListPartsResult>",
        "<Part><PartNumber>1</PartNumber><Size>-5</Size></Part>",
        "<Part><Size>99999999999999999999999</Size></Part>",
        "<LifecycleConfiguration><Rule><Status>Enabled</Status>",
        "<AbortIncompleteMultipartUpload><DaysAfterInitiation>4294967296</DaysAfterInitiation></AbortIncompleteMultipartUpload>",
        "</Rule></LifecycleConfiguration>",
        "<Filter><And><Prefix>p</Prefix></And></Filter>",
        "<!DOCTYPE x [<!ENTITY e \"boom\">]>",
        "&e;",
        "<![CDATA[<Key>]]>",
        "<?xml version=\"1.0\"?>",
        "\u{0}",
        "é",
    ]);
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever an S3-compatible store answers, the S3 kind's decoding, its
    /// lifecycle rules and its model never panic, and a decoded listing
    /// never holds more uploads than `<Upload>` elements were sent.
    #[test]
    fn s3_xml_never_panics(xml in arb_s3_xml(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        use upload_session_exporter::kinds::s3::{self, lifecycle, wire as sw};
        for body in [xml.as_bytes(), &bytes[..]] {
            if let Ok(p) = sw::decode::<sw::UploadsPage>(body) {
                let sent = String::from_utf8_lossy(body).matches("<Upload").count();
                prop_assert!(p.uploads.len() <= sent, "{} > {sent}", p.uploads.len());
                for u in &p.uploads {
                    let _ = s3::to_model(u, None, Some(&[]));
                }
            }
            if let Ok(p) = sw::decode::<sw::PartsPage>(body) {
                let f = s3::figures(&p.parts);
                prop_assert_eq!(f.parts, p.parts.len() as u64);
            }
            if let Ok(l) = sw::decode::<sw::Lifecycle>(body) {
                for r in lifecycle::abort_rules(&l) {
                    let _ = lifecycle::abort_at(i64::MAX, r.days);
                    let _ = lifecycle::abort_at(i64::MIN, r.days);
                }
            }
            let _ = sw::decode::<sw::ErrorBody>(body);
        }
    }

    /// A well-formed listing decodes to exactly its values.
    #[test]
    fn s3_uploads_round_trip(
        keys in prop::collection::vec("[a-zA-Z0-9/._-]{1,30}", 0..20),
        sizes in prop::collection::vec(0u64..(1 << 40), 0..20),
    ) {
        use upload_session_exporter::kinds::s3::{self, wire as sw};
        let mut xml = String::from("<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>");
        for (i, k) in keys.iter().enumerate() {
            xml.push_str(&format!(
                "<Upload><Key>{k}</Key><UploadId>id{i}</UploadId><Initiator><ID>o{i}</ID></Initiator>\
                 <Initiated>2026-12-01T10:30:00.000Z</Initiated></Upload>"
            ));
        }
        xml.push_str("</ListMultipartUploadsResult>");
        let p: sw::UploadsPage = sw::decode(xml.as_bytes()).unwrap();
        prop_assert_eq!(p.uploads.len(), keys.len());
        for (i, (u, k)) in p.uploads.iter().zip(&keys).enumerate() {
            let s = s3::to_model(u, None, None).unwrap();
            prop_assert_eq!(s.path.as_deref(), Some(k.as_str()));
            prop_assert_eq!(s.id, format!("id{i}"));
            prop_assert_eq!(s.owner_id, format!("o{i}"));
        }
        let mut parts = String::from("<ListPartsResult>");
        for (i, n) in sizes.iter().enumerate() {
            parts.push_str(&format!("<Part><PartNumber>{}</PartNumber><Size>{n}</Size></Part>", i + 1));
        }
        parts.push_str("</ListPartsResult>");
        let p: sw::PartsPage = sw::decode(parts.as_bytes()).unwrap();
        let f = s3::figures(&p.parts);
        prop_assert_eq!(f.bytes, sizes.iter().sum::<u64>());
        prop_assert_eq!(f.parts, sizes.len() as u64);
    }
}
