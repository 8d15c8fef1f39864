/// The PostgreSQL type of a result column, by its OID (the built-in OIDs are fixed by PostgreSQL).
public struct PostgresType: Sendable, Hashable, CustomStringConvertible {
    public let oid: UInt32
    public init(oid: UInt32) { self.oid = oid }

    public static let bool = PostgresType(oid: 16)
    public static let bytea = PostgresType(oid: 17)
    public static let char = PostgresType(oid: 18)
    public static let name = PostgresType(oid: 19)
    public static let int8 = PostgresType(oid: 20)
    public static let int2 = PostgresType(oid: 21)
    public static let int4 = PostgresType(oid: 23)
    public static let text = PostgresType(oid: 25)
    public static let oidType = PostgresType(oid: 26)
    public static let json = PostgresType(oid: 114)
    public static let float4 = PostgresType(oid: 700)
    public static let float8 = PostgresType(oid: 701)
    public static let unknown = PostgresType(oid: 705)
    public static let bpchar = PostgresType(oid: 1042)
    public static let varchar = PostgresType(oid: 1043)
    public static let timestamp = PostgresType(oid: 1114)
    public static let timestamptz = PostgresType(oid: 1184)
    public static let numeric = PostgresType(oid: 1700)
    public static let jsonb = PostgresType(oid: 3802)

    static let arrayElements: [UInt32: PostgresType] = [
        1000: .bool, 1001: .bytea, 1002: .char, 1003: .name, 1016: .int8, 1005: .int2, 1007: .int4,
        1009: .text, 1028: .oidType, 199: .json, 1021: .float4, 1022: .float8, 1014: .bpchar,
        1015: .varchar, 1115: .timestamp, 1185: .timestamptz, 1231: .numeric, 3807: .jsonb,
    ]

    /// The element type when this is a one-dimensional array type.
    public var arrayElement: PostgresType? { Self.arrayElements[oid] }

    static let names: [UInt32: String] = [
        16: "bool", 17: "bytea", 18: "char", 19: "name", 20: "int8", 21: "int2", 23: "int4", 25: "text",
        26: "oid", 114: "json", 700: "float4", 701: "float8", 705: "unknown", 1042: "bpchar",
        1043: "varchar", 1114: "timestamp", 1184: "timestamptz", 1700: "numeric", 3802: "jsonb",
        1000: "bool[]", 1016: "int8[]", 1007: "int4[]", 1009: "text[]", 1015: "varchar[]",
        1185: "timestamptz[]", 3807: "jsonb[]", 199: "json[]", 1022: "float8[]",
    ]

    public var description: String { Self.names[oid] ?? "oid \(oid)" }
}
