import Foundation

/// Free TCP ports on the loopback interface, for servers a test or a benchmark starts.
public enum LocalPorts {
    /// `count` consecutive ports that nothing listens on now (another program may still take one before
    /// it is used: callers start their servers at once). Picked below the kernel's range of ephemeral
    /// ports, so that no outgoing connection — a pool's, an HTTP client's — is given one meanwhile (ports
    /// picked inside it were taken so between the pick and the bind: "Address already in use").
    public static func free(_ count: Int) -> [Int] {
        let ceiling = max(ephemeralRangeStart - count - 1, 10_000 + count)
        while true {
            let base = Int.random(in: 10_000...ceiling)
            let ports = Array(base..<base + count)
            if ports.allSatisfy(isFree) { return ports }
        }
    }

    /// The first port the kernel hands to outgoing connections (Linux: `ip_local_port_range`; 32768 where
    /// it cannot be read).
    static let ephemeralRangeStart: Int = {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
              let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap({ Int($0) }),
              first > 11_000
        else { return 32_768 }
        return first
    }()

    private static func isFree(_ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
