# Shared helpers of the benchmark scripts (sourced, not run).

# A TCP or UDP port that is free right now on 127.0.0.1.
freeport() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
freeudp() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits (10 s at most) until a server answers PING on the port.
waitping() {
    i=0
    until redis-cli -p "$1" ping >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "bench: server on port $1 did not start" >&2; exit 1; }
        sleep 0.1
    done
}
