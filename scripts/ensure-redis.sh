#!/usr/bin/env bash
# Makes sure a Redis server answers on 127.0.0.1:6379 (starting one if not),
# and that redis-server is installed for the tests that start their own.
set -euo pipefail

if ! command -v redis-server >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 1 50); do
        redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
        sleep 0.1
    done
fi
redis-cli -h 127.0.0.1 -p 6379 ping
