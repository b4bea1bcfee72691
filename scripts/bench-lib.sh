# Shell functions shared by the bench scripts of scripts/ (sourced, not run).

# A free loopback TCP port.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for_server <url> <pid> <log> <name>: until the server's log says it listens and GET
# <url>/health answers (the port was only free a moment ago: another server may have taken it);
# exits the script with the server's log when the process dies first.
wait_for_server() {
  local url=$1 server_pid=$2 log=$3 name=$4
  for _ in $(seq 1 100); do
    grep -q "wallex serving on" "$log" 2>/dev/null &&
      curl -fsS -o /dev/null "$url/health" 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || { echo "$name: the server did not start" >&2; cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  curl -fsS -o /dev/null "$url/health"
}

# wait_for_bootstrap <file> <pid> <name>: until `wallex dev-kafka` (process <pid>) has written
# its bootstrap address, the first line of <file>; exits the script when it dies first or writes
# nothing within 10 s.
wait_for_bootstrap() {
  local file=$1 kafka=$2 name=$3
  for _ in $(seq 1 100); do
    [ -s "$file" ] && return 0
    kill -0 "$kafka" 2>/dev/null || { echo "$name: dev-kafka did not start" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$file" ] || { echo "$name: dev-kafka printed no address in 10 s" >&2; exit 1; }
}

# require_executables <name> <file>...: exits the script unless every file is an executable.
require_executables() {
  local name=$1 binary
  shift
  for binary in "$@"; do
    [ -x "$binary" ] || { echo "$name: $binary is not an executable" >&2; exit 2; }
  done
}

# start_work <name>: sets $work to a fresh temporary directory and $pid (the server's) to "", and
# arranges that at exit a server still running in $pid is killed and $work removed.
start_work() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/wallex-$1-XXXXXX")
  pid=""
  trap 'if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
rm -rf "$work"' EXIT
}

# start_server <wallex> <data dir> <name>: serves <data dir> (created) with <wallex> on a free
# loopback port, its log in <data dir>.log; sets $url and $pid once it answers.
start_server() {
  local binary=$1 data=$2 name=$3 port
  port=$(free_port)
  url="http://127.0.0.1:$port"
  mkdir -p "$data"
  "$binary" serve --host 127.0.0.1 --port "$port" --data-dir "$data" 2>"$data.log" &
  pid=$!
  wait_for_server "$url" "$pid" "$data.log" "$name"
}

# wait_caught_up <url> <name> <seconds>: until every projection of the server at <url> has applied
# the whole log (GET /health), or exits the script after <seconds>.
wait_caught_up() {
  local url=$1 name=$2 seconds=$3
  for _ in $(seq 1 $((seconds * 10))); do
    curl -fsS "$url/health" 2>/dev/null | python3 -c '
import json, sys
health = json.load(sys.stdin)
sys.exit(0 if all(p["positionsBehind"] == 0 for p in health["projections"].values()) else 1)' &&
      return 0
    sleep 0.1
  done
  echo "$name: the projections did not catch up within $seconds seconds" >&2
  exit 1
}

# per_thread <pid> <file> <awk expression>: for every thread name of <pid>, the sum over its
# threads of the expression on /proc/<pid>/task/<tid>/<file> (for stat, on the fields after the
# closing parenthesis of the name): "<name> <sum>" lines.
per_thread() {
  local task
  for task in /proc/"$1"/task/*; do
    printf '%s %s\n' "$(cat "$task/comm" 2>/dev/null)" \
      "$(sed 's/.*) //' "$task/$2" 2>/dev/null | awk "{print $3}")"
  done | awk 'NF == 2 {t[$1] += $2} END {for (n in t) printf "%s %.0f\n", n, t[n]}'
}

# thread_ticks <pid>: the CPU time (user + system, clock ticks) of every thread name. In
# /proc/<pid>/task/<tid>/stat, "<tid> (<name>) <state> ...", utime and stime are fields 14 and
# 15, i.e. 12 and 13 after the closing parenthesis.
thread_ticks() { per_thread "$1" stat '$12 + $13'; }

# thread_waits <pid>: the time every thread name spent runnable but waiting for a core
# (nanoseconds, the second field of schedstat). Empty on a kernel without schedstats.
thread_waits() { per_thread "$1" schedstat '$2'; }
