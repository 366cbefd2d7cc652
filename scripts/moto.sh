# Sourced by scripts/test.sh: starts moto servers on 127.0.0.1 and stops them by PID on exit.
#   start_moto VAR   starts one server on a free port and exports VAR=http://127.0.0.1:PORT
# One server per region where regions matter (a region can then be cut off or stopped).

MOTO_PIDS=()

stop_moto() {
    for pid in "${MOTO_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${MOTO_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    MOTO_PIDS=()
}

free_port() {
    .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_moto() {
    local var="$1" port pid log
    port="$(free_port)"
    mkdir -p target/moto
    log="target/moto/${var}.log"
    .venv/bin/python scripts/moto_server.py 127.0.0.1 "$port" >"$log" 2>&1 &
    pid=$!
    MOTO_PIDS+=("$pid")
    for _ in $(seq 1 100); do
        if .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/data.json', timeout=1)" 2>/dev/null; then
            export "$var=http://127.0.0.1:$port"
            echo "$var=http://127.0.0.1:$port (pid $pid, log $log)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "moto server for $var exited; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "moto server for $var did not answer within 20 s; its log:" >&2
    cat "$log" >&2
    return 1
}
