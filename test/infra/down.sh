#!/usr/bin/env bash
# test/infra/down.sh: stop the Kafka and Redis that up.sh started and delete
# their data. Safe to run when nothing is running; tries both even if one fails.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rc=0
"$HERE/kafka.sh" stop || rc=1
"$HERE/redis.sh" stop || rc=1
exit $rc
