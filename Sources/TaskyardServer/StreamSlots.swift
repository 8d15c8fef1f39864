import Synchronization

/// How many long requests (change streams, waits) each token holds open on this server: one token cannot
/// take every connection, and lock the others out (`/healthz` included), by opening streams it never closes.
final class StreamSlots: Sendable {
    private let held = Mutex<[Int64: Int]>([:])

    /// A slot for `token`, or nil when it holds `limit` already. The slot is given back when released or
    /// dropped (a response body that never ran).
    func take(_ token: Int64, limit: Int) -> Slot? {
        let taken = held.withLock { held -> Bool in
            guard held[token, default: 0] < limit else { return false }
            held[token, default: 0] += 1
            return true
        }
        return taken ? Slot(slots: self, token: token) : nil
    }

    fileprivate func giveBack(_ token: Int64) {
        held.withLock { held in
            let left = held[token, default: 1] - 1
            held[token] = left > 0 ? left : nil
        }
    }

    final class Slot: Sendable {
        private let slots: StreamSlots
        private let token: Int64
        private let released = Atomic(false)

        fileprivate init(slots: StreamSlots, token: Int64) {
            self.slots = slots
            self.token = token
        }

        func release() {
            if !released.exchange(true, ordering: .acquiringAndReleasing) { slots.giveBack(token) }
        }

        deinit { release() }
    }
}
