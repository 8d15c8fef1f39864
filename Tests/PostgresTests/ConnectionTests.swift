import Foundation
import Postgres
import Testing
import TaskyardTestSupport

@Suite("Connections and statements")
struct ConnectionTests {
    @Test("connects from a postgres:// URL and from libpq keywords")
    func connectsFromURLAndKeywords() async throws {
        try await TestDatabase.withDatabase { configuration in
            let host = try #require(configuration.host)
            let database = try #require(configuration.database)
            let encodedHost = host.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? host
            let url = "postgresql://postgres@/\(database)?host=\(encodedHost)&port=\(configuration.port ?? "5432")"
            let keywords = "host=\(host) port=\(configuration.port ?? "5432") user=postgres dbname=\(database)"
            for text in [url, keywords] {
                let connection = try await PostgresConnection.connect(try PostgresConfiguration(text))
                let name: String = try await connection.perform { connection in
                    try connection.query("SELECT current_database() AS name").single().decode("name")
                }
                #expect(name == database)
                await connection.close()
            }
        }
    }

    @Test("a malformed connection string and an unreachable server give clear errors")
    func connectionErrors() async throws {
        #expect {
            _ = try PostgresConfiguration("postgres://host:notaport/db?sslmode=")
            _ = try PostgresConfiguration("this is not = valid = conninfo")
        } throws: { error in
            (error as? PostgresError)?.kind == .configuration
        }
        var configuration = PostgresConfiguration(parameters: ["host": "/nonexistent-taskyard-socket", "port": "5999",
                                                               "user": "postgres", "password": "secret"])
        configuration.connectTimeoutSeconds = 2
        let error = try await #require(throws: PostgresError.self) {
            _ = try await PostgresConnection.connect(configuration)
        }
        #expect(error.kind == .connection)
        #expect(error.message.contains("nonexistent-taskyard-socket"))
        #expect(!error.message.contains("secret"), "the password must not leak into error messages")
    }

    @Test("server errors carry SQLSTATE, message, detail, hint and constraint")
    func serverErrorFields() async throws {
        try await TestDatabase.withPool { pool in
            try await pool.withConnection { connection in
                try connection.execute("CREATE TABLE things (id int PRIMARY KEY)")
                try connection.query("INSERT INTO things VALUES ($1)", [1])
            }
            let duplicate = try await #require(throws: PostgresError.self) {
                try await pool.withConnection { connection in try connection.query("INSERT INTO things VALUES ($1)", [1]) }
            }
            #expect(duplicate.kind == .server)
            #expect(duplicate.sqlState == "23505")
            #expect(duplicate.isUniqueViolation)
            #expect(duplicate.constraint == "things_pkey")
            #expect(duplicate.detail == "Key (id)=(1) already exists.")
            let unknownFunction = try await #require(throws: PostgresError.self) {
                try await pool.withConnection { connection in try connection.query("SELECT no_such_function($1::int)", [1]) }
            }
            #expect(unknownFunction.sqlState == "42883")
            #expect(unknownFunction.hint?.contains("No function matches") == true)
            // The connection that failed a statement is still usable.
            let one: Int = try await pool.withConnection { connection in try connection.query("SELECT 1 AS one").single().decode("one") }
            #expect(one == 1)
        }
    }

    @Test("values travel as parameters, never as SQL text")
    func parametersAreNotInterpolated() async throws {
        try await TestDatabase.withPool { pool in
            let hostile = "'); DROP TABLE notes; --"
            let stored: String = try await pool.withConnection { connection in
                try connection.execute("CREATE TABLE notes (body text)")
                try connection.query("INSERT INTO notes VALUES ($1)", [hostile])
                return try connection.query("SELECT body FROM notes").single().decode("body")
            }
            #expect(stored == hostile)
            let error = try await #require(throws: PostgresError.self) {
                try await pool.withConnection { connection in try connection.query("SELECT $1::text", ["a\u{0}b"]) }
            }
            #expect(error.message.contains("NUL"))
        }
    }

    @Test("rows decode into typed Swift values, NULL into optionals")
    func typedDecoding() async throws {
        try await TestDatabase.withPool { pool in
            let instant = Date(timeIntervalSince1970: 1_795_430_130.123456)
            let row = try await pool.withConnection { connection in
                try connection.query("""
                    SELECT $1::bigint AS big, $2::integer AS small, $3::boolean AS flag, $4::text AS name,
                           $5::float8 AS ratio, $6::timestamptz AS at, $7::jsonb AS doc, $8::text[] AS tags,
                           NULL::text AS missing, $9::bigint[] AS ids
                    """, [Int64.max, Int32.min, true, "héllo", 0.1, instant, PostgresJSON(text: #"{"a": [1, "x"]}"#),
                          ["plain", "with space", "quote\"d", "back\\slash", "comma,", "{brace}", "NULL"],
                          [Int64(1), Int64(-2)]])
                    .single()
            }
            #expect(try row.decode("big", as: Int64.self) == Int64.max)
            #expect(try row.decode("small", as: Int32.self) == Int32.min)
            #expect(try row.decode("flag", as: Bool.self) == true)
            #expect(try row.decode("name", as: String.self) == "héllo")
            #expect(try row.decode("ratio", as: Double.self) == 0.1)
            let at = try row.decode("at", as: Date.self)
            #expect(abs(at.timeIntervalSince1970 - instant.timeIntervalSince1970) < 0.000_001)
            struct Document: Decodable, Equatable { let a: [Element]
                enum Element: Decodable, Equatable { case number(Int), text(String)
                    init(from decoder: any Decoder) throws {
                        let c = try decoder.singleValueContainer()
                        if let n = try? c.decode(Int.self) { self = .number(n) } else { self = .text(try c.decode(String.self)) }
                    }
                }
            }
            #expect(try row.decode("doc", as: PostgresJSON.self).decode(Document.self) == Document(a: [.number(1), .text("x")]))
            #expect(try row.decode("tags", as: [String].self)
                == ["plain", "with space", "quote\"d", "back\\slash", "comma,", "{brace}", "NULL"])
            #expect(try row.decode("missing", as: String?.self) == nil)
            #expect(try row.decode("ids", as: [Int64].self) == [1, -2])
        }
    }

    @Test("a type mismatch or an unexpected NULL is a decoding error naming the column")
    func decodingErrors() async throws {
        try await TestDatabase.withPool { pool in
            let row = try await pool.withConnection { connection in
                try connection.query("SELECT 'abc'::text AS name, NULL::bigint AS nothing").single()
            }
            let mismatch = try #require(throws: PostgresError.self) { try row.decode("name", as: Int64.self) }
            #expect(mismatch.kind == .decoding)
            #expect(mismatch.message.contains("\"name\"") && mismatch.message.contains("text"))
            let null = try #require(throws: PostgresError.self) { try row.decode("nothing", as: Int64.self) }
            #expect(null.kind == .decoding)
            #expect(null.message.contains("NULL"))
            let missing = try #require(throws: PostgresError.self) { try row.decode("nope", as: String.self) }
            #expect(missing.message.contains("nope"))
        }
    }

    @Test("timestamps round-trip with microseconds, before 1970 too")
    func timestampsRoundTrip() async throws {
        try await TestDatabase.withPool { pool in
            let instants = [Date(timeIntervalSince1970: -1_234_567_890.5), Date(timeIntervalSince1970: 0),
                            Date(timeIntervalSince1970: 4_102_444_800.000_001)]
            for instant in instants {
                let back: Date = try await pool.withConnection { connection in
                    try connection.query("SELECT $1::timestamptz AS at", [instant]).single().decode("at")
                }
                #expect(abs(back.timeIntervalSince1970 - instant.timeIntervalSince1970) < 0.000_002)
            }
            let epoch: Double = try await pool.withConnection { connection in
                try connection.query("SELECT extract(epoch FROM $1::timestamptz)::float8 AS e",
                                     [Date(timeIntervalSince1970: 86_400.25)]).single().decode("e")
            }
            #expect(epoch == 86_400.25)
        }
    }

    @Test("a transaction commits when its closure returns and rolls back when it throws")
    func transactions() async throws {
        struct Abort: Error {}
        try await TestDatabase.withPool { pool in
            try await pool.withConnection { connection in try connection.execute("CREATE TABLE items (n int)") }
            try await pool.transaction { connection in try connection.query("INSERT INTO items VALUES ($1)", [1]) }
            await #expect(throws: Abort.self) {
                try await pool.transaction { connection in
                    try connection.query("INSERT INTO items VALUES ($1)", [2])
                    throw Abort()
                }
            }
            let values: [Int] = try await pool.withConnection { connection in
                try connection.query("SELECT n FROM items ORDER BY n").map { row throws(PostgresError) in try row.decode("n") }
            }
            #expect(values == [1])
        }
    }

    @Test("a named statement is prepared once per connection and reused")
    func preparedStatementCache() async throws {
        try await TestDatabase.withPool(maximumConnections: 1) { pool in
            let statement = PostgresStatement("test.add", "SELECT $1::int + $2::int AS sum")
            for n in 1...3 {
                let sum: Int = try await pool.query(statement, [n, 10]).single().decode("sum")
                #expect(sum == n + 10)
            }
            let prepared: [String] = try await pool.withConnection { connection in
                try connection.query("SELECT name FROM pg_prepared_statements").map { row throws(PostgresError) in try row.decode("name") }
            }
            #expect(prepared == ["test.add"])
        }
    }

    @Test("blocking libpq calls leave Swift's cooperative threads free")
    func blockingCallsDoNotStarveConcurrency() async throws {
        try await TestDatabase.withPool(maximumConnections: 6) { pool in
            // Six one-second sleeps at once: more than the cooperative pool has threads on this machine.
            // Were libpq blocking those threads, a ticker on the cooperative pool could not tick at all
            // until the sleeps ended; on dedicated threads it ticks throughout.
            let ticks = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        try await pool.withConnection { connection in try connection.query("SELECT pg_sleep(1)") }
                        return 0
                    }
                }
                group.addTask {
                    var ticks = 0
                    let clock = ContinuousClock()
                    let end = clock.now + .milliseconds(800)
                    while clock.now < end {
                        try await Task.sleep(for: .milliseconds(10))
                        ticks += 1
                    }
                    return ticks
                }
                return try await group.reduce(0, +)
            }
            // Unloaded, about 70 ticks fit in 800 ms; the bar is low because the rest of the suite runs
            // alongside on two cores. Starved, there would be none.
            #expect(ticks >= 3)
        }
    }
}
