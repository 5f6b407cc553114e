#!/bin/sh
# What redis:7's entry point does: run redis-server as the redis user, owning /data, and,
# as the official image does when no config file is given, with protected mode off (a
# container's clients never come from its own loopback; the network is the boundary).
set -eu
# Options alone, or a config file, are redis-server's.
case "${1:-}" in -* | *.conf) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ]; then
    case "${2:-}" in
        *.conf) ;;
        *) case " $* " in *" --protected-mode "*) ;; *) set -- "$@" --protected-mode no ;; esac ;;
    esac
    if [ "$(id -u)" = 0 ]; then
        chown -R redis:redis /data
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"
