//! S3's wire format: XML answers and error bodies, a small XML reader for
//! the request bodies S3 takes (complete, lifecycle), timestamps.

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use rand::Rng;
use time::OffsetDateTime;

use crate::http::{HttpResponse, SimBody};

/// `Content-Type` of XML answers.
pub(crate) const XML: &str = "application/xml";
/// Namespace of every S3 answer document.
pub(crate) const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// XML declaration of answers.
pub(crate) const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// A response before it becomes hyper's type.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Bytes,
    pub(crate) headers: Vec<(&'static str, String)>,
    /// A generated body sent instead of `body` (oversized faults, objects).
    pub(crate) generated: Option<SimBody>,
    /// HEAD: headers only (the length is still announced).
    pub(crate) head: bool,
}

impl Reply {
    pub(crate) fn raw(status: StatusCode, content_type: &str, body: Bytes) -> Self {
        Self {
            status,
            content_type: Some(content_type.to_owned()),
            body,
            headers: Vec::new(),
            generated: None,
            head: false,
        }
    }

    /// HTTP 200 with an XML document.
    pub(crate) fn xml(doc: String) -> Self {
        Self::raw(StatusCode::OK, XML, Bytes::from(doc))
    }

    /// A bodiless answer.
    pub(crate) fn empty(status: StatusCode) -> Self {
        Self {
            status,
            content_type: None,
            body: Bytes::new(),
            headers: Vec::new(),
            generated: None,
            head: false,
        }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn into_response(self, request_id: &str) -> HttpResponse {
        let len = match &self.generated {
            Some(_) => None,
            None => Some(self.body.len()),
        };
        let body = if self.head {
            SimBody::whole(Bytes::new())
        } else {
            self.generated.unwrap_or_else(|| SimBody::whole(self.body))
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        if let Some(ct) = self.content_type {
            if let Ok(v) = HeaderValue::from_str(&ct) {
                h.insert(CONTENT_TYPE, v);
            }
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.append(name, v);
            }
        }
        if self.head {
            if let Some(n) = len {
                if !h.contains_key("content-length") {
                    h.insert("content-length", HeaderValue::from(n));
                }
            }
        }
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert("x-amz-request-id", v);
        }
        h.insert("server", HeaderValue::from_static("AmazonS3"));
        resp
    }
}

/// A fresh request id (16 upper-case hex digits, like S3's).
pub(crate) fn request_id() -> String {
    let n: u64 = rand::rng().random();
    format!("{n:016X}")
}

/// An S3 error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Error {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// `Resource`: the request path.
    pub(crate) resource: String,
    /// Extra elements after `Message` (e.g. `BucketName`, `UploadId`).
    pub(crate) extra: Vec<(&'static str, String)>,
    /// Extra headers (e.g. `Retry-After`).
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl S3Error {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            resource: String::new(),
            extra: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    pub(crate) fn access_denied() -> Self {
        Self::new(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied")
    }

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidArgument", message)
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }

    pub(crate) fn malformed_xml() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema",
        )
    }

    pub(crate) fn no_such_bucket(bucket: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist",
        )
        .with("BucketName", bucket)
    }

    pub(crate) fn no_such_upload(upload_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
        )
        .with("UploadId", upload_id)
    }

    pub(crate) fn no_such_key(key: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        )
        .with("Key", key)
    }

    pub(crate) fn slow_down(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        );
        e.headers.push(("retry-after", retry_after.to_string()));
        e
    }

    /// An error answer with this code and the status S3 gives it (500 for
    /// codes it does not know).
    pub(crate) fn from_code(code: &str, message: &str) -> Self {
        let status = status_of(code);
        let code: &'static str = KNOWN_CODES
            .iter()
            .find(|(c, _)| *c == code)
            .map_or("InternalError", |(c, _)| c);
        Self::new(status, code, message)
    }

    pub(crate) fn reply(&self, request_id: &str) -> Reply {
        let mut x = Xml::new();
        x.open("Error");
        x.leaf("Code", self.code);
        x.leaf("Message", &self.message);
        for (k, v) in &self.extra {
            x.leaf(k, v);
        }
        if !self.resource.is_empty() {
            x.leaf("Resource", &self.resource);
        }
        x.leaf("RequestId", request_id);
        x.close("Error");
        let mut r = Reply::raw(self.status, XML, Bytes::from(x.finish()));
        r.headers.extend(self.headers.iter().cloned());
        r
    }
}

/// Error codes and their statuses.
const KNOWN_CODES: [(&str, u16); 24] = [
    ("AccessDenied", 403),
    ("InvalidAccessKeyId", 403),
    ("SignatureDoesNotMatch", 403),
    ("RequestTimeTooSkewed", 403),
    ("ExpiredToken", 400),
    ("InvalidToken", 400),
    ("NoSuchBucket", 404),
    ("NoSuchUpload", 404),
    ("NoSuchKey", 404),
    ("NoSuchLifecycleConfiguration", 404),
    ("SlowDown", 503),
    ("ServiceUnavailable", 503),
    ("InternalError", 500),
    ("InvalidArgument", 400),
    ("InvalidRequest", 400),
    ("MalformedXML", 400),
    ("InvalidPart", 400),
    ("InvalidPartOrder", 400),
    ("EntityTooLarge", 400),
    ("InvalidBucketName", 400),
    ("BucketAlreadyOwnedByYou", 409),
    ("BucketNotEmpty", 409),
    ("MethodNotAllowed", 405),
    ("NotImplemented", 501),
];

fn status_of(code: &str) -> StatusCode {
    KNOWN_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .and_then(|(_, s)| StatusCode::from_u16(*s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Escapes text for XML element content.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                out.push_str(&format!("&#x{:X};", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// A tiny XML writer.
#[derive(Debug)]
pub(crate) struct Xml(String);

impl Xml {
    pub(crate) fn new() -> Self {
        Self(DECL.to_owned())
    }

    /// Opens the root element with S3's namespace.
    pub(crate) fn root(&mut self, name: &str) {
        self.0.push_str(&format!("<{name} xmlns=\"{NS}\">"));
    }

    pub(crate) fn open(&mut self, name: &str) {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
    }

    pub(crate) fn close(&mut self, name: &str) {
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
    }

    pub(crate) fn leaf(&mut self, name: &str, text: &str) {
        self.open(name);
        self.0.push_str(&escape(text));
        self.close(name);
    }

    pub(crate) fn finish(self) -> String {
        self.0
    }
}

/// Timestamps as S3 lists them: `2025-03-14T09:26:53.123Z`.
pub(crate) fn format_ts(t: OffsetDateTime) -> String {
    crate::clock::format_ts(t)
}

/// `Last-Modified` header format (RFC 7231).
pub(crate) fn http_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let wd = match t.weekday() {
        time::Weekday::Monday => "Mon",
        time::Weekday::Tuesday => "Tue",
        time::Weekday::Wednesday => "Wed",
        time::Weekday::Thursday => "Thu",
        time::Weekday::Friday => "Fri",
        time::Weekday::Saturday => "Sat",
        time::Weekday::Sunday => "Sun",
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS[usize::from(u8::from(t.month())).saturating_sub(1) % 12];
    format!(
        "{wd}, {:02} {m} {:04} {:02}:{:02}:{:02} GMT",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

// ------------------------------------------------------------ XML reading

/// An element of a parsed document: its local name (prefix dropped),
/// children and text (the concatenation of its text nodes, untrimmed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) children: Vec<Element>,
    pub(crate) text: String,
}

impl Element {
    /// The first child called `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child called `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child called `name`.
    pub(crate) fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
}

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 32;

/// Parses a document (declaration, comments and processing instructions
/// skipped, attributes ignored, the five entities and character references
/// decoded, no DTD). `None` if it is not well-formed.
pub(crate) fn parse(input: &str) -> Option<Element> {
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut rest = input.trim_start_matches('\u{feff}');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<?") {
            rest = &after[after.find("?>")? + 2..];
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = &after[after.find("-->")? + 3..];
        } else if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>")?;
            stack.last_mut()?.text.push_str(&after[..end]);
            rest = &after[end + 3..];
        } else if rest.starts_with("<!") {
            return None; // DTDs are refused
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>')?;
            let name = local(after[..end].trim());
            let done = stack.pop()?;
            if done.name != name {
                return None;
            }
            match stack.last_mut() {
                Some(parent) => parent.children.push(done),
                None => {
                    if root.is_some() {
                        return None;
                    }
                    root = Some(done);
                }
            }
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('<') {
            let end = after.find('>')?;
            let tag = &after[..end];
            let (tag, self_closing) = match tag.strip_suffix('/') {
                Some(t) => (t, true),
                None => (tag, false),
            };
            let name = local(tag.split_whitespace().next()?);
            if name.is_empty() || root.is_some() || stack.len() >= MAX_DEPTH {
                return None;
            }
            let el = Element {
                name: name.to_owned(),
                ..Element::default()
            };
            if self_closing {
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            } else {
                stack.push(el);
            }
            rest = &after[end + 1..];
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..end];
            match stack.last_mut() {
                Some(el) => el.text.push_str(&unescape(text)?),
                None if text.trim().is_empty() => {}
                None => return None,
            }
            rest = &rest[end..];
        }
    }
    if !stack.is_empty() {
        return None;
    }
    root
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';')?;
        let ent = &after[..end];
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let n = if let Some(h) = ent.strip_prefix("#x").or_else(|| ent.strip_prefix("#X")) {
                    u32::from_str_radix(h, 16).ok()?
                } else {
                    ent.strip_prefix('#')?.parse().ok()?
                };
                char::from_u32(n)?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_clients_send() {
        let doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part><ETag>&quot;abc&quot;</ETag><PartNumber>1</PartNumber></Part><!-- c --><Part><PartNumber>2</PartNumber><ETag>\"def\"</ETag></Part><Empty/></CompleteMultipartUpload>";
        let e = parse(doc).unwrap();
        assert_eq!(e.name, "CompleteMultipartUpload");
        let parts: Vec<_> = e.all("Part").collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].text_of("ETag"), Some("\"abc\""));
        assert_eq!(parts[1].text_of("PartNumber"), Some("2"));
        assert!(e.child("Empty").is_some());
        assert_eq!(
            parse("<a:b xmlns:a='x'>&#x41;&#66;<![CDATA[<c>]]></a:b>")
                .unwrap()
                .text,
            "AB<c>"
        );
    }

    #[test]
    fn refuses_what_is_not_well_formed() {
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "<a></a><b></b>",
            "text<a></a>",
            "<a>&nope;</a>",
            "<!DOCTYPE a><a></a>",
            "<a><b></a></b>",
            "</a>",
            "<a",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert_eq!(parse(&deep), None);
    }

    #[test]
    fn errors_are_s3_xml() {
        let e = S3Error::no_such_upload("u1");
        let r = e.reply("RID");
        let text = String::from_utf8(r.body.to_vec()).unwrap();
        assert!(text.contains("<Code>NoSuchUpload</Code>"), "{text}");
        assert!(text.contains("<UploadId>u1</UploadId>"), "{text}");
        assert!(text.contains("<RequestId>RID</RequestId>"), "{text}");
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(
            S3Error::from_code("SlowDown", "m").status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(S3Error::from_code("Whatever", "m").code, "InternalError");
        assert_eq!(escape("a<&>\"'\u{1}"), "a&lt;&amp;&gt;&quot;&apos;&#x1;");
        assert_eq!(
            http_date(time::macros::datetime!(2025-03-14 09:26:53 UTC)),
            "Fri, 14 Mar 2025 09:26:53 GMT"
        );
    }
}
