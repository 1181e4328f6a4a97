#!/usr/bin/env bash
# test/infra/kafka.sh: a throwaway Apache Kafka (KRaft, no ZooKeeper) on
# 127.0.0.1 for integration tests, built from Maven Central jars (no tarball
# download is possible on our machines).
#
#   kafka.sh fetch                resolve the broker + tools jars into the cache
#   kafka.sh start                fresh cluster; prints KAFKA_BROKERS=host:port[,...]
#   kafka.sh stop                 stop all nodes and delete their data
#   kafka.sh restart              stop + start on the SAME ports and data
#   kafka.sh kill-node N          SIGKILL node N (1-based), data kept
#   kafka.sh start-node N         start node N again and wait until it serves
#   kafka.sh pause-node N         SIGSTOP node N: it accepts connections, never answers
#   kafka.sh resume-node N        SIGCONT node N
#   kafka.sh status               one line per node; exit 1 unless all serve
#   kafka.sh tool NAME [ARGS...]  run a Kafka CLI tool (kafka-topics, ...)
#
# Env in:  KAFKA_VERSION (default below), KAFKA_NODES (1 or 3, default 1),
#          TIDE_STATE_DIR, XDG_CACHE_HOME, KAFKA_HEAP_OPTS,
#          KAFKA_START_TIMEOUT (seconds, default 90), KAFKA_LIBS (tool only),
#          KAFKA_SASL=scram: each node also gets a SASL_PLAINTEXT listener
#          (SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN) with one user,
#          KAFKA_SASL_TEST_USER / KAFKA_SASL_TEST_PASSWORD (default tide /
#          tide-secret), created when the storage is formatted.
# Env out: $STATE/kafka.env with KAFKA_BROKERS and KAFKA_LIBS (and with
#          KAFKA_SASL=scram: KAFKA_SASL_BROKERS, KAFKA_SASL_TEST_USER,
#          KAFKA_SASL_TEST_PASSWORD).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_PREFIX=kafka.sh
# shellcheck source=lib.sh
. "$HERE/lib.sh"

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/tide/kafka-$KAFKA_VERSION"
LIBS="$CACHE_DIR/libs"
MARKER="$CACHE_DIR/.complete"
KSTATE="$TIDE_STATE/kafka"
CLUSTER_ENV="$KSTATE/cluster.env"
ENV_FILE="$TIDE_STATE/kafka.env"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
SASL_USER="${KAFKA_SASL_TEST_USER:-tide}"
SASL_PASSWORD="${KAFKA_SASL_TEST_PASSWORD:-tide-secret}"
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

# ---------------------------------------------------------------- fetch

# fetch: resolve kafka_2.13 + kafka-tools and their runtime closure with mvn
# into $LIBS. The marker makes a second run free (no mvn, no network).
fetch() {
	[[ -f $MARKER ]] && return 0
	mkdir -p "$CACHE_DIR"
	(
		exec 9>"$CACHE_DIR/.lock"
		flock 9 # a concurrent fetch of the same version finishes first
		[[ -f $MARKER ]] && exit 0
		ensure_cmd java openjdk-17-jre-headless
		ensure_cmd mvn maven
		ensure_cmd unzip unzip
		log "resolving Kafka $KAFKA_VERSION jars from Maven Central (once per version)"
		work=$(mktemp -d "$CACHE_DIR/.fetch.XXXXXX")
		trap 'rm -rf "$work"' EXIT
		cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tide.test</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
		mvn -B -q -f "$work/pom.xml" "$DEP_PLUGIN:copy-dependencies" \
			-DincludeScope=runtime -DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1 ||
			{ cat "$work/mvn.log" >&2; die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION"; }
		# The broker logs through slf4j; without a binding slf4j drops every
		# line. Bind it to the log4j2 that Kafka already depends on, at the
		# same version, matching the slf4j API generation it uses.
		local_slf4j=$(find "$work/libs" -name 'slf4j-api-*.jar' -printf '%f\n' | sed 's/^slf4j-api-//; s/\.jar$//')
		local_log4j=$(find "$work/libs" -name 'log4j-core-*.jar' -printf '%f\n' | sed 's/^log4j-core-//; s/\.jar$//')
		[[ -n $local_slf4j && -n $local_log4j ]] || die "slf4j-api or log4j-core missing from the resolved jars"
		case $local_slf4j in
		1.*) binding=log4j-slf4j-impl ;;
		*) binding=log4j-slf4j2-impl ;;
		esac
		mvn -B -q -f "$work/pom.xml" "$DEP_PLUGIN:copy" \
			-Dartifact="org.apache.logging.log4j:$binding:$local_log4j" \
			-DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1 ||
			{ cat "$work/mvn.log" >&2; die "mvn could not resolve org.apache.logging.log4j:$binding:$local_log4j"; }
		# Index the Kafka classes so `tool` can check a class before running it.
		for j in "$work"/libs/kafka*.jar "$work"/libs/connect-*.jar; do
			[[ -f $j ]] && unzip -Z1 "$j" '*.class' 2>/dev/null
		done | grep -v '\$' | sed 's/\.class$//; s#/#.#g' | sort -u >"$work/classes.txt"
		grep -qx 'kafka.Kafka' "$work/classes.txt" || die "kafka.Kafka not found in the resolved jars"
		rm -rf "$LIBS"
		mv "$work/libs" "$LIBS"
		mv "$work/classes.txt" "$CACHE_DIR/classes.txt"
		{
			echo "kafka_version=$KAFKA_VERSION"
			echo "slf4j_binding=$binding:$local_log4j"
			echo "jars=$(find "$LIBS" -name '*.jar' | wc -l)"
			echo "fetched=$(date -u +%FT%TZ)"
		} >"$MARKER"
		log "cached $(find "$LIBS" -name '*.jar' | wc -l) jars in $LIBS"
	)
}

# write_log4j FILE LOGFILE: broker log4j2 config (properties format needs no
# extra jars); LOGFILE empty means WARN and above to stderr (quiet tools).
write_log4j() {
	local file=$1 logfile=$2 tmp
	tmp=$(mktemp "$file.XXXXXX")
	if [[ -n $logfile ]]; then
		cat >"$tmp" <<EOF
status = warn
name = tide-kafka-broker
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $logfile
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
EOF
	else
		cat >"$tmp" <<EOF
status = error
name = tide-kafka-tools
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
	fi
	mv -f "$tmp" "$file"
}

# ---------------------------------------------------------------- cluster

# load_cluster: read $CLUSTER_ENV (NODES, CLUSTER_ID, LIBS_DIR, BPORTS, CPORTS,
# and with KAFKA_SASL the SASL ports SPORTS and the user SASL_USER/SASL_PASSWORD).
load_cluster() {
	[[ -f $CLUSTER_ENV ]] || die "no cluster in $KSTATE; run: $0 start"
	SPORTS=
	# shellcheck disable=SC1090
	. "$CLUSTER_ENV"
	read -r -a BP <<<"$BPORTS"
	read -r -a CP <<<"$CPORTS"
	read -r -a SP <<<"$SPORTS"
}

node_dir() { echo "$KSTATE/node$1"; }
node_pid() { cat "$(node_dir "$1")/pid" 2>/dev/null || true; }
node_running() { pid_alive "$(node_pid "$1")" "$(node_dir "$1")/server.properties"; }
brokers_list() {
	local i out=()
	for ((i = 1; i <= NODES; i++)); do out+=("127.0.0.1:${BP[i - 1]}"); done
	(IFS=,; echo "${out[*]}")
}
sasl_brokers_list() {
	local i out=()
	for ((i = 1; i <= NODES; i++)); do out+=("127.0.0.1:${SP[i - 1]}"); done
	(IFS=,; echo "${out[*]}")
}

write_node_config() {
	local i=$1 dir voters="" j rf=$NODES isr
	dir=$(node_dir "$i")
	mkdir -p "$dir/data"
	for ((j = 1; j <= NODES; j++)); do voters+="${voters:+,}$j@127.0.0.1:${CP[j - 1]}"; done
	isr=$((NODES >= 3 ? 2 : 1))
	local listeners="PLAINTEXT://127.0.0.1:${BP[i - 1]}" protocols=PLAINTEXT:PLAINTEXT
	if ((${#SP[@]})); then
		listeners+=",SASL_PLAINTEXT://127.0.0.1:${SP[i - 1]}"
		protocols+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
	fi
	cat >"$dir/server.properties" <<EOF
# generated by test/infra/kafka.sh: single-host test cluster, not for production
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=$listeners,CONTROLLER://127.0.0.1:${CP[i - 1]}
advertised.listeners=$listeners
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols,CONTROLLER:PLAINTEXT
log.dirs=$dir/data

num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true

# retention tests must not wait minutes for the cleaner thread
log.retention.check.interval.ms=5000
log.segment.delete.delay.ms=1000
log.cleaner.dedupe.buffer.size=16777216

# a killed node is fenced (and its leaderships moved) after 6 s, not 9 s
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000

num.network.threads=2
num.io.threads=4
EOF
	if ((${#SP[@]})); then
		# SCRAM users live in the cluster metadata (added at format time); PLAIN
		# checks the user_NAME entries of its JAAS line.
		cat >>"$dir/server.properties" <<EOF

sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER="$SASL_PASSWORD";
EOF
	fi
	write_log4j "$dir/log4j2.properties" "$dir/server.log"
}

# format_node I: write meta.properties for the static voter set.
format_node() {
	local dir scram=()
	dir=$(node_dir "$1")
	if ((${#SP[@]})); then
		scram=(--add-scram "SCRAM-SHA-256=[name=$SASL_USER,password=$SASL_PASSWORD]"
			--add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]")
	fi
	java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
		-Dlog4j2.configurationFile="file:$CACHE_DIR/tools-log4j2.properties" \
		-cp "$LIBS_DIR/*" kafka.tools.StorageTool format \
		-t "$CLUSTER_ID" -c "$dir/server.properties" --ignore-formatted "${scram[@]+"${scram[@]}"}" \
		>"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; return 1; }
}

# launch_node I: start the broker in its own session so it outlives this
# script; the pidfile is written by the process that then becomes java.
launch_node() {
	local i=$1 dir
	dir=$(node_dir "$i")
	# shellcheck disable=SC2086,SC2016 # word-split heap opts; $$ is for the inner bash
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/pid" \
		java $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
		-Djava.awt.headless=true \
		-Dlog4j2.configurationFile="file:$dir/log4j2.properties" \
		-Dkafka.logs.dir="$dir" \
		-cp "$LIBS_DIR/*" kafka.Kafka "$dir/server.properties" \
		</dev/null >>"$dir/stdout.log" 2>&1 9>&- &
	local deadline=$((SECONDS + 5))
	until [[ -s $dir/pid ]]; do
		((SECONDS < deadline)) || die "node $i did not write its pidfile"
		sleep 0.05
	done
}

# node_serves I: the node answers a metadata request listing >= WANT brokers.
node_serves() {
	local i=$1 want=${2:-1} out count
	out=$(kcat -b "127.0.0.1:${BP[i - 1]}" -L -m 2 2>/dev/null) || return 1
	count=$(sed -n 's/^ *\([0-9][0-9]*\) brokers:.*/\1/p' <<<"$out" | head -1)
	((${count:-0} >= want))
}

# wait_nodes WANT I...: poll until every node I serves and sees WANT brokers.
wait_nodes() {
	local want=$1 i pending deadline=$((SECONDS + START_TIMEOUT))
	shift
	pending=("$@")
	while ((${#pending[@]})); do
		local next=()
		for i in "${pending[@]}"; do
			if ! node_running "$i"; then
				log "node $i exited during startup; last lines of its logs:"
				tail -n 30 "$(node_dir "$i")/stdout.log" "$(node_dir "$i")/server.log" >&2 2>/dev/null || true
				die "node $i failed to start"
			fi
			node_serves "$i" "$want" || next+=("$i")
		done
		pending=("${next[@]+"${next[@]}"}")
		((${#pending[@]})) || break
		if ((SECONDS >= deadline)); then
			for i in "${pending[@]}"; do tail -n 30 "$(node_dir "$i")/server.log" >&2 2>/dev/null || true; done
			die "node(s) ${pending[*]} not serving after ${START_TIMEOUT}s (logs in $KSTATE)"
		fi
		sleep 0.2
	done
}

write_kafka_env() {
	local kv=("KAFKA_BROKERS=$(brokers_list)" "KAFKA_LIBS=$LIBS_DIR")
	if ((${#SP[@]})); then
		kv+=("KAFKA_SASL_BROKERS=$(sasl_brokers_list)" "KAFKA_SASL_TEST_USER=$SASL_USER" "KAFKA_SASL_TEST_PASSWORD=$SASL_PASSWORD")
	fi
	write_env "$ENV_FILE" "${kv[@]}"
}

# stop_nodes GRACE I...: SIGTERM (controlled shutdown), SIGKILL after GRACE.
stop_nodes() {
	local grace=$1 i pids=()
	shift
	for i in "$@"; do pids+=("$(node_pid "$i")"); done
	stop_pids "$grace" "$KSTATE/node" "${pids[@]}" || true
	for i in "$@"; do rm -f "$(node_dir "$i")/pid"; done
}

# stop_leftovers: whatever an earlier run left in this state dir goes away.
stop_leftovers() {
	local pids=() f
	for f in "$KSTATE"/node*/pid; do [[ -f $f ]] && pids+=("$(cat "$f")"); done
	if ((${#pids[@]})); then
		log "stopping broker(s) left running in $KSTATE"
		stop_pids 10 "$KSTATE/node" "${pids[@]}" || true
	fi
	rm -rf "$KSTATE" "$ENV_FILE"
}

random_cluster_id() {
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		[[ $id == -* ]] || break # a leading '-' confuses CLI parsing
	done
	echo "$id"
}

cmd_start() {
	local n=${KAFKA_NODES:-1} i ports
	[[ $n =~ ^[1-9]$ ]] || die "KAFKA_NODES must be 1..9 (got '$n')"
	local per=2
	case ${KAFKA_SASL:-} in
	"") ;;
	scram)
		per=3
		[[ $SASL_USER =~ ^[A-Za-z0-9_.-]+$ && $SASL_PASSWORD =~ ^[A-Za-z0-9_.+=-]+$ ]] ||
			die "KAFKA_SASL_TEST_USER / KAFKA_SASL_TEST_PASSWORD may use only [A-Za-z0-9_.-] / [A-Za-z0-9_.+=-]"
		;;
	*) die "KAFKA_SASL must be empty or scram (got '$KAFKA_SASL')" ;;
	esac
	fetch
	ensure_cmd java openjdk-17-jre-headless
	ensure_cmd kcat kcat
	stop_leftovers
	mkdir -p "$KSTATE"
	write_log4j "$CACHE_DIR/tools-log4j2.properties" ""
	read -r -a ports <<<"$(free_ports $((per * n)))"
	NODES=$n
	CLUSTER_ID=$(random_cluster_id)
	LIBS_DIR=$LIBS
	BP=("${ports[@]:0:n}")
	CP=("${ports[@]:n:n}")
	SP=()
	if ((per == 3)); then SP=("${ports[@]:2*n:n}"); fi
	BPORTS="${BP[*]}"
	CPORTS="${CP[*]}"
	SPORTS="${SP[*]+"${SP[*]}"}"
	write_env "$CLUSTER_ENV" "NODES=$NODES" "CLUSTER_ID=$CLUSTER_ID" "LIBS_DIR=$LIBS_DIR" \
		"CACHE_DIR=$CACHE_DIR" "KAFKA_VERSION=$KAFKA_VERSION" "BPORTS=$BPORTS" "CPORTS=$CPORTS" \
		"SPORTS=$SPORTS" "SASL_USER=$SASL_USER" "SASL_PASSWORD=$SASL_PASSWORD"
	local fpids=()
	for ((i = 1; i <= n; i++)); do
		write_node_config "$i"
		format_node "$i" &
		fpids+=($!)
	done
	for i in "${fpids[@]}"; do wait "$i" || die "formatting storage failed"; done
	for ((i = 1; i <= n; i++)); do launch_node "$i"; done
	local all=()
	for ((i = 1; i <= n; i++)); do all+=("$i"); done
	wait_nodes "$n" "${all[@]}"
	write_kafka_env
	log "Kafka $KAFKA_VERSION up: $n node(s), state in $KSTATE"
	echo "KAFKA_BROKERS=$(brokers_list)"
}

cmd_stop() {
	if [[ -f $CLUSTER_ENV ]]; then
		load_cluster
		local all=() i
		for ((i = 1; i <= NODES; i++)); do all+=("$i"); done
		stop_nodes 5 "${all[@]}" # data is deleted next: no need to wait for the raft resign timeout
	fi
	stop_leftovers
	log "stopped"
}

cmd_restart() {
	load_cluster
	ensure_cmd kcat kcat
	local all=() i
	for ((i = 1; i <= NODES; i++)); do all+=("$i"); done
	stop_nodes 30 "${all[@]}"
	for i in "${all[@]}"; do launch_node "$i"; done
	wait_nodes "$NODES" "${all[@]}"
	write_kafka_env
	echo "KAFKA_BROKERS=$(brokers_list)"
}

node_arg() {
	[[ ${1:-} =~ ^[1-9]$ ]] || die "usage: $0 ${2} N (1-based node number)"
	(($1 <= NODES)) || die "node $1 does not exist (cluster has $NODES)"
}

cmd_kill_node() {
	load_cluster
	node_arg "${1:-}" kill-node
	local pid
	pid=$(node_pid "$1")
	if node_running "$1"; then
		kill -KILL "$pid"
		while pid_alive "$pid"; do sleep 0.05; done
		log "node $1 (pid $pid) killed"
	else
		log "node $1 was not running"
	fi
	rm -f "$(node_dir "$1")/pid"
}

cmd_start_node() {
	load_cluster
	node_arg "${1:-}" start-node
	ensure_cmd kcat kcat
	if node_running "$1"; then
		log "node $1 already running"
	else
		launch_node "$1"
	fi
	wait_nodes 1 "$1"
	log "node $1 serving on 127.0.0.1:${BP[$1 - 1]}"
}

# cmd_signal_node SIG N NAME: pause (STOP) or resume (CONT) node N. A paused node
# keeps its sockets, so clients connect and wait: a broker that stops answering.
cmd_signal_node() {
	load_cluster
	node_arg "${2:-}" "$3"
	node_running "$2" || die "node $2 is not running"
	kill "-$1" "$(node_pid "$2")"
	log "node $2: SIG$1"
}

cmd_status() {
	if [[ ! -f $CLUSTER_ENV ]]; then
		echo "kafka: not started (state dir $KSTATE)"
		return 1
	fi
	load_cluster
	local i ok=0 pid
	echo "kafka $KAFKA_VERSION: $NODES node(s), cluster $CLUSTER_ID, libs $LIBS_DIR"
	for ((i = 1; i <= NODES; i++)); do
		pid=$(node_pid "$i")
		if ! node_running "$i"; then
			echo "node $i: DOWN   broker 127.0.0.1:${BP[i - 1]} controller 127.0.0.1:${CP[i - 1]}"
			ok=1
		elif command -v kcat >/dev/null && node_serves "$i"; then
			echo "node $i: up     broker 127.0.0.1:${BP[i - 1]} controller 127.0.0.1:${CP[i - 1]} pid $pid"
		else
			echo "node $i: NOT SERVING broker 127.0.0.1:${BP[i - 1]} pid $pid"
			ok=1
		fi
	done
	[[ -f $ENV_FILE ]] && cat "$ENV_FILE"
	return $ok
}

# ---------------------------------------------------------------- tools

# tool_classes NAME: candidate main classes for a CLI script name, newest
# location first (several tools moved from kafka.* to org.apache.kafka.tools).
tool_classes() {
	case $1 in
	kafka-topics) echo org.apache.kafka.tools.TopicCommand kafka.admin.TopicCommand ;;
	kafka-consumer-groups) echo org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
	kafka-share-groups) echo org.apache.kafka.tools.consumer.group.ShareGroupCommand ;;
	kafka-groups) echo org.apache.kafka.tools.GroupsCommand ;;
	kafka-producer-perf-test) echo org.apache.kafka.tools.ProducerPerformance ;;
	kafka-consumer-perf-test) echo org.apache.kafka.tools.ConsumerPerformance ;;
	kafka-e2e-latency) echo org.apache.kafka.tools.EndToEndLatency ;;
	kafka-delete-records) echo org.apache.kafka.tools.DeleteRecordsCommand kafka.admin.DeleteRecordsCommand ;;
	kafka-get-offsets) echo org.apache.kafka.tools.GetOffsetShell kafka.tools.GetOffsetShell ;;
	kafka-console-consumer) echo org.apache.kafka.tools.consumer.ConsoleConsumer kafka.tools.ConsoleConsumer ;;
	kafka-console-producer) echo org.apache.kafka.tools.ConsoleProducer kafka.tools.ConsoleProducer ;;
	kafka-configs) echo org.apache.kafka.tools.ConfigCommand kafka.admin.ConfigCommand ;;
	kafka-acls) echo org.apache.kafka.tools.AclCommand kafka.admin.AclCommand ;;
	kafka-broker-api-versions) echo org.apache.kafka.tools.BrokerApiVersionsCommand kafka.admin.BrokerApiVersionsCommand ;;
	kafka-metadata-quorum) echo org.apache.kafka.tools.MetadataQuorumCommand ;;
	kafka-features) echo org.apache.kafka.tools.FeatureCommand ;;
	kafka-transactions) echo org.apache.kafka.tools.TransactionsCommand ;;
	kafka-leader-election) echo org.apache.kafka.tools.LeaderElectionCommand ;;
	kafka-reassign-partitions) echo org.apache.kafka.tools.reassign.ReassignPartitionsCommand kafka.admin.ReassignPartitionsCommand ;;
	kafka-log-dirs) echo org.apache.kafka.tools.LogDirsCommand kafka.admin.LogDirsCommand ;;
	kafka-dump-log) echo org.apache.kafka.tools.DumpLogSegments kafka.tools.DumpLogSegments ;;
	kafka-verifiable-producer) echo org.apache.kafka.tools.VerifiableProducer ;;
	kafka-verifiable-consumer) echo org.apache.kafka.tools.VerifiableConsumer ;;
	kafka-cluster) echo org.apache.kafka.tools.ClusterTool ;;
	kafka-storage) echo kafka.tools.StorageTool ;;
	*.*) echo "$1" ;; # a fully qualified main class
	*) return 1 ;;
	esac
}

cmd_tool() {
	local name=${1:-} libs cache class c candidates
	[[ -n $name ]] || die "usage: $0 tool NAME [ARGS...]"
	shift
	# Which jars: explicit KAFKA_LIBS, else the running cluster's, else fetch.
	if [[ -n ${KAFKA_LIBS:-} ]]; then
		libs=$KAFKA_LIBS
	elif [[ -f $CLUSTER_ENV ]]; then
		load_cluster
		libs=$LIBS_DIR
	else
		fetch
		libs=$LIBS
	fi
	[[ -d $libs ]] || die "Kafka libs dir $libs does not exist; run: $0 fetch"
	cache=$(dirname "$libs")
	ensure_cmd java openjdk-17-jre-headless
	candidates=$(tool_classes "$name") || die "unknown tool '$name' (see tool_classes in $0)"
	class=
	for c in $candidates; do
		if [[ ! -f $cache/classes.txt ]] || grep -qxF "$c" "$cache/classes.txt"; then
			class=$c
			break
		fi
	done
	[[ -n $class ]] || die "no main class for '$name' in $libs (looked for: $candidates)"
	[[ -f $cache/tools-log4j2.properties ]] || write_log4j "$cache/tools-log4j2.properties" ""
	local jvm=(-Xmx512m)
	case $name in
	*perf-test | *e2e-latency | *verifiable*) jvm+=(-XX:+UseG1GC) ;;   # measured: full JIT
	*) jvm+=(-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto) ;; # one-shot: start fast
	esac
	exec java "${jvm[@]}" -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="file:$cache/tools-log4j2.properties" \
		-cp "$libs/*" "$class" "$@"
}

# ---------------------------------------------------------------- main

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2; }

case ${1:-} in
fetch) fetch ;;
start) cmd_start ;;
stop) cmd_stop ;;
restart) cmd_restart ;;
kill-node) cmd_kill_node "${2:-}" ;;
start-node) cmd_start_node "${2:-}" ;;
pause-node) cmd_signal_node STOP "${2:-}" pause-node ;;
resume-node) cmd_signal_node CONT "${2:-}" resume-node ;;
status) cmd_status ;;
tool)
	shift
	cmd_tool "$@"
	;;
-h | --help | help) usage ;;
*)
	usage
	exit 2
	;;
esac
