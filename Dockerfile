# realtime-server in a container: build with the project's own dependency script, run from the
# Debian package (so the runtime stage holds only the libraries the package depends on).
#   docker build -t boundary-realtime .
#   docker run --rm -p 3000:3000 -e REALTIME_JWT_SECRET=... -e REALTIME_API_KEY=... boundary-realtime
# See docs/operations.md.

FROM debian:12 AS build
WORKDIR /src
# The dependency list is the one `make deps` installs; copied alone first so that a source change
# does not reinstall the packages.
COPY scripts/install-deps.sh scripts/
COPY clients/js/package.json clients/js/package-lock.json clients/js/
COPY tests/e2e/package.json tests/e2e/package-lock.json tests/e2e/
RUN ./scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make package JOBS="$(nproc)" && cp build/release/realtime-server_*.deb /realtime-server.deb

FROM debian:12 AS runtime
COPY --from=build /realtime-server.deb /tmp/realtime-server.deb
# apt resolves the package's Depends (libssl3, libhiredis, libboost-json, ...): runtime libraries only.
RUN apt-get update \
 && apt-get install -y --no-install-recommends /tmp/realtime-server.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/realtime-server.deb
# The packaged config listens on loopback; in a container, every interface. Secrets come from the
# environment (REALTIME_JWT_SECRET or REALTIME_JWT_PUBLIC_KEY, and REALTIME_API_KEY).
ENV REALTIME_HOST=0.0.0.0
USER nobody
EXPOSE 3000
STOPSIGNAL SIGTERM
# No curl in the runtime image: bash's /dev/tcp asks /health/realtime (200 healthy or degraded).
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${REALTIME_PORT:-3000} && printf 'GET /health/realtime HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -q ' 200'"]
ENTRYPOINT ["/usr/bin/realtime-server", "--config", "/etc/boundary-realtime/config.toml"]
