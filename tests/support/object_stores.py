"""Set-up and inspection of the throwaway object stores the tests start.

Run by tests/support/object_stores.rs with the .venv Python that scripts/test
fills (moto[server], which brings boto3, and azure-storage-blob):

  s3-setup PORT BUCKET          create an IAM user allowed everything, its access
                                key, and BUCKET; print "KEY_ID SECRET"
  s3-uploads PORT KEY SECRET BUCKET
                                print the keys of the multipart uploads in progress
  s3-public-read PORT KEY SECRET BUCKET OBJECT
                                let anyone read OBJECT (its ACL: public-read)
  azure-container PORT CONTAINER
                                create CONTAINER on Azurite's blob service
  azure-sas CONTAINER           print a SAS token for CONTAINER (read, write,
                                delete, list; an hour)

The moto server enforces signatures after its first three requests (it runs with
INITIAL_NO_AUTH_ACTION_COUNT=3): exactly the three IAM calls of s3-setup.
"""

import json
import sys


def s3_client(port, key, secret, service="s3"):
    import boto3

    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


def s3_setup(port, bucket):
    iam = s3_client(port, "setup", "setup", service="iam")
    iam.create_user(UserName="cellar")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="cellar", PolicyName="everything", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="cellar")["AccessKey"]
    s3_client(port, key["AccessKeyId"], key["SecretAccessKey"]).create_bucket(Bucket=bucket)
    print(key["AccessKeyId"], key["SecretAccessKey"])


def s3_uploads(port, key, secret, bucket):
    uploads = s3_client(port, key, secret).list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for upload in uploads:
        print(upload["Key"])


def s3_public_read(port, key, secret, bucket, name):
    s3_client(port, key, secret).put_object_acl(Bucket=bucket, Key=name, ACL="public-read")


# Azurite's well-known development account.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azure_container(port, container):
    from azure.storage.blob import BlobServiceClient

    url = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    service = BlobServiceClient(url, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY})
    service.create_container(container)


def azure_sas(container):
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    permission = ContainerSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True)
    expiry = datetime.now(timezone.utc) + timedelta(hours=1)
    print(generate_container_sas(AZURITE_ACCOUNT, container, account_key=AZURITE_KEY, permission=permission, expiry=expiry))


def main(argv):
    commands = {
        "s3-setup": s3_setup,
        "s3-uploads": s3_uploads,
        "s3-public-read": s3_public_read,
        "azure-container": azure_container,
        "azure-sas": azure_sas,
    }
    if len(argv) < 2 or argv[1] not in commands:
        sys.exit(f"usage: {argv[0]} {'|'.join(commands)} ARGS...")
    commands[argv[1]](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
