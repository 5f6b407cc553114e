#!/bin/sh
# Runs the first compose engine this machine has with the arguments given:
#   deploy/compose/engine.sh -f deploy/compose/docker-compose.yml up -d
# `docker compose` only counts when its plugin answers (a docker without it reads `compose -f`
# as unknown flags), then `podman compose`, then the standalone podman-compose and
# docker-compose. `make up` and `make down` go through here. `engine.sh --print` prints the
# engine's command instead of running it.
print=
if [ "${1:-}" = --print ]; then
    print=1
    shift
fi
use() {
    if [ -n "$print" ]; then
        echo "$1"
        exit 0
    fi
    shift
    exec "$@"
}
if docker compose version >/dev/null 2>&1; then
    use "docker compose" docker compose "$@"
fi
if podman compose version >/dev/null 2>&1; then
    use "podman compose" podman compose "$@"
fi
if command -v podman-compose >/dev/null 2>&1; then
    use podman-compose podman-compose "$@"
fi
if command -v docker-compose >/dev/null 2>&1; then
    use docker-compose docker-compose "$@"
fi
echo "no compose engine found: install Docker with its compose plugin (docker compose), or" \
    "Podman with podman-compose (pip install podman-compose)" >&2
exit 1
