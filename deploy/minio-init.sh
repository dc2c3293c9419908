#!/bin/sh
# One-shot MinIO initialisation for docker-compose.yaml (service minio-init, image minio/mc):
# create the mirror's bucket and let anonymous users read the published repository only, which is
# what nginx (standing in for CloudFront) and Composer clients need. The policy is
# deploy/bucket-policy.json, generated from the code's list of public keys
# (python -m composer_mirror.store.bucket_policy --bucket composer-mirror --prefix repo): uploaded
# SBOMs (sboms/) and the mirror's state (mirror-state/) stay private even on MinIO's own port.
# Anonymous users get no listing and no writes. Safe to run again: the policy is replaced.
set -eu

: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${COMPOSER_MIRROR_BUCKET:?}" "${BUCKET_POLICY:?}"
MINIO_URL="${MINIO_URL:-http://minio:9000}"

attempt=0
until mc alias set local "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 30 ]; then
    echo "minio-init: $MINIO_URL is not answering" >&2
    exit 1
  fi
  sleep 2
done

mc mb --ignore-existing "local/$COMPOSER_MIRROR_BUCKET"
mc anonymous set-json "$BUCKET_POLICY" "local/$COMPOSER_MIRROR_BUCKET"
mc anonymous get-json "local/$COMPOSER_MIRROR_BUCKET"
echo "minio-init: bucket $COMPOSER_MIRROR_BUCKET is ready (anonymous reads of the repository only)"
