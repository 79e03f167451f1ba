#!/bin/sh
# Makes the secrets compose.yaml mounts, in ./secrets/ (mode 0700, never committed):
# one random PostgreSQL password, the database URL that carries it, an Ed25519 key for
# the server's tokens, Grafana's admin password, and RabbitMQ's user with the relay's
# URL for it. Leaves existing files alone.
#
# The files are readable by everyone (0644) so the containers' non-root users can read
# their bind-mounted copies; the directory (0700) is what keeps them from other users
# of this machine.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
chmod 0700 secrets
random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
if [ ! -s secrets/pg_password ]; then
    random > secrets/pg_password
fi
if [ ! -s secrets/database_url ]; then
    printf 'postgres://goticket:%s@postgres:5432/goticket\n' "$(cat secrets/pg_password)" > secrets/database_url
fi
if [ ! -s secrets/jwt_key.pem ]; then
    if command -v goticket >/dev/null; then
        goticket keygen > secrets/jwt_key.pem
    else
        openssl genpkey -algorithm ed25519 -out secrets/jwt_key.pem
    fi
fi
if [ ! -s secrets/grafana_admin_password ]; then
    random > secrets/grafana_admin_password
fi
# RabbitMQ's user, and the relay's URL for it: the server then runs the event relay.
if [ ! -s secrets/rabbitmq.conf ] || [ ! -s secrets/relay_url ]; then
    amqp=$(random)
    printf 'default_user = goticket\ndefault_pass = %s\n' "$amqp" > secrets/rabbitmq.conf
    printf 'amqp://goticket:%s@rabbitmq:5672/%%2f\n' "$amqp" > secrets/relay_url
fi
chmod 0644 secrets/*
echo "secrets ready in $(pwd)/secrets"
