import Postgres

/// Every statement on `clusters`.
enum ClustersSQL {
    static let columns = "id, name, created_at"

    static let create = PostgresStatement("clusters.create", """
        INSERT INTO clusters (id, name) VALUES ($1, $2)
        ON CONFLICT (id) DO NOTHING
        RETURNING \(columns)
        """)

    static let list = PostgresStatement("clusters.list", """
        SELECT \(columns) FROM clusters ORDER BY id
        """)

    static let exists = PostgresStatement("clusters.exists", """
        SELECT EXISTS (SELECT 1 FROM clusters WHERE id = $1) AS found
        """)

    static let all = [create, list, exists]
}
