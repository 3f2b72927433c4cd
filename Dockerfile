# One image with every covid-etl binary; docker-compose.yml picks the one each service runs.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
      -p extractor -p transformer -p loader -p notifier -p dashboard -p etl-cli -p etl-tests \
 && mkdir -p /out \
 && cp target/release/extractor target/release/transformer target/release/loader \
       target/release/notifier target/release/dashboard target/release/etl \
       target/release/fake-github /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 covid
COPY --from=build /out/ /usr/local/bin/
USER covid
ENV LOG_FORMAT=json
