# The taskyard binary in a small runtime image. Build: docker build -t taskyard .
FROM swift:6.2-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN swift build -c release --product taskyard \
 && install -D "$(swift build -c release --show-bin-path)/taskyard" /out/taskyard

FROM swift:6.2-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/taskyard taskyard
COPY --from=build /out/taskyard /usr/local/bin/taskyard
COPY examples/handlers /handlers
USER taskyard
ENTRYPOINT ["taskyard"]
CMD ["--help"]
