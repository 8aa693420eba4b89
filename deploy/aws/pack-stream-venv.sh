#!/usr/bin/env bash
# Pack the stream job's virtualenv for EMR Serverless: build/emr/tweetdesk-venv.tar.gz (see docs/deploy-aws.md).
# Needs what deploy/build-image.sh needs, plus the Amazon Linux 2023 base image (public.ecr.aws).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d build/image/wheels ] || deploy/build-image.sh
python3 -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir build/image/wheels "venv-pack==0.2.0"
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
buildah bud --layers --network host -f deploy/aws/emr-venv.Containerfile -t localhost/tweetdesk-emr-venv build/image
ctr=$(buildah from localhost/tweetdesk-emr-venv)
trap 'buildah rm "$ctr" >/dev/null' EXIT
mkdir -p build/emr
cp "$(buildah mount "$ctr")/tweetdesk-venv.tar.gz" build/emr/
cp deploy/aws/stream_entry.py build/emr/
echo "pack-stream-venv: build/emr/tweetdesk-venv.tar.gz and build/emr/stream_entry.py: upload both to s3://<CodeBucket>/stream/"
