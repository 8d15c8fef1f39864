# The taskyard binaries in a small runtime image: taskyard, and taskyard-agent (the agent alone, for
# nodes: `docker run --entrypoint taskyard-agent taskyard --server …`). Build: docker build -t taskyard .
FROM swift:6.2-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN swift build -c release --product taskyard && swift build -c release --product taskyard-agent \
 && install -D "$(swift build -c release --show-bin-path)/taskyard" /out/taskyard \
 && install -D "$(swift build -c release --show-bin-path)/taskyard-agent" /out/taskyard-agent

FROM swift:6.2-bookworm-slim
# /tokens/*, /tls/*: the mount points of docker-compose.yml's per-service volumes (a new volume takes its
# owner from its mount point in the image); openssl makes the example's certificates.
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates openssl && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/taskyard taskyard \
 && useradd --system --no-create-home --shell /usr/sbin/nologin taskyard-handler \
 && install -d -o taskyard -m 0700 /tokens /keys \
 && install -d -o taskyard -m 0700 /tokens/admin /tokens/n1 /tokens/n2 /tokens/n3 \
 && install -d -o taskyard -m 0700 /tls /tls/ca-key /tls/server /tls/n1 /tls/n2 /tls/n3
COPY --from=build /out/taskyard /out/taskyard-agent /usr/local/bin/
COPY examples/handlers /handlers
COPY examples/compose /examples/compose
USER taskyard
ENTRYPOINT ["taskyard"]
CMD ["--help"]
