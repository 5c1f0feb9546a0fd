# Shared by the bench/security scripts (sourced, not run): a throw-away CA and server certificate, and stopping
# the broker the script started.

# make_certs DIR: DIR/ca.pem (the CA clients trust), DIR/server.pem and DIR/server.key (CN and SAN localhost and
# 127.0.0.1), and DIR/kafka-keystore.pem (the key and certificate in one file: Kafka's PEM keystore).
make_certs() {
    (
        cd "$1"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost
        echo "subjectAltName=DNS:localhost,IP:127.0.0.1" > san.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
            -extfile san.ext
        cat server.key server.pem > kafka-keystore.pem
    ) 2>/dev/null
}

# stop_broker: stops the process in BROKER_PID (if it still runs) and clears it.
stop_broker() {
    if [ -n "${BROKER_PID:-}" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill "$BROKER_PID"
        wait "$BROKER_PID" || true
    fi
    BROKER_PID=""
}
