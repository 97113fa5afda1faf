# Strata as a static binary in an empty image.
#
#   docker build -t strata --build-arg VERSION=$(git describe --tags --always) .
#   docker run -p 9092:9092 -p 9644:9644 -e STRATA_ADVERTISED_ADDRESS=localhost:9092 strata
#
# docker-compose.yml runs a three-node cluster from it.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/stratalog/strata/internal/version.version=${VERSION} -X github.com/stratalog/strata/internal/version.commit=${COMMIT} -X github.com/stratalog/strata/internal/version.date=${DATE}" \
      -o /out/strata ./cmd/strata \
 && mkdir -p /out/data

FROM scratch
COPY --from=build /out/strata /strata
COPY --from=build --chown=65532:65532 /out/data /data
COPY LICENSE /LICENSE
# Not root: the data dir belongs to 65532 (distroless's "nonroot").
USER 65532:65532
# Kafka listener, controller (Raft) listener, HTTP (/metrics, /healthz, /readyz).
EXPOSE 9092 9093 9644
VOLUME /data
# The listeners bind every interface; set STRATA_ADVERTISED_ADDRESS (or
# --advertised-address) to the address clients reach.
ENV STRATA_LISTEN=0.0.0.0:9092 \
    STRATA_DATA_DIR=/data \
    STRATA_HTTP_LISTEN=0.0.0.0:9644
STOPSIGNAL SIGTERM
ENTRYPOINT ["/strata"]
CMD ["serve"]
