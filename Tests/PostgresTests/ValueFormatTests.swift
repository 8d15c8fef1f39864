import Foundation
@testable import Postgres
import Testing

@Suite("Value formats")
struct ValueFormatTests {
    func parse(_ text: String) -> Date? {
        Array(text.utf8).withUnsafeBufferPointer { PostgresTimestamp.parse($0) }
    }

    @Test("timestamptz text in the shapes PostgreSQL prints")
    func timestampShapes() {
        #expect(parse("1970-01-01 00:00:00+00") == Date(timeIntervalSince1970: 0))
        #expect(parse("2026-11-23 10:15:30.5+00") == Date(timeIntervalSince1970: 1_795_428_930.5))
        #expect(parse("2026-11-23 12:15:30.5+02") == Date(timeIntervalSince1970: 1_795_428_930.5))
        #expect(parse("2026-11-23 04:45:30.5-05:30") == Date(timeIntervalSince1970: 1_795_428_930.5))
        #expect(parse("infinity") == .distantFuture)
        #expect(parse("2026-11-23") == nil)
        #expect(parse("garbage") == nil)
    }

    @Test("formatting and parsing agree")
    func formatParse() {
        for seconds in [-86_400.000_001, 0, 951_782_400.75, 1_795_436_130.123_456] {
            let date = Date(timeIntervalSince1970: seconds)
            let back = parse(PostgresTimestamp.format(date))
            #expect(back.map { abs($0.timeIntervalSince1970 - seconds) < 0.000_001 } == true, "\(seconds)")
        }
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29 00:00:00+00")
    }

    @Test("array literals: quoting, NULL and empty")
    func arrays() {
        func parse(_ text: String) -> [String?]? {
            Array(text.utf8).withUnsafeBufferPointer { PostgresArrayLiteral.parse($0) }?
                .map { $0.map { String(decoding: $0, as: UTF8.self) } }
        }
        #expect(parse("{}") == [])
        #expect(parse("{a,b}") == ["a", "b"])
        #expect(parse(#"{"a b","c\"d",NULL,"NULL"}"#) == ["a b", "c\"d", nil, "NULL"])
        #expect(parse("{{1,2},{3,4}}") == nil)
        #expect(["x", "y\"z"].postgresText == #"{"x","y\"z"}"#)
        #expect([String?.none, "a"].postgresText == #"{NULL,"a"}"#)
    }
}
