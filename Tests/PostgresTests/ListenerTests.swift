import Foundation
import Postgres
import Testing
import TaskyardTestSupport

@Suite("LISTEN/NOTIFY")
struct ListenerTests {
    @Test("notifications arrive as an async sequence; a rolled-back NOTIFY never does")
    func deliversCommittedNotifications() async throws {
        struct Abort: Error {}
        try await TestDatabase.withPool { pool in
            let listener = try await PostgresListener.start(configuration: pool.configuration, channels: ["jobs"])
            var iterator = listener.notifications.makeAsyncIterator()
            let notify = PostgresStatement("test.notify", "SELECT pg_notify($1, $2)")

            _ = try? await pool.transaction { connection in
                try connection.query(notify, ["jobs", "rolled back"])
                throw Abort()
            }
            try await pool.query(notify, ["jobs", "first"])
            try await pool.query(notify, ["other-channel", "ignored"])
            try await pool.query(notify, ["jobs", "second"])
            let first = await iterator.next()
            let second = await iterator.next()
            #expect(first?.channel == "jobs")
            #expect(first?.payload == "first")
            #expect(second?.payload == "second")

            // A channel added later, with a name that needs quoting.
            try await listener.listen("node c1.n-2")
            try await pool.query(notify, ["node c1.n-2", "later"])
            let third = await iterator.next()
            #expect(third?.channel == "node c1.n-2")
            #expect(third?.payload == "later")
            await listener.close()
        }
    }

    @Test("a burst of notifications arrives complete and in order")
    func burst() async throws {
        try await TestDatabase.withPool { pool in
            let listener = try await PostgresListener.start(configuration: pool.configuration, channels: ["burst"])
            try await pool.withConnection { connection in
                try connection.transaction { connection in
                    for n in 0..<500 { try connection.query("SELECT pg_notify($1, $2)", ["burst", String(n)]) }
                }
            }
            var received: [String] = []
            for await notification in listener.notifications {
                received.append(notification.payload)
                if received.count == 500 { break }
            }
            #expect(received == (0..<500).map(String.init))
            await listener.close()
        }
    }
}
