"""Seeds moto's standalone S3 server through boto3 for tests/child_process/s3_moto.rs:
a bucket with incomplete multipart uploads of known part sizes and an abort
rule, then prints what S3 lists, as JSON, for the Rust test to compare with
the exporter's figures."""
import json
import sys

import boto3
from botocore.config import Config

endpoint = sys.argv[1]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
    config=Config(s3={"addressing_style": "path"}),
)
s3.create_bucket(Bucket="uploads")
plan = {
    "in/a.bin": [5 * 1024 * 1024, 5 * 1024 * 1024, 1000],
    "in/b b+c.bin": [300],
    "other/c.bin": [],
}
for key, sizes in plan.items():
    up = s3.create_multipart_upload(Bucket="uploads", Key=key)
    for n, size in enumerate(sizes, start=1):
        s3.upload_part(
            Bucket="uploads", Key=key, UploadId=up["UploadId"], PartNumber=n, Body=b"x" * size
        )
# A completed upload is not listed any more.
done = s3.create_multipart_upload(Bucket="uploads", Key="done.bin")
etag = s3.upload_part(
    Bucket="uploads", Key="done.bin", UploadId=done["UploadId"], PartNumber=1, Body=b"y" * 10
)["ETag"]
s3.complete_multipart_upload(
    Bucket="uploads",
    Key="done.bin",
    UploadId=done["UploadId"],
    MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]},
)
s3.put_bucket_lifecycle_configuration(
    Bucket="uploads",
    LifecycleConfiguration={
        "Rules": [
            {
                "ID": "abort",
                "Filter": {"Prefix": ""},
                "Status": "Enabled",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3},
            }
        ]
    },
)
listed = s3.list_multipart_uploads(Bucket="uploads")["Uploads"]
out = []
for u in listed:
    parts = s3.list_parts(Bucket="uploads", Key=u["Key"], UploadId=u["UploadId"]).get("Parts", [])
    out.append(
        {
            "key": u["Key"],
            "initiator": u["Initiator"]["ID"],
            "initiated_ms": int(u["Initiated"].timestamp() * 1000),
            "bytes": sum(p["Size"] for p in parts),
            "parts": len(parts),
        }
    )
print(json.dumps(out))
