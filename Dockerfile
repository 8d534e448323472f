# Vigil's service image: the release binary on a slim Debian, run as a user of
# its own. Build: docker build -t vigil . (the CDK app builds it from here).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p vigil && cp target/release/vigil /vigil

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 vigil \
    && mkdir -p /var/lib/vigil /etc/vigil && chown vigil /var/lib/vigil
COPY --from=build /vigil /usr/local/bin/vigil
COPY deploy/vigil.toml /etc/vigil/vigil.toml
USER vigil
EXPOSE 8750
ENTRYPOINT ["/usr/local/bin/vigil"]
CMD ["serve", "--config", "/etc/vigil/vigil.toml", "--listen", "0.0.0.0:8750", "--data-dir", "/var/lib/vigil"]
