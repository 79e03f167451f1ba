# syntax=docker/dockerfile:1
# The goticket image: `goticket serve` on :8080, non-root, health-checked on /healthz.
#
#   docker build -t goticket .
#   docker run --rm -p 8080:8080 -e GOTICKET_DB_FILE=/run/secrets/database_url ... goticket
#
# Stage 1 builds the release binary with libpq compiled in (feature bundled-libpq), so
# the runtime stage needs no libpq package; stage 2 is distroless: libc, libssl, CA
# certificates and the binary, no shell, no package manager.
# Checked by hadolint and checkov in .ci/run (scripts/check-deploy.sh).

# The toolchain this repository is built and tested with (see README).
FROM rust:1.95-slim-bookworm AS build
# Build tools only (this stage is thrown away). Versions are not pinned: Debian's
# security updates replace them, so a pin would break the build at every point
# release; the base image's tag pins the distribution.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libssl-dev make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --locked: exactly the dependency versions Cargo.lock records.
RUN cargo build --release --locked -p goticket-cli --features bundled-libpq \
    && install -D -m 0755 target/release/goticket /out/goticket \
    && install -d -m 0750 /out/data

# Distroless' cc image carries glibc, libgcc, libssl 3 and CA certificates; the
# :nonroot variant runs as uid 65532. The tag names Debian 12, like the build stage.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/goticket /usr/local/bin/goticket
# SQLite databases (the embedded default) go on a volume here; PostgreSQL needs none.
# The folder belongs to the server's user, and a new named volume copies that.
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
VOLUME ["/data"]
USER 65532:65532
EXPOSE 8080
ENV GOTICKET_DB=/data/goticket.db
# No shell in the image: the binary asks its own server (it opens no database).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/goticket", "health", "--url", "http://127.0.0.1:8080/healthz", "--timeout", "3s"]
ENTRYPOINT ["/usr/local/bin/goticket"]
CMD ["serve", "--addr", "0.0.0.0:8080", "--json-logs"]
