import Synchronization

/// A continuation resumed by whichever of several parties comes first; the others find it gone.
final class OnceContinuation<T: Sendable>: Sendable {
    private enum State {
        case waitingForContinuation
        case waiting(CheckedContinuation<T, Never>)
        /// Resumed before the continuation was set: delivered when it is.
        case early(T)
        case done
    }
    private let state = Mutex(State.waitingForContinuation)

    func set(_ continuation: CheckedContinuation<T, Never>) {
        let early: T? = state.withLock { state in
            switch state {
            case .waitingForContinuation:
                state = .waiting(continuation)
                return nil
            case .early(let value):
                state = .done
                return value
            case .waiting, .done:
                return nil
            }
        }
        if let early { continuation.resume(returning: early) }
    }

    func resume(_ value: T) {
        let waiting: CheckedContinuation<T, Never>? = state.withLock { state in
            switch state {
            case .waitingForContinuation:
                state = .early(value)
                return nil
            case .waiting(let continuation):
                state = .done
                return continuation
            case .early, .done:
                return nil
            }
        }
        waiting?.resume(returning: value)
    }
}
