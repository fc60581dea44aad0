#!/usr/bin/env bash
# Local Apache Kafka (KRaft, one combined broker+controller) from Kafka's own jars
# on Maven Central: no Docker, no tarball download, only Java 17 + Maven.
#
#   deploy/local/kafka.sh up|down|status
#
# Everything it writes is git-ignored:
#   .cache/kafka/libs     jars copied by `mvn dependency:copy-dependencies` (+ m2/ repo)
#   .cache/kafka/classes  the compiled readiness probe (KafkaReady.java)
#   .local/kafka/         data/, server.properties, kafka.pid, kafka.log
# All progress goes to stderr so callers can keep stdout for machine-readable output.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SRC="$HERE/kafka"
CACHE="$ROOT/.cache/kafka"
LIBS="$CACHE/libs"
CLASSES="$CACHE/classes"
STATE="$ROOT/.local/kafka"
DATA="$STATE/data"
PIDFILE="$STATE/kafka.pid"
LOG="$STATE/kafka.log"
HOST=127.0.0.1
PORT=9092
CONTROLLER_PORT=9093
BOOTSTRAP="$HOST:$PORT"
READY_TIMEOUT="${PLUGPAY_KAFKA_READY_TIMEOUT:-90}"
STOP_TIMEOUT=30

say() { echo "kafka: $*" >&2; }
die() { echo "kafka: ERROR: $*" >&2; exit 1; }

# pid of our broker if it is alive (and really is our java process), else nothing.
running_pid() {
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against pid reuse after a reboot: the process must be a kafka.Kafka JVM.
  grep -qa 'kafka\.Kafka' "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

show_log_tail() {
  if [[ -f "$LOG" ]]; then
    echo "---- last 40 lines of $LOG ----" >&2
    tail -n 40 "$LOG" >&2
    echo "----" >&2
  fi
}

# Jars: re-copied only when pom.xml changes (its hash is kept next to the jars).
ensure_libs() {
  local want have=""
  command -v java >/dev/null || die "java not found (need Java 17+)"
  want="$(sha256sum "$SRC/pom.xml" | cut -d' ' -f1)"
  [[ -f "$LIBS/.pom.sha256" ]] && have="$(cat "$LIBS/.pom.sha256")"
  if [[ "$want" != "$have" ]] || ! compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null; then
    command -v mvn >/dev/null || die "mvn not found (needed once to fetch Kafka jars)"
    say "fetching Kafka jars from Maven Central into $LIBS"
    rm -rf "$LIBS" "$CLASSES"
    mkdir -p "$CACHE"
    # Private Maven repo under .cache so the cache is self-contained and `rm -rf .cache` resets it.
    if ! mvn -q -B -Dstyle.color=never -f "$SRC/pom.xml" \
        -Dmaven.repo.local="$CACHE/m2" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS" \
        >"$CACHE/mvn.log" 2>&1; then
      tail -n 40 "$CACHE/mvn.log" >&2
      rm -rf "$LIBS"
      die "mvn dependency:copy-dependencies failed (full output: $CACHE/mvn.log)"
    fi
    echo "$want" >"$LIBS/.pom.sha256"
  fi
  # Readiness probe, compiled once against the same kafka-clients jar the broker ships.
  if [[ ! -f "$CLASSES/KafkaReady.class" || "$SRC/KafkaReady.java" -nt "$CLASSES/KafkaReady.class" ]]; then
    mkdir -p "$CLASSES"
    javac -nowarn -d "$CLASSES" -cp "$LIBS/*" "$SRC/KafkaReady.java" >&2 || die "javac KafkaReady.java failed"
  fi
}

kafka_version() {
  local jar
  jar="$(compgen -G "$LIBS/kafka_2.13-*.jar" | head -n1)"
  jar="${jar##*/kafka_2.13-}"
  echo "${jar%.jar}"
}

# A long-lived dev broker collects thousands of test topics; 512 MB of heap ran out of memory.
JAVA_OPTS=(-Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$SRC/log4j2.properties")

# Config is re-rendered on every start so edits to server.properties take effect;
# log.dirs must be absolute because the JVM's working directory is not fixed.
render_config() {
  mkdir -p "$STATE"
  {
    cat "$SRC/server.properties"
    echo
    echo "# Added by deploy/local/kafka.sh"
    echo "log.dirs=$DATA"
  } >"$STATE/server.properties"
}

# Format once: KRaft refuses to start on an unformatted log dir, and re-formatting
# would wipe the cluster id. meta.properties is what the formatter writes.
ensure_formatted() {
  if [[ -f "$DATA/meta.properties" ]]; then
    return 0
  fi
  local cluster_id
  say "formatting storage in $DATA"
  rm -rf "$DATA"
  mkdir -p "$DATA"
  cluster_id="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid)"
  if ! java -cp "$LIBS/*" kafka.tools.StorageTool format \
      --standalone -t "$cluster_id" -c "$STATE/server.properties" >"$STATE/format.log" 2>&1; then
    cat "$STATE/format.log" >&2
    rm -rf "$DATA"
    die "storage format failed"
  fi
}

cmd_up() {
  local pid start
  mkdir -p "$STATE"
  # One `up`/`down` at a time (e.g. two terminals running make infra-up).
  exec 9>"$STATE/.lock"
  flock 9
  if pid="$(running_pid)"; then
    say "already running (pid $pid) on $BOOTSTRAP"
    return 0
  fi
  for p in "$PORT" "$CONTROLLER_PORT"; do
    port_open "$p" && die "port $HOST:$p is already in use by another process (not our broker)"
  done
  start=$SECONDS
  ensure_libs
  render_config
  ensure_formatted
  say "starting Kafka $(kafka_version) on $BOOTSTRAP (controller $HOST:$CONTROLLER_PORT), log $LOG"
  # setsid: own session, so Ctrl-C in the terminal that ran `up` (or make) does not reach
  # the broker; the inner shell writes its own pid then execs java, so the pid file is exact.
  # 9>&- : the broker must not inherit the lock fd, or it would hold the lock forever.
  : >"$LOG"
  rm -f "$PIDFILE"
  # shellcheck disable=SC2016 # $$ and $@ are for the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PIDFILE" \
    java "${JAVA_OPTS[@]}" -cp "$LIBS/*" kafka.Kafka "$STATE/server.properties" \
    </dev/null >>"$LOG" 2>&1 9>&- &
  # Phase 1: the port accepts connections (cheap; fail fast if the JVM dies).
  while ! port_open "$PORT"; do
    if ! pid="$(running_pid)"; then
      sleep 0.2 # the pid file may not be written yet right after the fork
      pid="$(running_pid)" || fail_start "broker exited during startup"
    fi
    if (( SECONDS - start > READY_TIMEOUT )); then
      fail_start "port $BOOTSTRAP not open after ${READY_TIMEOUT}s (see $LOG)"
    fi
    sleep 0.5
  done
  # Phase 2: a real client gets cluster metadata (broker + active controller).
  local left=$(( READY_TIMEOUT - (SECONDS - start) ))
  (( left < 5 )) && left=5
  if ! java -cp "$LIBS/*:$CLASSES" KafkaReady "$BOOTSTRAP" "$left" >&2; then
    fail_start "broker did not answer metadata requests within ${READY_TIMEOUT}s (see $LOG)"
  fi
  say "up in $(( SECONDS - start ))s (pid $(cat "$PIDFILE"))"
}

# SIGTERM lets the broker close its logs cleanly (fast restart, no log recovery);
# SIGKILL only if it does not exit within STOP_TIMEOUT.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$PIDFILE"
}

# A broker that never became ready is stopped, so the next `up` starts afresh
# instead of reporting "already running".
fail_start() {
  local pid
  show_log_tail
  if pid="$(running_pid)"; then
    say "stopping the half-started broker (pid $pid)"
    stop_pid "$pid"
  fi
  die "$1"
}

cmd_down() {
  local pid
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock 9
  if ! pid="$(running_pid)"; then
    say "not running"
    rm -f "$PIDFILE"
    return 0
  fi
  say "stopping pid $pid"
  stop_pid "$pid"
  say "stopped"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    if port_open "$PORT"; then
      say "running (pid $pid) on $BOOTSTRAP, Kafka $(kafka_version), data $DATA"
    else
      say "process $pid alive but $BOOTSTRAP not accepting connections (starting or stuck? see $LOG)"
      return 1
    fi
  else
    say "not running"
    return 3
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  fetch) ensure_libs ;;  # the jars only (e.g. before starting where no registry is reachable)
  *) echo "usage: $0 up|down|status|fetch" >&2; exit 2 ;;
esac
