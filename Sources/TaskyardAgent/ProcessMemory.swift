#if canImport(Glibc)
import Glibc
#endif

/// An agent spends most of its life idle between bursts: what a burst allocated should go back to the
/// system when it ends, rather than stay in glibc's malloc arenas. glibc's `malloc_trim` and `mallopt`
/// are not in Swift's Glibc module, so they are looked up by name (on other C libraries they are absent
/// and these do nothing).
public enum ProcessMemory {
    /// Fewer malloc arenas than glibc's default of eight per core: the agent's threads are few and its
    /// allocations small, and every arena keeps free memory of its own.
    /// For a process that is an agent and nothing else: it sets the whole process's allocator.
    public static func limitArenas() {
        #if canImport(Glibc)
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mArenaMax: Int32 = -8  // M_ARENA_MAX in <malloc.h>
        _ = unsafeBitCast(symbol, to: Mallopt.self)(mArenaMax, 2)
        #endif
    }

    /// Returns freed heap memory to the system.
    public static func returnFreedMemory() {
        #if canImport(Glibc)
        typealias MallocTrim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
        #endif
    }
}
