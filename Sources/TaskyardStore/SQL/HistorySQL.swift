import Postgres

/// The finished history's ranges of task ids (`migrations/0013_history_partitions.sql`): made ahead of the
/// sequence, dropped whole when retention allows.
enum HistorySQL {
    /// Makes ranges until $3 ranges (and at least $4 ids) past the sequence have one; a range spans the ids
    /// of the last $1 seconds, at least $2.
    static let extend = PostgresStatement("history.extend", """
        SELECT taskyard_extend_history(make_interval(secs => $1::double precision), $2::bigint, $3::integer, $4::bigint) AS made
        """)

    /// Drops the oldest range when all of it finished more than $1 seconds ago; NULL when it must stay.
    static let retireOldest = PostgresStatement("history.retire_oldest", """
        SELECT taskyard_retire_history_partition(now() - make_interval(secs => $1::double precision)) AS dropped
        """)

    /// Ids below this lie in ranges that are complete (every id handed out): retention drops those whole.
    static let closedBelow = PostgresStatement("history.closed_below", """
        SELECT max(upper_id) AS closed_below FROM history_partitions
         WHERE upper_id <= (SELECT last_value FROM tasks_id_seq) + 1
        """)

    static let ranges = PostgresStatement("history.ranges", """
        SELECT lower_id, upper_id FROM history_partitions ORDER BY lower_id
        """)

    static let all = [extend, retireOldest, closedBelow, ranges]
}
