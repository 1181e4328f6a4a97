# shellcheck shell=bash
# Helpers shared by test/infra/*.sh. Sourced, never run.
#
# Everything here logs to stderr: stdout of the scripts is reserved for the
# KEY=VALUE lines that callers eval.

# shellcheck disable=SC2034 # used by the scripts that source this file
TIDE_STATE="${TIDE_STATE_DIR:-${XDG_RUNTIME_DIR:-/tmp}/tide-infra}"

log() { printf '%s: %s\n' "${LOG_PREFIX:-infra}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# as_root CMD...: apt needs root; CI runs as root, a developer may have sudo.
as_root() {
	if [[ $(id -u) == 0 ]]; then "$@"
	elif command -v sudo >/dev/null 2>&1; then sudo "$@"
	else die "need root to run: $*"
	fi
}

# ensure_cmd CMD PACKAGE: install PACKAGE with apt when CMD is missing. CI runs
# on fresh machines, so nothing may be assumed to be installed by hand.
_apt_updated=
ensure_cmd() {
	local cmd=$1 pkg=$2
	command -v "$cmd" >/dev/null 2>&1 && return 0
	command -v apt-get >/dev/null 2>&1 || die "$cmd is missing and apt-get is not available; install $pkg"
	log "installing $pkg (for $cmd) with apt-get"
	if [[ -z $_apt_updated ]]; then
		as_root apt-get update -qq >&2
		_apt_updated=1
	fi
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2
	command -v "$cmd" >/dev/null 2>&1 || die "$pkg installed but $cmd is still missing"
}

# free_ports N: print N distinct TCP ports that are free on 127.0.0.1 right
# now. Ports are taken from 20000-32767, below Linux's ephemeral range, so a
# port remembered for a restart is not later grabbed by some client socket.
free_ports() {
	local n=$1 out
	if out=$(python3 - "$n" 2>/dev/null <<'EOF'
import random, socket, sys
n, got, held = int(sys.argv[1]), [], []
for _ in range(2000):
    if len(got) == n:
        break
    p = random.randint(20000, 32767)
    if p in got:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))  # no SO_REUSEADDR: TIME_WAIT counts as taken
    except OSError:
        s.close()
        continue
    held.append(s)
    got.append(p)
print(" ".join(map(str, got)))
sys.exit(0 if len(got) == n else 1)
EOF
	); then
		echo "$out"
		return 0
	fi
	# Fallback without python: a port nothing accepts on is free enough.
	local ports=() p tries=0
	while ((${#ports[@]} < n)); do
		((tries++ < 2000)) || die "could not find $n free ports"
		p=$((20000 + RANDOM % 12768))
		[[ " ${ports[*]} " == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then ports+=("$p"); fi
	done
	echo "${ports[*]}"
}

# pid_alive PID [MATCH]: true when PID runs and, if MATCH is given, its command
# line contains MATCH (guards against a recycled pid from an old pidfile).
pid_alive() {
	local pid=$1 match=${2:-}
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# A zombie (exited, parent not reaping) answers kill -0 but is gone.
	local stat
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]] || return 1
	[[ -z $match ]] && return 0
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$match"
}

# stop_pids GRACE_SECONDS MATCH PID...: SIGTERM all, wait up to GRACE, then
# SIGKILL the survivors and wait until they are gone.
stop_pids() {
	local grace=$1 match=$2 pid live deadline killed=
	shift 2
	live=()
	for pid in "$@"; do
		if pid_alive "$pid" "$match"; then
			kill -TERM "$pid" 2>/dev/null || true
			live+=("$pid")
		fi
	done
	((${#live[@]})) || return 0
	deadline=$((SECONDS + grace))
	while :; do
		local still=()
		for pid in "${live[@]}"; do pid_alive "$pid" && still+=("$pid"); done
		((${#still[@]})) || return 0
		if ((SECONDS >= deadline)); then
			if [[ -n $killed ]]; then
				log "warning: still alive after SIGKILL: ${still[*]}"
				return 1
			fi
			log "SIGKILL after ${grace}s: ${still[*]}"
			kill -KILL "${still[@]}" 2>/dev/null || true
			killed=1
			deadline=$((SECONDS + 10))
		fi
		sleep 0.1
	done
}

# shell_quote VALUE: VALUE as is when it needs no quoting (the usual case, so
# the files stay readable by simple KEY=VALUE parsers), else single-quoted.
shell_quote() {
	local v=$1 q="'"
	if [[ $v =~ ^[A-Za-z0-9_./:,@%+=-]*$ ]]; then
		printf '%s' "$v"
	else
		printf "'%s'" "${v//$q/$q\\$q$q}"
	fi
}

# write_env FILE KEY=VALUE...: a shell-sourceable env file, written atomically.
write_env() {
	local file=$1 kv tmp
	shift
	tmp=$(mktemp "$file.XXXXXX")
	for kv in "$@"; do printf '%s=%s\n' "${kv%%=*}" "$(shell_quote "${kv#*=}")"; done >"$tmp"
	mv -f "$tmp" "$file"
}
