import Foundation

/// RFC 3339 times: written as UTC with milliseconds (`2026-11-23T10:15:30.123Z`), read with or without
/// fractional seconds and with any offset. A time written and read again is the same millisecond (Foundation's
/// ISO 8601 style writes `…56.158` read back as `…56.157`).
public enum RFC3339 {
    public static func format(_ date: Date) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        write(date, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// nil unless `text` is an RFC 3339 time in the years 1 to 9999: `2026-11-23T10:15:30Z`, with any number
    /// of fractional digits (whole microseconds are kept) and `Z` or an offset `±HH:MM`.
    public static func parse(_ text: String) -> Date? {
        var text = text
        return text.withUTF8 { parse($0) }.flatMap { DateRange.contains($0) ? $0 : nil }
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Date? {
        var index = 0
        func number(_ width: Int) -> Int? {
            guard index + width <= bytes.count else { return nil }
            var value = 0
            for _ in 0..<width {
                guard (48...57).contains(bytes[index]) else { return nil }
                value = value * 10 + Int(bytes[index] - 48)
                index += 1
            }
            return value
        }
        func expect(_ characters: String) -> Bool {
            guard index < bytes.count, characters.utf8.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2), expect("Tt"),
              let hour = number(2), expect(":"), let minute = number(2), expect(":"), let second = number(2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60
        else { return nil }
        var microsecond = 0
        if expect(".") {
            var digits = 0
            while index < bytes.count, (48...57).contains(bytes[index]) {
                if digits < 6 { microsecond = microsecond * 10 + Int(bytes[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 6) { microsecond *= 10 }
        }
        var offset = 0
        if !expect("Zz") {
            let sign = expect("+") ? 1 : expect("-") ? -1 : 0
            guard sign != 0, let hours = number(2), expect(":"), let minutes = number(2), hours < 24, minutes < 60 else { return nil }
            offset = sign * (hours * 3600 + minutes * 60)
        }
        guard index == bytes.count else { return nil }
        // timegm counts in the proleptic Gregorian calendar, as RFC 3339 and PostgreSQL do. A day past its
        // month's end (04-31) would roll over into the next: not a date.
        var fields = tm()
        fields.tm_year = Int32(year - 1900)
        fields.tm_mon = Int32(month - 1)
        fields.tm_mday = Int32(day)
        fields.tm_hour = Int32(hour)
        fields.tm_min = Int32(minute)
        fields.tm_sec = Int32(second)
        let seconds = timegm(&fields)
        guard fields.tm_mday == Int32(day) || second == 60 else { return nil }
        return Date(timeIntervalSince1970: Double(Int64(seconds) - Int64(offset)) + Double(microsecond) / 1_000_000)
    }
}

extension RFC3339 {
    /// `2026-11-23T10:15:30.123Z` with `gmtime_r`: no formatter, no allocation. Milliseconds are cut, from the
    /// time rounded to whole microseconds (PostgreSQL's precision) or, far from 1970, to what a Double holds
    /// there: a time read from text writes the same text. Proleptic Gregorian, as `parse` reads and
    /// PostgreSQL counts.
    static func write(_ date: Date, into bytes: inout [UInt8]) {
        let interval = date.timeIntervalSince1970
        guard interval.isFinite, abs(interval) < 1e15 else { return writeWithFoundation(date, into: &bytes) }
        let whole = interval.rounded(.down)
        let tolerance = max(0.5, 4 * interval.ulp * 1_000_000)
        var millisecond = Int64(((interval - whole) * 1_000_000 + tolerance) / 1000)
        var seconds = Int64(whole)
        if millisecond >= 1000 {
            millisecond -= 1000
            seconds += 1
        }
        var time = time_t(seconds)
        var fields = tm()
        guard gmtime_r(&time, &fields) != nil else { return writeWithFoundation(date, into: &bytes) }
        let year = Int64(fields.tm_year) + 1900
        guard (0...9999).contains(year) else { return writeWithFoundation(date, into: &bytes) }
        func digits(_ value: Int64, _ count: Int) {
            var divisor: Int64 = 1
            for _ in 1..<count { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(year, 4)
        bytes.append(UInt8(ascii: "-"))
        digits(Int64(fields.tm_mon) + 1, 2)
        bytes.append(UInt8(ascii: "-"))
        digits(Int64(fields.tm_mday), 2)
        bytes.append(UInt8(ascii: "T"))
        digits(Int64(fields.tm_hour), 2)
        bytes.append(UInt8(ascii: ":"))
        digits(Int64(fields.tm_min), 2)
        bytes.append(UInt8(ascii: ":"))
        digits(Int64(fields.tm_sec), 2)
        bytes.append(UInt8(ascii: "."))
        digits(millisecond, 3)
        bytes.append(UInt8(ascii: "Z"))
    }

    private static func writeWithFoundation(_ date: Date, into bytes: inout [UInt8]) {
        bytes.append(contentsOf: date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)).utf8)
    }
}
