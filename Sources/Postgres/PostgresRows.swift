import CLibPQ

/// The rows a statement returned. Owns libpq's `PGresult`.
///
/// `@unchecked Sendable` is sound here: a `PGresult` is immutable once libpq has built it, does not
/// refer to its connection, and libpq documents it as safe to read from any thread; this class only
/// reads it and frees it once, in `deinit`.
public final class PostgresRows: @unchecked Sendable, RandomAccessCollection {
    private let result: OpaquePointer
    public let count: Int
    /// The number of rows an INSERT, UPDATE or DELETE touched (`PQcmdTuples`), or the row count.
    public let affectedRows: Int
    public let columnNames: [String]
    let columnTypes: [PostgresType]
    private let columnIndexes: [String: Int]

    init(taking result: OpaquePointer) {
        self.result = result
        count = Int(PQntuples(result))
        let columns = Int(PQnfields(result))
        var names: [String] = []
        var types: [PostgresType] = []
        var indexes: [String: Int] = [:]
        for column in 0..<columns {
            let name = String(cString: PQfname(result, Int32(column)))
            names.append(name)
            types.append(PostgresType(oid: PQftype(result, Int32(column))))
            if indexes[name] == nil { indexes[name] = column }
        }
        columnNames = names
        columnTypes = types
        columnIndexes = indexes
        let tuples = String(cString: PQcmdTuples(result))
        affectedRows = Int(tuples) ?? count
    }

    deinit { PQclear(result) }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(position: Int) -> PostgresRow { PostgresRow(rows: self, index: position) }

    /// The only row; an error when there is none or more than one.
    public func single() throws(PostgresError) -> PostgresRow {
        guard count == 1 else {
            throw PostgresError(kind: .decoding, message: "expected exactly one row, got \(count)")
        }
        return self[0]
    }

    func column(named name: String) throws(PostgresError) -> Int {
        guard let index = columnIndexes[name] else {
            throw PostgresError(kind: .decoding,
                                message: "no column \"\(name)\" in the result (columns: \(columnNames.joined(separator: ", ")))")
        }
        return index
    }

    func decode<T: PostgresDecodable>(row: Int, column: Int, as type: T.Type) throws(PostgresError) -> T {
        guard column >= 0, column < columnNames.count else {
            throw PostgresError(kind: .decoding, message: "no column \(column) in a result of \(columnNames.count)")
        }
        let name = columnNames[column]
        if PQgetisnull(result, Int32(row), Int32(column)) != 0 {
            return try T.decode(from: PostgresCell(bytes: nil, type: columnTypes[column], column: name))
        }
        let length = Int(PQgetlength(result, Int32(row), Int32(column)))
        let value = PQgetvalue(result, Int32(row), Int32(column))!
        return try value.withMemoryRebound(to: UInt8.self, capacity: length) { start throws(PostgresError) in
            try T.decode(from: PostgresCell(bytes: UnsafeBufferPointer(start: start, count: length),
                                            type: columnTypes[column], column: name))
        }
    }
}

/// One row of a result.
public struct PostgresRow: Sendable {
    public let rows: PostgresRows
    public let index: Int

    /// The value of the named column as `T`; throws a `.decoding` error on a type mismatch or NULL
    /// (ask for `T?` to accept NULL).
    public func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws(PostgresError) -> T {
        try rows.decode(row: index, column: try rows.column(named: column), as: type)
    }

    /// The value at a column position.
    public func decode<T: PostgresDecodable>(column: Int, as type: T.Type = T.self) throws(PostgresError) -> T {
        try rows.decode(row: index, column: column, as: type)
    }
}
