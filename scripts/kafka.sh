#!/usr/bin/env bash
# A local Apache Kafka for development and tests: one KRaft node that is both
# broker and controller, run from the release's jars (Java 17+ and Maven).
#
#   scripts/kafka.sh install   fetch Apache Kafka into the tool cache (once)
#   scripts/kafka.sh start     start on 127.0.0.1:$HUNTFLOW_KAFKA_PORT; wait until it answers
#   scripts/kafka.sh stop      stop it (SIGTERM, then SIGKILL after 30 s)
#   scripts/kafka.sh status    say whether it runs (exit status 1 if not)
#   scripts/kafka.sh clean     stop it and delete its run directory (its data)
#   scripts/kafka.sh path      print the directory of the jars
#
# Environment:
#   HUNTFLOW_TOOLS                    tool cache (default ~/.cache/huntflow/tools)
#   HUNTFLOW_KAFKA_PORT               client port (default 9092)
#   HUNTFLOW_KAFKA_CONTROLLER_PORT    controller port (default client port + 1)
#   HUNTFLOW_KAFKA_DIR                run directory: data, config, log, pid
#                                     (default $HUNTFLOW_TOOLS/kafka-run-PORT)
#   HUNTFLOW_KAFKA_HEAP               JVM heap (default 256m)
#   HUNTFLOW_KAFKA_START_TIMEOUT      seconds to wait for the broker (default 120)
#   HUNTFLOW_KAFKA_NO_INSTALL         if set, start fails instead of installing
#
# The data is kept across stop and start with the same run directory.
set -euo pipefail
TOOLS="${HUNTFLOW_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/huntflow/tools}"
KAFKA_VERSION=4.4.0
LOG4J_VERSION=2.26.1
# The SLF4J 2 API that log4j-slf4j2-impl binds to; Kafka's poms ask for 1.7.
SLF4J_VERSION=2.0.17
HOME_DIR="$TOOLS/kafka-$KAFKA_VERSION"
LIB="$HOME_DIR/lib"
STAMP="kafka_2.13 kafka-tools $KAFKA_VERSION log4j $LOG4J_VERSION slf4j $SLF4J_VERSION"
PORT="${HUNTFLOW_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${HUNTFLOW_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
RUN_DIR="${HUNTFLOW_KAFKA_DIR:-$TOOLS/kafka-run-$PORT}"
HEAP="${HUNTFLOW_KAFKA_HEAP:-256m}"
START_TIMEOUT="${HUNTFLOW_KAFKA_START_TIMEOUT:-120}"

say() { echo "kafka: $*" >&2; }

installed() {
    [[ -f "$HOME_DIR/installed" && "$(cat "$HOME_DIR/installed")" == "$STAMP" ]]
}

dependency() {
    printf '<dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n' "$@"
}

install() {
    if installed; then return 0; fi
    for tool in java mvn; do
        command -v "$tool" >/dev/null || { say "$tool is missing (Kafka needs Java 17+ and Maven to fetch it)"; exit 1; }
    done
    mkdir -p "$TOOLS"
    # One install at a time; a second one waits and then finds it done.
    (flock 9 && fetch) 9>"$TOOLS/kafka-install.lock"
}

fetch() {
    if installed; then return 0; fi
    say "fetching Apache Kafka $KAFKA_VERSION into $HOME_DIR"
    local work
    work="$(mktemp -d)"
    {
        echo '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        echo '<groupId>local</groupId><artifactId>kafka-runtime</artifactId><version>1</version><packaging>pom</packaging>'
        echo '<dependencies>'
        dependency org.apache.kafka kafka_2.13 "$KAFKA_VERSION"
        dependency org.apache.kafka kafka-tools "$KAFKA_VERSION"
        dependency org.apache.logging.log4j log4j-core "$LOG4J_VERSION"
        dependency org.apache.logging.log4j log4j-slf4j2-impl "$LOG4J_VERSION"
        dependency org.slf4j slf4j-api "$SLF4J_VERSION"
        echo '</dependencies></project>'
    } >"$work/pom.xml"
    # A throw-away local repository: the tool cache keeps only the jars.
    if ! (cd "$work" && mvn -q -B -Dstyle.color=never -Dmaven.repo.local="$work/repository" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$work/lib") \
        >"$work/mvn.log" 2>&1; then
        say "fetching Apache Kafka with Maven failed:"
        cat "$work/mvn.log" >&2
        rm -rf "$work"
        exit 1
    fi
    rm -rf "$HOME_DIR"
    mkdir -p "$HOME_DIR"
    mv "$work/lib" "$LIB"
    rm -rf "$work"
    echo "$STAMP" >"$HOME_DIR/installed"
    say "installed $(find "$LIB" -name '*.jar' | wc -l) jars"
}

# The broker's JVM, and that of the command-line tools (small, quick to start).
SERVER_JAVA=(java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$RUN_DIR/log4j2.properties" -cp "$LIB/*")
TOOL_JAVA=(java -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$RUN_DIR/tools-log4j2.properties" -cp "$LIB/*")

# The pid of the broker started in RUN_DIR, if it still runs.
running_pid() {
    [[ -f "$RUN_DIR/pid" ]] || return 1
    local pid
    pid="$(cat "$RUN_DIR/pid")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    # Not some other process that got the same pid.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$RUN_DIR/server.properties" || return 1
    echo "$pid"
}

write_config() {
    cat >"$RUN_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$RUN_DIR/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=4194304
EOF
    cat >"$RUN_DIR/log4j2.properties" <<EOF
appender.out.type=Console
appender.out.name=out
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.out.ref=out
logger.request.name=kafka.request.logger
logger.request.level=WARN
EOF
    cat >"$RUN_DIR/tools-log4j2.properties" <<EOF
appender.err.type=Console
appender.err.name=err
appender.err.target=SYSTEM_ERR
appender.err.layout.type=PatternLayout
appender.err.layout.pattern=%p %m (%c)%n
rootLogger.level=WARN
rootLogger.appenderRef.err.ref=err
EOF
}

# A random cluster id: 16 bytes in unpadded URL-safe base64, not starting
# with '-' (as Kafka's own generator).
cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" != -* ]] && break
    done
    echo "$id"
}

log_tail() {
    tail -40 "$RUN_DIR/kafka.log" >&2 2>/dev/null || true
}

start() {
    if ! installed; then
        if [[ -n "${HUNTFLOW_KAFKA_NO_INSTALL:-}" ]]; then
            say "Apache Kafka is not installed in $HOME_DIR; run scripts/kafka.sh install"
            exit 1
        fi
        install
    fi
    if pid="$(running_pid)"; then
        say "already running on 127.0.0.1:$PORT (pid $pid, $RUN_DIR)"
        return 0
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        say "127.0.0.1:$PORT is taken by another process"
        exit 1
    fi
    mkdir -p "$RUN_DIR"
    write_config
    local began=$SECONDS
    if [[ ! -f "$RUN_DIR/data/meta.properties" ]]; then
        "${TOOL_JAVA[@]}" kafka.tools.StorageTool format --standalone --cluster-id "$(cluster_id)" \
            --config "$RUN_DIR/server.properties" >>"$RUN_DIR/kafka.log" 2>&1 || {
            say "formatting the storage in $RUN_DIR/data failed:"
            log_tail
            exit 1
        }
    fi
    (exec "${SERVER_JAVA[@]}" kafka.Kafka "$RUN_DIR/server.properties" </dev/null >>"$RUN_DIR/kafka.log" 2>&1) &
    echo $! >"$RUN_DIR/pid"
    local pid=$!
    # Ready when a metadata request through the client port lists the topics.
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "the broker exited while starting; log $RUN_DIR/kafka.log:"
            log_tail
            rm -f "$RUN_DIR/pid"
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null &&
            "${TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" \
                --command-config <(printf "request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n") --list >/dev/null 2>>"$RUN_DIR/probe.log"; then
            break
        fi
        if ((SECONDS - began > START_TIMEOUT)); then
            say "no answer on 127.0.0.1:$PORT after $START_TIMEOUT s; log $RUN_DIR/kafka.log:"
            log_tail
            stop
            exit 1
        fi
        sleep 0.5
    done
    say "Apache Kafka $KAFKA_VERSION on 127.0.0.1:$PORT (pid $pid, $RUN_DIR), ready in $((SECONDS - began)) s"
}

stop() {
    local pid
    pid="$(running_pid)" || { rm -f "$RUN_DIR/pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "no exit 30 s after SIGTERM; killing pid $pid"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$RUN_DIR/pid"
}

status() {
    if pid="$(running_pid)"; then
        echo "running on 127.0.0.1:$PORT (pid $pid, $RUN_DIR)"
    else
        echo "not running ($RUN_DIR)"
        return 1
    fi
}

clean() {
    stop
    # Only a directory this script set up.
    if [[ -f "$RUN_DIR/server.properties" ]]; then
        rm -rf "$RUN_DIR"
    fi
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    clean) clean ;;
    path) echo "$LIB" ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac
