#!/usr/bin/env bash
# Build the Dockerfile, unmodified, with rootful podman on a machine without Docker or a container registry:
# installs podman (Debian packages, once), makes the stand-in base image if podman lacks it (base.sh), builds
# with layer caching so a rebuild only redoes the steps whose inputs changed. Prints the image name last.
#
#   scripts/container/build.sh [IMAGE]      default IMAGE: localhost/dbtgate:dev
set -euo pipefail
cd "$(dirname "$0")/../.."
image="${1:-localhost/dbtgate:dev}"

missing=()
for package in podman buildah runc debootstrap; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: needs root to install ${missing[*]} (rootful podman needs root anyway)" >&2; exit 2
  fi
  echo "Installing ${missing[*]} (Debian packages) ..." >&2
  SECONDS=0
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  echo "Installed in ${SECONDS}s" >&2
fi

source scripts/container/env.sh
SECONDS=0
scripts/container/base.sh
echo "Base image ready after ${SECONDS}s" >&2

# --isolation chroot: the sandbox cannot make the namespaces runc would need for RUN steps.
# --volume certs: pip in the stand-in (Debian's, which reads the system bundle) must trust what this machine's
# own pip trusts to reach the package index; read-only and a build-time mount, so nothing of it enters a layer.
# --network host: the build's pip reaches the index the way the host does.
echo "Building $image from Dockerfile ..." >&2
podman build --isolation chroot --network host --volume /etc/ssl/certs:/etc/ssl/certs:ro \
  --layers --tag "$image" . >&2
echo "Built $image in ${SECONDS}s (base included)" >&2

# vfs stores every layer as a full copy: drop images no tag uses once they are three days old, so repeated
# builds on a long-lived machine do not fill its disk (the cost: a cold rebuild after a long pause).
podman image prune --force --filter until=72h >/dev/null
echo "$image"
