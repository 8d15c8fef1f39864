// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "taskyard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "taskyard", targets: ["TaskyardCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
            dependencies: ["Postgres", "TaskyardDomain"],
            plugins: ["EmbedMigrations"]
        ),
        .executableTarget(
            name: "TaskyardCLI",
            dependencies: [
                "TaskyardStore", "EmbeddedPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Compiles migrations/*.sql into the store module, so the binary carries its schema.
        .executableTarget(name: "EmbedMigrationsTool"),
        .plugin(name: "EmbedMigrations", capability: .buildTool(), dependencies: ["EmbedMigrationsTool"]),
        // Test databases on a real PostgreSQL server (a private one unless TASKYARD_TEST_DATABASE_URL is set).
        .target(name: "TaskyardTestSupport", dependencies: ["Postgres", "EmbeddedPostgres", "TaskyardStore"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "TaskyardTestSupport"]),
        .testTarget(name: "TaskyardDomainTests", dependencies: ["TaskyardDomain"]),
        .testTarget(name: "TaskyardStoreTests", dependencies: ["TaskyardStore", "TaskyardTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
