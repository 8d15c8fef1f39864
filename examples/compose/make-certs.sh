#!/bin/sh
# Makes the TLS files of docker-compose.yml's example deployment, once: a private CA, and for the server and
# each agent a key and a certificate for its compose host name, each in its own folder (mounted only by
# that service) with the CA's certificate beside it. The CA's key stays in its own folder, mounted only here.
# Usage: make-certs.sh ROOT NAME... (ROOT/ca-key holds the CA key; ROOT/<name>/ gets cert.pem, key.pem, ca.pem)
set -eu
root=$1
shift
umask 077
if [ ! -f "$root/ca-key/ca-key.pem" ]; then
    openssl ecparam -name prime256v1 -genkey -noout -out "$root/ca-key/ca-key.pem"
    openssl req -x509 -new -key "$root/ca-key/ca-key.pem" -sha256 -days 3650 -subj "/CN=Taskyard example CA" \
        -out "$root/ca-key/ca.pem"
fi
for name in "$@"; do
    dir=$root/$name
    [ -f "$dir/cert.pem" ] && continue
    # The compose service's host name; the server's also answers on loopback (its port is published there).
    host=$name
    [ "$name" = server ] || host=agent-$name
    extra=""
    [ "$name" = server ] && extra=",DNS:localhost,IP:127.0.0.1"
    openssl ecparam -name prime256v1 -genkey -noout -out "$dir/key.pem"
    openssl req -new -key "$dir/key.pem" -subj "/CN=$host" -out "$dir/request.csr"
    printf 'subjectAltName=DNS:%s%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$host" "$extra" > "$dir/extensions"
    openssl x509 -req -in "$dir/request.csr" -CA "$root/ca-key/ca.pem" -CAkey "$root/ca-key/ca-key.pem" \
        -CAcreateserial -days 825 -sha256 -extfile "$dir/extensions" -out "$dir/cert.pem"
    cp "$root/ca-key/ca.pem" "$dir/ca.pem"
    rm -f "$dir/request.csr" "$dir/extensions"
done
