// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "taskyard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "taskyard", targets: ["TaskyardCLI"]),
        .executable(name: "taskyard-agent", targets: ["TaskyardAgentCLI"]),
        .executable(name: "taskyard-bench", targets: ["TaskyardBenchCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // No traits: Taskyard reads its configuration itself, and swift-configuration costs build time.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // SHA-256 for token hashes and payload digests, Ed25519 for the grants that sign fan-outs.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // TLS on both listeners (NIOSSL is already here through AsyncHTTPClient).
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // Metrics: swift-metrics is already here through Hummingbird; the Prometheus text format.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Spans: the API every component traces with (a no-op until a tracer is bootstrapped), and swift-otel's
        // OTLP/HTTP exporter for `--otel-endpoint` (not its gRPC one: that would build gRPC for nothing).
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
        // Tests only: reads docker-compose.yml.
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // libpq, the only database dependency: libpq-dev on Debian supplies libpq.pc.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // A small PostgreSQL client over libpq: connections on their own threads, pool, LISTEN.
        .target(name: "Postgres", dependencies: ["CLibPQ"]),
        // Starts a private PostgreSQL server from the binaries installed on the machine.
        .target(name: "EmbeddedPostgres", dependencies: ["Postgres"]),
        // Tasks, states, transitions and validation. No I/O.
        .target(name: "TaskyardDomain"),
        // Every SQL statement and the migrations.
        .target(
            name: "TaskyardStore",
            dependencies: ["Postgres", "TaskyardDomain", "TaskyardSecurity"],
            plugins: ["EmbedMigrations"]
        ),
        // W3C trace context as tasks, participant calls and reports carry it, over swift-distributed-tracing.
        .target(
            name: "TaskyardTracing",
            dependencies: [
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ]
        ),
        // The HTTP contract's JSON: the shapes the server writes and the agent and CLI read.
        .target(name: "TaskyardAPI", dependencies: ["TaskyardDomain"]),
        // Credentials: token secrets and their hashes, grants signed by the server and verified by nodes.
        .target(
            name: "TaskyardSecurity",
            dependencies: [
                "TaskyardDomain",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // A typed client for the server's API (agents, the command line, tests).
        .target(
            name: "TaskyardClient",
            dependencies: [
                "TaskyardAPI", "TaskyardDomain", "TaskyardSecurity",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The HTTP server: validation, the API routes, errors in the contract's shape.
        .target(
            name: "TaskyardServer",
            dependencies: [
                "TaskyardStore", "TaskyardAPI", "TaskyardDomain", "TaskyardSecurity", "TaskyardTracing", "Postgres",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                // Webhook deliveries, on the process's HTTP transport (TaskyardClient's).
                "TaskyardClient",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            // The dashboard (/ui): plain files, compiled into the binary; no build step, no Node.
            resources: [.embedInCode("Dashboard/index.html"), .embedInCode("Dashboard/app.js"), .embedInCode("Dashboard/app.css")]
        ),
        // The node agent: polls its node's tasks, fans them out, serves the participant endpoint.
        .target(
            name: "TaskyardAgent",
            dependencies: [
                "TaskyardClient", "TaskyardAPI", "TaskyardDomain", "TaskyardSecurity", "TaskyardTracing",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What the command-line programs share: the options, and the agent command.
        .target(
            name: "TaskyardCommandLine",
            dependencies: [
                "TaskyardAgent", "TaskyardClient", "TaskyardSecurity", "TaskyardDomain", "TaskyardTracing",
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The agent alone, for nodes: no server, no PostgreSQL client (and none of libpq's libraries).
        .executableTarget(name: "TaskyardAgentCLI", dependencies: ["TaskyardCommandLine"]),
        .executableTarget(
            name: "TaskyardCLI",
            dependencies: [
                "TaskyardStore", "EmbeddedPostgres", "TaskyardServer", "TaskyardAgent", "TaskyardClient", "TaskyardCommandLine",
                "TaskyardSecurity", "TaskyardAPI", "TaskyardDomain", "Postgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The benchmark, out of the production binary: it starts `taskyard` and `taskyard-agent` built beside it.
        .executableTarget(
            name: "TaskyardBenchCLI",
            dependencies: [
                "TaskyardStore", "EmbeddedPostgres", "TaskyardClient", "TaskyardCommandLine", "TaskyardSecurity", "TaskyardAPI",
                "TaskyardDomain", "Postgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                // --webhook's receiver.
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Compiles migrations/*.sql into the store module, so the binary carries its schema.
        .executableTarget(name: "EmbedMigrationsTool"),
        .plugin(name: "EmbedMigrations", capability: .buildTool(), dependencies: ["EmbedMigrationsTool"]),
        // Test databases on a real PostgreSQL server (a private one unless TASKYARD_TEST_DATABASE_URL is set).
        .target(name: "TaskyardTestSupport", dependencies: ["Postgres", "EmbeddedPostgres", "TaskyardStore", "TaskyardDomain", "TaskyardSecurity"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "EmbeddedPostgres", "TaskyardTestSupport"]),
        .testTarget(name: "TaskyardDomainTests", dependencies: ["TaskyardDomain"]),
        // The agent's parts that need no network.
        .testTarget(
            name: "TaskyardAgentTests",
            dependencies: ["TaskyardAgent", "TaskyardAPI", "TaskyardClient", "TaskyardDomain", "TaskyardSecurity",
                           .product(name: "Logging", package: "swift-log")]
        ),
        // The server's parts that need no database or network.
        .testTarget(name: "TaskyardServerTests", dependencies: ["TaskyardServer", "TaskyardDomain"]),
        .testTarget(name: "TaskyardStoreTests", dependencies: ["TaskyardStore", "TaskyardDomain", "Postgres", "TaskyardTestSupport"]),
        .testTarget(
            name: "TaskyardEndToEndTests",
            dependencies: ["TaskyardServer", "TaskyardAgent", "TaskyardClient", "TaskyardTestSupport", "EmbeddedPostgres",
                           "TaskyardSecurity", "TaskyardCommandLine", "TaskyardAPI", "TaskyardDomain", "TaskyardStore", "Postgres",
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "NIOHTTP1", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "Yams", package: "Yams")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
