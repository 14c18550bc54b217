# EHR integration gateway container (issue 10). Not built in CI here (no
# container runtime), kept simple on purpose; CI lints it with hadolint
# (gateway/daemon/tests/deploy_dockerfile.rs, installed by .ci/install.d/60-deploy.sh).
#
#   docker build --build-arg EHR_GATEWAY_GIT_REV=$(git rev-parse --short=12 HEAD) -t ehr-gateway .
#   docker run --read-only --tmpfs /tmp -v ehr-gateway-data:/var/lib/ehr-gateway \
#     -v /etc/ehr-gateway:/etc/ehr-gateway:ro -p 2575:2575 -p 8080:8080 ehr-gateway
#
# Inside a container the admin server must listen on 0.0.0.0:8080 to be
# published, and a non-loopback admin address needs TLS (the daemon refuses
# plain HTTP there): set `[admin] listen = "0.0.0.0:8080"` with `[admin.tls]`
# cert and key under /etc/ehr-gateway (key mode 0600, readable by uid 10001).
# `allow_plaintext = true` is only for a TLS-terminating proxy on a private
# network. Also `[store] path = "/var/lib/ehr-gateway"`. See docs/security.md.

FROM rust:1.89-bookworm AS build
WORKDIR /src
ARG EHR_GATEWAY_GIT_REV=unknown
ENV EHR_GATEWAY_GIT_REV=${EHR_GATEWAY_GIT_REV}
COPY . .
RUN cargo build --release --locked -p ehr-gateway \
 && install -D -m 0755 target/release/ehr-gateway /out/ehr-gateway

FROM debian:bookworm-slim
# Versions come from the pinned Debian release (bookworm) and its security
# updates; pinning exact package versions would break on every point release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ehr-gateway \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin ehr-gateway \
 && install -d -o ehr-gateway -g ehr-gateway -m 0750 /var/lib/ehr-gateway \
 && install -d -m 0755 /etc/ehr-gateway /usr/share/ehr-gateway
COPY --from=build /out/ehr-gateway /usr/local/bin/ehr-gateway
COPY mappings /usr/share/ehr-gateway/mappings
# Numeric, so the runtime can check it is not root without a passwd lookup.
USER 10001:10001
VOLUME ["/var/lib/ehr-gateway"]
EXPOSE 8080 2575
# HTTPS (the certificate is not for 127.0.0.1, hence -k: this only asks the
# process itself whether it is alive), or plain HTTP behind a TLS proxy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["sh", "-c", "curl -fsSk -o /dev/null https://127.0.0.1:8080/healthz || curl -fsS -o /dev/null http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/ehr-gateway"]
CMD ["run", "--config", "/etc/ehr-gateway/gateway.toml", "--data-dir", "/var/lib/ehr-gateway"]
