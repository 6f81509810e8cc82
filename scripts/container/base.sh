#!/usr/bin/env bash
# Make sure podman has an image under the Dockerfile's FROM tag (python:3.12.8-slim-bookworm), so the Dockerfile
# builds unmodified on a machine that reaches no container registry.
#
# If podman already has that image (a real one, or our stand-in from an earlier run) it is used as it is. Else a
# stand-in is made from Debian bookworm with debootstrap and imported under the exact tag. Its root file system is
# cached as a tarball under .cache/container/, keyed by the tag and by this script, so a fresh podman storage
# re-imports in seconds instead of re-bootstrapping.
#
# What the stand-in approximates (README, "Run the container anywhere"): the same Debian release, with Debian's
# python3 (3.11, not 3.12.8), its pip and CA certificates; `python` on PATH at /usr/local/bin/python as in the
# real image; no EXTERNALLY-MANAGED marker (the real image's python is not Debian's); ENV and CMD like the real
# image's. It is bigger (Debian's python3 pulls more) and its pip trusts Debian's CA bundle.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/container/env.sh

tags="$(sed -n 's/^FROM[[:space:]]\{1,\}\([^[:space:]]\{1,\}\).*/\1/p' Dockerfile | sort -u)"
if [ "$(printf '%s\n' "$tags" | wc -l)" -ne 1 ]; then
  echo "base.sh: expected one base image in Dockerfile, found: $tags" >&2; exit 2
fi
tag="$tags"
case "$tag" in
  python:*-bookworm) ;;
  *) echo "base.sh: can only stand in for python:*-slim-bookworm, not $tag" >&2; exit 2 ;;
esac
# podman resolves the short name python:... to docker.io/library/python:...; import under that full name.
image="docker.io/library/$tag"
key="${tag//[:\/]/_}-$(sha256sum "$0" | cut -c1-12)"
cache=".cache/container/$key"

if podman image exists "$image"; then
  made_by="$(podman image inspect --format '{{ index .Labels "dbtgate.stand-in" }}' "$image" 2>/dev/null || true)"
  # A real image (no label) or the stand-in of this recipe: done. A stand-in of an older recipe: replace it.
  if [ "$made_by" = "" ] || [ "$made_by" = "<no value>" ] || [ "$made_by" = "$key" ]; then
    exit 0
  fi
fi

if [ ! -f "$cache/rootfs.tar" ]; then
  echo "Making the stand-in for $tag with debootstrap (once; cached in $cache) ..." >&2
  work="$(mktemp -d "${TMPDIR:-/tmp}/dbtgate-base.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  mirror="$(sed -n 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)"
  debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates bookworm "$work/rootfs" \
    "${mirror:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  root="$work/rootfs"
  # The real image's python and pip live in /usr/local/bin, and `python` is one of them.
  ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
  ln -sf /usr/bin/python3 "$root/usr/local/bin/python3"
  # PEP 668: Debian's marker makes pip refuse system installs; the real image has none.
  rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  # Like Debian's slim images: no apt lists, no package caches, no docs, no translations. Also what each
  # container start costs here: vfs copies the whole image for every container.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
         "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  mkdir -p "$cache"
  # Stand-ins of older recipes of this tag are dead weight (about 200 MB each).
  find .cache/container -mindepth 1 -maxdepth 1 -name "${tag//[:\/]/_}-*" ! -name "$key" -exec rm -rf {} +
  tar --numeric-owner --xattrs -C "$root" --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' \
      -cf "$cache/rootfs.tar.tmp" .
  mv "$cache/rootfs.tar.tmp" "$cache/rootfs.tar"
fi

echo "Importing the stand-in $image from $cache ..." >&2
podman image rm --force "$image" >/dev/null 2>&1 || true
# PATH exactly as the real image has it (its /usr/local/bin:$PATH repeats /usr/local/bin).
podman import --quiet \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --change "LABEL dbtgate.stand-in=$key" \
  "$cache/rootfs.tar" "$image" >/dev/null
