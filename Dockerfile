# Strata as a static binary in an empty image (FROM scratch: nothing to
# pull, so it builds offline). The binary is built on the host first:
#
#   make docker                      # builds bin/docker/strata, then the image strata:local
#   docker run -p 9092:9092 -p 9644:9644 -e STRATA_ADVERTISED_ADDRESS=localhost:9092 strata:local
#
# `make docker` is `make docker-bin` (CGO_ENABLED=0, GOOS=linux, the
# version stamped in) followed by `docker build -t strata:local .`.
# docker-compose.yml runs a three-node cluster from this image, and
# `make docker-smoke` (scripts/docker-smoke.sh) tests both.

FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="strata" \
      org.opencontainers.image.description="A Kafka-compatible distributed commit log" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY bin/docker/strata /strata
COPY LICENSE /LICENSE
# The data volume belongs to 65532 (distroless's "nonroot"); a named volume
# mounted there starts as a copy of it, owner included.
COPY --chown=65532:65532 bin/docker/data/ /data/
USER 65532:65532
# Kafka listener, controller (Raft) listener, HTTP (/metrics, /healthz, /readyz).
EXPOSE 9092 9093 9644
VOLUME /data
# The listeners bind every interface. A wildcard listener advertises the
# container's host name, which only other containers on its network can
# resolve: set STRATA_ADVERTISED_ADDRESS (or --advertised-address) to the
# address clients reach.
ENV STRATA_LISTEN=0.0.0.0:9092 \
    STRATA_DATA_DIR=/data \
    STRATA_HTTP_LISTEN=0.0.0.0:9644
# SIGTERM starts the controlled shutdown (leadership moves first): give the
# container time to finish it (docker stop -t, compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/strata"]
CMD ["serve"]
