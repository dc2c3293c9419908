#!/bin/sh
# One-shot MinIO initialisation for docker-compose.yaml (service minio-init, image minio/mc):
# create the mirror's bucket and allow anonymous reads (download) of its objects, which is what
# nginx (standing in for CloudFront) and Composer clients need. Anonymous users get no listing
# and no writes. Safe to run again.
set -eu

: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${COMPOSER_MIRROR_BUCKET:?}"
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
mc anonymous set download "local/$COMPOSER_MIRROR_BUCKET"
mc anonymous get "local/$COMPOSER_MIRROR_BUCKET"
echo "minio-init: bucket $COMPOSER_MIRROR_BUCKET is ready (anonymous download)"
