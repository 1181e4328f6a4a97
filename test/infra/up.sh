#!/usr/bin/env bash
# test/infra/up.sh: start Kafka and Redis for integration tests and print
# `export KEY=VALUE` lines, so a caller can do:
#
#   eval "$(test/infra/up.sh)"   # sets KAFKA_BROKERS KAFKA_LIBS REDIS_ADDR ...
#   go test ./...
#   test/infra/down.sh
#
# Whatever an earlier run left in the same state dir is stopped first (the
# start subcommands do that), so a crashed CI run cannot wedge the next one.
# Progress goes to stderr; stdout carries only the export lines.
# Env in: everything kafka.sh and redis.sh read (KAFKA_NODES, KAFKA_VERSION,
# TIDE_STATE_DIR, REDIS_FSYNC, REDIS_PASSWORD, ...).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_PREFIX=up.sh
# shellcheck source=lib.sh
. "$HERE/lib.sh"

"$HERE/redis.sh" start >/dev/null
# A SASL listener (SCRAM and PLAIN) beside the plain one, for test/secure;
# KAFKA_SASL= (empty) opts out.
KAFKA_SASL="${KAFKA_SASL-scram}" "$HERE/kafka.sh" start >/dev/null

emit() {
	local file=$1 line
	while IFS= read -r line; do
		[[ $line == *=* ]] && printf 'export %s\n' "$line"
	done <"$file"
}
emit "$TIDE_STATE/kafka.env"
emit "$TIDE_STATE/redis.env"
printf 'export TIDE_STATE_DIR=%s\n' "$(shell_quote "$TIDE_STATE")"
