# syntax=docker/dockerfile:1
# Gigafactory: one image for a coordinator node (`serve`, the default) and a factory agent
# (`factory ...`). Multi-stage: a Rust builder with cargo caches, then a slim Debian runtime
# running as a non-root user. Health checks use the binary itself (`gigafactory probe`), so
# the runtime needs no curl.
#
#   docker build -t gigafactory .
#   docker build --build-arg FEATURES=etcd -t gigafactory:etcd .    # etcd store support
#   docker run -p 7070:7070 -v gf-data:/var/lib/gigafactory gigafactory
#   docker run gigafactory factory --coordinator http://node:7070 --capabilities linux ...

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
# Cargo features of the binary: `etcd`, `s3` (comma-separated); `fdb` also needs the
# FoundationDB client library in both stages and is not covered here.
ARG FEATURES=""
# protoc: the etcd client's build compiles etcd's protocol definitions.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry, git checkouts and target dir live in cache mounts: a rebuild after a source
# change recompiles only the workspace. The binary is copied out of the cached target dir,
# which is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin gigafactory --features "${FEATURES}" \
 && install -D -m 0755 target/release/gigafactory /out/gigafactory

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: https coordinators, trackers and S3 with the system's roots. git: the
# factory agent's jobs usually clone and push.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 gigafactory \
 && useradd --system --uid 10001 --gid gigafactory --home-dir /var/lib/gigafactory \
      --shell /usr/sbin/nologin gigafactory \
 && install -d -o gigafactory -g gigafactory -m 0750 /var/lib/gigafactory
COPY --from=builder /out/gigafactory /usr/local/bin/gigafactory
USER gigafactory:gigafactory
WORKDIR /var/lib/gigafactory
# A coordinator on an embedded store in the volume; the first start writes the admin token
# to a 0600 file there (never to the log). Point GIGAFACTORY_STORE at etcd or FoundationDB for
# a cluster.
ENV GIGAFACTORY_LISTEN=0.0.0.0:7070 \
    GIGAFACTORY_STORE=embedded:/var/lib/gigafactory/store \
    GIGAFACTORY_ADMIN_TOKEN_FILE=/var/lib/gigafactory/admin-token \
    GIGAFACTORY_LOG_FORMAT=json
VOLUME ["/var/lib/gigafactory"]
EXPOSE 7070
# Liveness: /healthz answers while the process serves. Readiness (/readyz: the store answers
# and no actor crash-loops) is for an orchestrator to route traffic on, e.g. a Kubernetes
# readinessProbe `exec: [gigafactory, probe, http://127.0.0.1:7070/readyz]` or an httpGet
# on /readyz; restarting on a store outage would not help, so it is not the HEALTHCHECK.
# A factory container has no listener: run it with `--no-healthcheck` or override this.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["gigafactory", "probe", "--timeout-secs", "4", "http://127.0.0.1:7070/healthz"]
ENTRYPOINT ["gigafactory"]
CMD ["serve"]
