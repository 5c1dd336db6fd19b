"""The stack's export bucket: where DynamoDB's point-in-time exports land and the backfill reads them.

SSE-KMS with the stack key and an S3 Bucket Key (one data key per bucket and time window instead of
one KMS call per object), every kind of public access blocked, ACLs disabled (BucketOwnerEnforced:
the bucket owner owns every object, whoever wrote it), and a bucket policy refusing any request
without TLS.

No statement lets DynamoDB write: an export writes with the credentials of whoever requests it
(`s3:PutObject`, `s3:AbortMultipartUpload`, `s3:PutObjectAcl` in that caller's IAM policy, and the
stack key's `kms:GenerateDataKey`), and a bucket policy grant is needed only for an exporter in
another account, which ddbsync does not do.

No versioning: each export writes a new `<prefix>/AWSDynamoDB/<ExportId>/` folder and never
overwrites an object, so versions would only keep deleted exports (and their cost) around until a
noncurrent-version rule expired them. Outside dev the bucket is `protect`ed instead, like the key.

Lifecycle (from `exportTransitionDays`, `exportTransitionStorageClass`, `exportExpirationDays`; none by
default): every object moves to the storage class, and is deleted, that many days after it was written, and
an upload left unfinished (exports write data files in parts) is cleared after a week. An expiry removes
exports whole, full and incremental alike: keep it longer than the time between full exports plus the
incremental ones a restore needs after the last of them. The schedules are in `infra/export_schedule.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class ExportsArgs:
    kms_key_arn: pulumi.Input[str]
    # `pulumi destroy` refuses to delete the bucket (and the exports in it); otherwise it empties and deletes it.
    protect: bool = False
    # Lifecycle: days after which objects move to `transition_storage_class`, and are deleted; 0: never.
    transition_days: int = 0
    transition_storage_class: str = "STANDARD_IA"
    expiration_days: int = 0


class Exports(pulumi.ComponentResource):
    """The export bucket, encrypted with the stack key, private, owner-enforced and TLS only."""

    def __init__(self, name: str, args: ExportsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ddbsync:infra:Exports", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Named by Pulumi from `name` plus a random suffix: bucket names are global across accounts.
        self.bucket = aws.s3.Bucket(
            name,
            force_destroy=not args.protect,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        stack_key = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
            sse_algorithm="aws:kms", kms_master_key_id=args.kms_key_arn
        )
        self.encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=stack_key, bucket_key_enabled=True
                )
            ],
            opts=child,
        )
        self.public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        self.ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        self.policy_document = self.bucket.arn.apply(lambda arn: json.dumps(bucket_policy(arn)))
        self.policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=self.bucket.id,
            policy=self.policy_document,
            # S3 refuses a policy while the public access block is being changed: one after the other.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.public_access_block]),
        )
        self.lifecycle: aws.s3.BucketLifecycleConfiguration | None = None
        if args.transition_days or args.expiration_days:
            transition = aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(
                days=args.transition_days, storage_class=args.transition_storage_class
            )
            self.lifecycle = aws.s3.BucketLifecycleConfiguration(
                f"{name}-lifecycle",
                bucket=self.bucket.id,
                rules=[
                    aws.s3.BucketLifecycleConfigurationRuleArgs(
                        id="exports",
                        status="Enabled",
                        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),  # every object
                        transitions=[transition] if args.transition_days else None,
                        expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=args.expiration_days)
                        if args.expiration_days
                        else None,
                        abort_incomplete_multipart_upload=(
                            aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                                days_after_initiation=7
                            )
                        ),
                    )
                ],
                opts=child,
            )
        self.bucket_name: pulumi.Output[str] = self.bucket.bucket
        self.bucket_arn: pulumi.Output[str] = self.bucket.arn
        self.objects_arn: pulumi.Output[str] = pulumi.Output.concat(self.bucket.arn, "/*")
        self.register_outputs({"bucket": self.bucket.bucket})


def bucket_policy(bucket_arn: str) -> dict:
    """Deny every request to the bucket or its objects that does not come over TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
