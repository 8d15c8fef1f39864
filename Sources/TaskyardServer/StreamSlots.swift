import Synchronization

/// How many long requests (change streams, waits) each token, and each client address, holds open on this
/// server: one token — or one client, with as many tokens as it likes — cannot take every connection and
/// lock the others out (`/healthz` included) by opening streams it never closes.
final class StreamSlots: Sendable {
    private struct Held {
        var byToken: [Int64: Int] = [:]
        var byAddress: [String: Int] = [:]
    }

    private let held = Mutex(Held())

    /// Why a slot was refused.
    enum Refusal: Error {
        case token
        case address
    }

    /// A slot for `token` from `address` (nil: no address known, counted by token only), or the share
    /// that is full. The slot is given back when released or dropped (a response body that never ran).
    func take(_ token: Int64, limit: Int, address: String? = nil, addressLimit: Int = .max) -> Result<Slot, Refusal> {
        let refusal = held.withLock { held -> Refusal? in
            guard held.byToken[token, default: 0] < limit else { return .token }
            if let address {
                guard held.byAddress[address, default: 0] < addressLimit else { return .address }
                held.byAddress[address, default: 0] += 1
            }
            held.byToken[token, default: 0] += 1
            return nil
        }
        if let refusal { return .failure(refusal) }
        return .success(Slot(slots: self, token: token, address: address))
    }

    fileprivate func giveBack(_ token: Int64, address: String?) {
        held.withLock { held in
            let left = held.byToken[token, default: 1] - 1
            held.byToken[token] = left > 0 ? left : nil
            if let address {
                let left = held.byAddress[address, default: 1] - 1
                held.byAddress[address] = left > 0 ? left : nil
            }
        }
    }

    final class Slot: Sendable {
        private let slots: StreamSlots
        private let token: Int64
        private let address: String?
        private let released = Atomic(false)

        fileprivate init(slots: StreamSlots, token: Int64, address: String?) {
            self.slots = slots
            self.token = token
            self.address = address
        }

        func release() {
            if !released.exchange(true, ordering: .acquiringAndReleasing) { slots.giveBack(token, address: address) }
        }

        deinit { release() }
    }
}
