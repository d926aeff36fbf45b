# syntax=docker/dockerfile:1
#
# Gatehouse's container image: the static binary on distroless, as the
# nonroot user, with the embedded SQLite store on the /data volume.
#
#   make image
#   docker run -p 8181:8181 -v gatehouse-data:/data \
#     -e GATEHOUSE_BOOTSTRAP_KEY=nram_... -e GATEHOUSE_ADMIN_TOKEN=... gatehouse:<version>
#
# Every setting is also a GATEHOUSE_* variable (README, "Configuration").
# test/image builds the binary with this file's go build command and runs
# it the way CMD and HEALTHCHECK do, as uid 65532 in an empty directory,
# without Docker; it also checks that the flags are the Makefile's.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -v -ldflags "-s -w -X github.com/gatehouse-pdp/gatehouse/pdp.Version=${VERSION}" \
    -o /out/gatehouse ./cmd/gatehouse
# The volume's mount point, made here: distroless has no shell to mkdir with.
RUN mkdir /out/data

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="Gatehouse" \
      org.opencontainers.image.description="Policy decision point for AI-agent actions; speaks the Novyx Control API, decides with embedded OPA" \
      org.opencontainers.image.source="https://github.com/gatehouse-pdp/gatehouse" \
      org.opencontainers.image.url="https://github.com/gatehouse-pdp/gatehouse" \
      org.opencontainers.image.documentation="https://github.com/gatehouse-pdp/gatehouse#operations" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/gatehouse /gatehouse
# Owned by nonroot before VOLUME, so a new named volume starts writable.
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME /data
# nonroot, by number: Kubernetes' runAsNonRoot can only verify a numeric user.
USER 65532:65532
EXPOSE 8181
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/gatehouse", "healthcheck", "--addr", "127.0.0.1:8181"]
ENTRYPOINT ["/gatehouse"]
CMD ["serve", "--addr", "0.0.0.0:8181", "--store", "sqlite:///data/gatehouse.db"]
