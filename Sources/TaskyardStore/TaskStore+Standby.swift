import Foundation
import Postgres

extension TaskStore {
    /// A store on a streaming standby, for reads only (nothing is migrated there: the primary's schema
    /// arrives with its WAL).
    public static func standby(database: PostgresConfiguration, poolSize: Int) -> TaskStore {
        TaskStore(pool: PostgresPool(configuration: database, options: .init(maximumConnections: poolSize)))
    }

    /// How far behind this standby's replay is, in seconds: 0 when it has replayed all it received and is
    /// streaming, else the time since the last transaction it replayed was committed on the primary; nil
    /// on a server that is not a standby.
    public func replayLag() async throws -> Double? {
        try await pool.query(Self.replayLagStatement).single().decode("lag")
    }

    static let replayLagStatement = PostgresStatement("replica.lag", """
        SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL
                    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
                         AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN 0
                    ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::double precision AS lag
        """)
}
