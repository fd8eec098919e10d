"""boto3 as a real client of the simulator's S3 side.

Run by sim/tests/s3_boto3.rs:
    python s3_boto3.py ENDPOINT ACCESS_KEY_ID SECRET INITIATOR_ARN DOMAIN

DOMAIN is the simulator's virtual-hosted domain: the last checks address
buckets as DOMAIN's subdomains, with ENDPOINT as the HTTP proxy (the names
never resolve; the proxy gets the whole URL).

Every check compares exact values; any mismatch is printed and the script
exits 1. Parts are small (1 KiB to 3 KiB): the simulator does not enforce
S3's 5 MiB minimum part size, so the test stays fast.
"""

import hashlib
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT, AKID, SECRET, ARN, DOMAIN = sys.argv[1:6]
BUCKET = "boto-bucket"
failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, want {want!r}")
        print(f"FAIL {what}: got {got!r}, want {want!r}")
    else:
        print(f"ok   {what}")


def client(akid=AKID, secret=SECRET):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def error_of(fn, **kw):
    """(code, HTTP status) of the ClientError fn raises, or None."""
    try:
        fn(**kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None


s3 = client()

# Buckets.
s3.create_bucket(Bucket=BUCKET)
check("list_buckets names", [b["Name"] for b in s3.list_buckets()["Buckets"]], [BUCKET])
check(
    "create_bucket twice",
    error_of(s3.create_bucket, Bucket=BUCKET),
    ("BucketAlreadyOwnedByYou", 409),
)

# A whole multipart upload.
key = "big/object.bin"
up = s3.create_multipart_upload(Bucket=BUCKET, Key=key)
check("create Bucket/Key", (up["Bucket"], up["Key"]), (BUCKET, key))
uid = up["UploadId"]
bodies = [b"a" * 1024, b"b" * 2048, b"c" * 3072]
etags = []
for n, body in enumerate(bodies, start=1):
    r = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=n, Body=body)
    check(f"part {n} ETag", r["ETag"], '"%s"' % hashlib.md5(body).hexdigest())
    etags.append(r["ETag"])

r = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=uid, MaxParts=2)
check("list_parts page 1", [p["PartNumber"] for p in r["Parts"]], [1, 2])
check("list_parts sizes", [p["Size"] for p in r["Parts"]], [1024, 2048])
check("list_parts ETags", [p["ETag"] for p in r["Parts"]], etags[:2])
check("list_parts truncated", (r["IsTruncated"], r["NextPartNumberMarker"], r["MaxParts"]), (True, 2, 2))
check("list_parts initiator", r["Initiator"]["ID"], ARN)
check("list_parts storage class", r["StorageClass"], "STANDARD")
r = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=uid, PartNumberMarker=2)
check("list_parts page 2", [p["PartNumber"] for p in r["Parts"]], [3])
check("list_parts page 2 markers", (r["IsTruncated"], r["PartNumberMarker"], r["NextPartNumberMarker"]), (False, 2, 3))
pages = list(
    s3.get_paginator("list_parts").paginate(
        Bucket=BUCKET, Key=key, UploadId=uid, PaginationConfig={"PageSize": 1}
    )
)
check("list_parts paginator pages", len(pages), 3)
check("list_parts paginator parts", [p["PartNumber"] for pg in pages for p in pg["Parts"]], [1, 2, 3])

check(
    "complete out of order",
    error_of(
        s3.complete_multipart_upload,
        Bucket=BUCKET,
        Key=key,
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": etags[1]}, {"PartNumber": 1, "ETag": etags[0]}]},
    ),
    ("InvalidPartOrder", 400),
)
check(
    "complete wrong ETag",
    error_of(
        s3.complete_multipart_upload,
        Bucket=BUCKET,
        Key=key,
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etags[1]}]},
    ),
    ("InvalidPart", 400),
)
done = s3.complete_multipart_upload(
    Bucket=BUCKET,
    Key=key,
    UploadId=uid,
    MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]},
)
md5s = b"".join(hashlib.md5(b).digest() for b in bodies)
want_etag = '"%s-3"' % hashlib.md5(md5s).hexdigest()
check("complete ETag", done["ETag"], want_etag)
check("complete Bucket/Key", (done["Bucket"], done["Key"]), (BUCKET, key))
head = s3.head_object(Bucket=BUCKET, Key=key)
check("head_object size", head["ContentLength"], 6144)
check("head_object ETag", head["ETag"], want_etag)
check("completed upload not listed", s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []), [])
check("list_parts after complete", error_of(s3.list_parts, Bucket=BUCKET, Key=key, UploadId=uid), ("NoSuchUpload", 404))
check("head_object missing", error_of(s3.head_object, Bucket=BUCKET, Key="nope"), ("404", 404))
check("get_object missing", error_of(s3.get_object, Bucket=BUCKET, Key="nope"), ("NoSuchKey", 404))
s3.put_object(Bucket=BUCKET, Key="small.txt", Body=b"hello")
check("put_object then get", s3.get_object(Bucket=BUCKET, Key="small.txt")["ContentLength"], 5)

# Several uploads, paged.
keys = ["k/a", "k/b", "k/b", "k/c", "k/d"]
ids = [s3.create_multipart_upload(Bucket=BUCKET, Key=k)["UploadId"] for k in keys]
r = s3.list_multipart_uploads(Bucket=BUCKET, MaxUploads=2)
check("uploads page 1 keys", [u["Key"] for u in r["Uploads"]], ["k/a", "k/b"])
check("uploads page 1 ids", [u["UploadId"] for u in r["Uploads"]], ids[:2])
check("uploads page 1 truncated", (r["IsTruncated"], r["MaxUploads"]), (True, 2))
check("uploads page 1 next markers", (r["NextKeyMarker"], r["NextUploadIdMarker"]), ("k/b", ids[1]))
u0 = r["Uploads"][0]
check("upload initiator", (u0["Initiator"]["ID"], u0["Initiator"]["DisplayName"]), (ARN, "demo"))
check("upload owner display name", u0["Owner"]["DisplayName"], "sim-owner")
check("upload storage class", u0["StorageClass"], "STANDARD")
check("upload initiated has tz", u0["Initiated"].utcoffset() is not None, True)
r = s3.list_multipart_uploads(Bucket=BUCKET, MaxUploads=2, KeyMarker=r["NextKeyMarker"], UploadIdMarker=r["NextUploadIdMarker"])
check("uploads page 2 ids", [u["UploadId"] for u in r["Uploads"]], ids[2:4])
check("uploads page 2 markers echoed", (r["KeyMarker"], r["UploadIdMarker"]), ("k/b", ids[1]))
check("uploads page 2 next", (r["IsTruncated"], r["NextKeyMarker"], r["NextUploadIdMarker"]), (True, "k/c", ids[3]))
r = s3.list_multipart_uploads(Bucket=BUCKET, MaxUploads=2, KeyMarker="k/c", UploadIdMarker=ids[3])
check("uploads page 3", ([u["UploadId"] for u in r["Uploads"]], r["IsTruncated"]), ([ids[4]], False))
r = s3.list_multipart_uploads(Bucket=BUCKET, KeyMarker="k/b")
check("key marker alone skips the key", [u["Key"] for u in r["Uploads"]], ["k/c", "k/d"])
r = s3.list_multipart_uploads(Bucket=BUCKET, Prefix="k/b")
check("prefix", [u["UploadId"] for u in r["Uploads"]], ids[1:3])
pages = list(s3.get_paginator("list_multipart_uploads").paginate(Bucket=BUCKET, PaginationConfig={"PageSize": 2}))
check("uploads paginator pages", len(pages), 3)
check("uploads paginator ids", [u["UploadId"] for pg in pages for u in pg.get("Uploads", [])], ids)
check("max-uploads 1001", error_of(s3.list_multipart_uploads, Bucket=BUCKET, MaxUploads=1001), ("InvalidArgument", 400))

# A key that needs encoding, signed and listed.
odd = "dir/a b+c~é.txt"
oid = s3.create_multipart_upload(Bucket=BUCKET, Key=odd)["UploadId"]
s3.upload_part(Bucket=BUCKET, Key=odd, UploadId=oid, PartNumber=1, Body=b"x")
check("odd key list_parts", [p["Size"] for p in s3.list_parts(Bucket=BUCKET, Key=odd, UploadId=oid)["Parts"]], [1])
r = s3.list_multipart_uploads(Bucket=BUCKET, Prefix="dir/")
check("odd key listed", [u["Key"] for u in r["Uploads"]], [odd])
r = s3.list_multipart_uploads(Bucket=BUCKET, Prefix="dir/", EncodingType="url")
check("odd key url-encoded", ([u["Key"] for u in r["Uploads"]], r.get("EncodingType")), (["dir/a%20b%2Bc~%C3%A9.txt"], "url"))

# Abort.
r = s3.abort_multipart_upload(Bucket=BUCKET, Key="k/c", UploadId=ids[3])
check("abort status", r["ResponseMetadata"]["HTTPStatusCode"], 204)
check("abort twice", error_of(s3.abort_multipart_upload, Bucket=BUCKET, Key="k/c", UploadId=ids[3]), ("NoSuchUpload", 404))
r = s3.list_multipart_uploads(Bucket=BUCKET, Prefix="k/")
check("aborted not listed", [u["UploadId"] for u in r["Uploads"]], ids[:3] + ids[4:])
# The marker's upload is gone: the listing resumes after it all the same.
r = s3.list_multipart_uploads(Bucket=BUCKET, KeyMarker="k/c", UploadIdMarker=ids[3])
check("marker of an aborted upload", [u["UploadId"] for u in r["Uploads"]], [ids[4]])

# Lifecycle.
check("no lifecycle", error_of(s3.get_bucket_lifecycle_configuration, Bucket=BUCKET), ("NoSuchLifecycleConfiguration", 404))
rules = [
    {
        "ID": "abort-1d",
        "Filter": {"Prefix": "k/"},
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    },
    {"ID": "expire", "Filter": {}, "Status": "Disabled", "Expiration": {"Days": 30}},
]
s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": rules})
got = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
check("lifecycle rules", got, rules)
s3.delete_bucket_lifecycle(Bucket=BUCKET)
check("lifecycle deleted", error_of(s3.get_bucket_lifecycle_configuration, Bucket=BUCKET), ("NoSuchLifecycleConfiguration", 404))

# Errors.
check("wrong secret", error_of(client(secret=SECRET + "x").list_buckets), ("SignatureDoesNotMatch", 403))
check(
    "wrong secret on a listing",
    error_of(client(secret="x" + SECRET).list_multipart_uploads, Bucket=BUCKET),
    ("SignatureDoesNotMatch", 403),
)
check("unknown key id", error_of(client(akid="AKIAUNKNOWN000000000").list_buckets), ("InvalidAccessKeyId", 403))
check("unknown bucket", error_of(s3.list_multipart_uploads, Bucket="no-such-bucket"), ("NoSuchBucket", 404))
check("unknown upload", error_of(s3.list_parts, Bucket=BUCKET, Key="k/a", UploadId="nope"), ("NoSuchUpload", 404))

# Virtual-hosted style: boto3 puts the bucket in the host name.
PORT = ENDPOINT.rsplit(":", 1)[1]
VBUCKET = "boto-vhost"
vs = boto3.client(
    "s3",
    endpoint_url=f"http://{DOMAIN}:{PORT}",
    region_name="us-east-1",
    aws_access_key_id=AKID,
    aws_secret_access_key=SECRET,
    config=Config(
        s3={"addressing_style": "virtual"},
        proxies={"http": ENDPOINT},
        retries={"max_attempts": 1},
    ),
)
seen_hosts = []
vs.meta.events.register(
    "before-send.s3.*", lambda request, **kw: seen_hosts.append(request.url.split("/")[2])
)
vs.create_bucket(Bucket=VBUCKET)
vkey = "v/dir/a b.bin"
vid = vs.create_multipart_upload(Bucket=VBUCKET, Key=vkey)["UploadId"]
for n, size in [(1, 700), (2, 300)]:
    vs.upload_part(Bucket=VBUCKET, Key=vkey, UploadId=vid, PartNumber=n, Body=b"v" * size)
r = vs.list_multipart_uploads(Bucket=VBUCKET)
check("vhost uploads", ([u["Key"] for u in r["Uploads"]], [u["UploadId"] for u in r["Uploads"]]), ([vkey], [vid]))
r = vs.list_parts(Bucket=VBUCKET, Key=vkey, UploadId=vid)
check("vhost parts", [(p["PartNumber"], p["Size"]) for p in r["Parts"]], [(1, 700), (2, 300)])
vrules = [
    {
        "ID": "abort-2d",
        "Filter": {"Prefix": "v/"},
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
    }
]
vs.put_bucket_lifecycle_configuration(Bucket=VBUCKET, LifecycleConfiguration={"Rules": vrules})
check("vhost lifecycle", vs.get_bucket_lifecycle_configuration(Bucket=VBUCKET)["Rules"], vrules)
check("vhost unknown upload", error_of(vs.list_parts, Bucket=VBUCKET, Key=vkey, UploadId="nope"), ("NoSuchUpload", 404))
check("vhost unknown bucket", error_of(vs.list_multipart_uploads, Bucket="no-such-vhost"), ("NoSuchBucket", 404))
# ListBuckets goes to the domain itself, path-style.
check("vhost list_buckets", [b["Name"] for b in vs.list_buckets()["Buckets"]], [BUCKET, VBUCKET])
host = f"{VBUCKET}.{DOMAIN}:{PORT}"
check(
    "vhost hosts",
    seen_hosts,
    [host] * 9 + [f"no-such-vhost.{DOMAIN}:{PORT}", f"{DOMAIN}:{PORT}"],
)
# The same bucket path-style, at the simulator's own address.
r = s3.list_multipart_uploads(Bucket=VBUCKET)
check("vhost upload listed path-style", [u["UploadId"] for u in r["Uploads"]], [vid])

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("all boto3 checks passed")
