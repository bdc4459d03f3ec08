#!/bin/sh
# Pin every image of docker-compose.yml by digest: `name:tag` becomes `name:tag@sha256:<digest>` (the digest of the
# tag's multi-platform index, as the registry serves it now). Run it where the registry is reachable, review the
# diff, commit it; run it again to move to newer images on purpose. An image already pinned is left as it is.
# Needs `docker buildx` (it reads the registry; nothing is pulled).
set -eu
compose="${1:-$(dirname "$0")/../docker-compose.yml}"
for image in $(sed -n 's/^ *image: *\([^ #]*\).*/\1/p' "$compose" | sort -u); do
  case "$image" in
    *@sha256:*) continue ;;          # already pinned
    booking-saga:*) continue ;;      # built here (the Dockerfile), not pulled
  esac
  digest=$(docker buildx imagetools inspect "$image" --format '{{json .Manifest.Digest}}' | tr -d '"')
  case "$digest" in
    sha256:????????????????????????????????????????????????????????????????) ;;
    *) echo "no digest for $image: $digest" >&2; exit 1 ;;
  esac
  echo "$image -> $image@$digest"
  sed -i.bak "s|image: *$image\$|image: $image@$digest|" "$compose"
done
rm -f "$compose.bak"
