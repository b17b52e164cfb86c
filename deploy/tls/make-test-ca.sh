#!/bin/sh
# Makes a throwaway certificate authority and, signed by it, a server certificate for
# localhost / 127.0.0.1 and a client certificate: enough to try mutual TLS locally and in
# the tests. Not for production: real certificates come from your PKI (cert-manager,
# Vault, a cloud CA), with the same three server settings.
#
# Usage: deploy/tls/make-test-ca.sh [OUT_DIR] [SERVER_NAMES] [CLIENT_NAME]
#   OUT_DIR       where to write (default ./.data/tls); created if missing
#   SERVER_NAMES  subjectAltName of the server certificate
#                 (default DNS:localhost,IP:127.0.0.1,IP:::1)
#   CLIENT_NAME   common name of the client certificate (default moneymovement-client)
#
# Writes (keys are 0600):
#   ca.pem                      the CA certificate: MM_TLS_CLIENT_CA_FILE on the server,
#                               and the root certificate clients trust
#   ca.key                      the CA's key (keep it to sign more certificates)
#   server.pem, server.key      MM_TLS_CERT_FILE and MM_TLS_KEY_FILE
#   client.pem, client.key      the client's certificate chain and key
#
# Needs only the openssl command. Certificates are ECDSA P-256, valid 30 days.
set -eu

OUT_DIR=${1:-./.data/tls}
SERVER_NAMES=${2:-DNS:localhost,IP:127.0.0.1,IP:::1}
CLIENT_NAME=${3:-moneymovement-client}
DAYS=30

mkdir -p "$OUT_DIR"
cd "$OUT_DIR"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# The CA: self-signed, allowed to sign certificates and nothing else.
key ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$DAYS" -subj "/CN=moneymovement test CA" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem

# sign NAME SUBJECT EXTENSIONS: a key and a CA-signed certificate NAME.pem.
sign() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 \
    -days "$DAYS" -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

sign server "/CN=moneymovement server" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$SERVER_NAMES"

sign client "/CN=$CLIENT_NAME" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

rm -f ca.srl
chmod 644 ca.pem server.pem client.pem
echo "wrote $(pwd): ca.pem ca.key server.pem server.key client.pem client.key"
