# Sourced by the container scripts (bash): point podman at this sandbox's settings, whoever calls it.
_container_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="$_container_dir/containers.conf"
export CONTAINERS_STORAGE_CONF="$_container_dir/storage.conf"
unset _container_dir
