# Plumb's image: the `plumb` binary that scripts/image built and tested
# (the whole end-to-end suite runs against that very file through
# PLUMB_TEST_BIN before it is copied here), with the helm and kubectl
# (Kustomize) binaries the tests rendered with beside it.
#
#   scripts/image [--skip-tests] [--tag plumb:0.1.0]
#
# Build context: target/image/ (plumb, helm, kubectl), staged by
# scripts/image. All three are static binaries (plumb: glibc linked in,
# static-pie; helm and kubectl: Go), so the base has no libc at all.
FROM gcr.io/distroless/static-debian12:nonroot
COPY plumb helm kubectl /usr/local/bin/
USER 999:999
ENV PLUMB_LOG=info
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/plumb"]
CMD ["serve", "--listen=0.0.0.0:8080", "--data-dir=/data"]
