import Foundation

/// Free TCP ports on the loopback interface, for servers a test or a benchmark starts.
public enum LocalPorts {
    /// `count` consecutive ports that nothing listens on now (another program may still take one before
    /// it is used: callers start their servers at once).
    public static func free(_ count: Int) -> [Int] {
        while true {
            let base = Int.random(in: 20_000...55_000)
            let ports = Array(base..<base + count)
            if ports.allSatisfy(isFree) { return ports }
        }
    }

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
