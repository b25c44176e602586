# otelcol-ensemble image, built from collector/ with the OpenTelemetry Collector Builder.
# Build context: the repository root (deploy/compose/compose.yaml sets it).
#
#   docker build -f deploy/compose/collector.Dockerfile -t otelcol-ensemble .
#
# Stage 1 runs collector/build.sh, the same script `make collector` runs, so the image
# holds the binary the tests exercise (builder and module versions from
# collector/builder-config.yaml). Stage 2 is a small runtime with the binary and configs.

FROM golang:1.26-bookworm AS build
WORKDIR /src/collector
COPY collector/builder-config.yaml collector/build.sh ./
RUN ./build.sh

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/otelcol-ensemble otelcol \
 && mkdir -p /var/lib/otelcol-ensemble \
 && chown otelcol /var/lib/otelcol-ensemble
COPY --from=build /src/collector/_build/otelcol-ensemble /otelcol-ensemble
COPY collector/config.yaml collector/gateway.yaml collector/debug.yaml /etc/otelcol-ensemble/
COPY collector/backends/ /etc/otelcol-ensemble/backends/
# The gateway's token-file check (run before the collector by the Kubernetes init container
# and the systemd unit): POSIX sh, so the image needs no other runtime.
COPY scripts/check-gateway-tokens.sh /usr/local/bin/check-gateway-tokens
USER otelcol
ENV ENSEMBLE_STORAGE_DIR=/var/lib/otelcol-ensemble/queue \
    ENSEMBLE_ARCHIVE_DIR=/var/lib/otelcol-ensemble/archive
VOLUME ["/var/lib/otelcol-ensemble"]
# OTLP gRPC, OTLP HTTP, Prometheus exporter, own metrics, health check
EXPOSE 4317 4318 8889 8888 13133
ENTRYPOINT ["/otelcol-ensemble"]
CMD ["--config=/etc/otelcol-ensemble/config.yaml"]
