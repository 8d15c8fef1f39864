extension Duration {
    /// The duration in seconds, fractions kept: what SQL's `make_interval(secs => …)` and JSON take.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// Whole milliseconds, for NIO's TimeAmount, AsyncHTTPClient's timeouts and PostgreSQL's `…ms` settings.
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
