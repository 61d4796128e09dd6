using System.Runtime.InteropServices;

namespace Sqair.Native;

/// <summary>
/// Tunes glibc's malloc, which libtorch allocates every tensor with. By default glibc serves
/// blocks above 128 KB–32 MB with fresh mmap calls and returns freed memory to the system, so a
/// training step, which frees and reallocates the same few hundred MB of activations, page-faults
/// them all in again each time (about 5 % of the cycles and a third of the backward pass at batch
/// 32; docs/performance.md). Keeping freed memory in the heap makes the next step reuse it.
/// </summary>
internal static partial class NativeAllocator
{
    // glibc malloc.h: M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX
    const int TrimThreshold = -1, TopPad = -2, MmapThreshold = -3, ArenaMax = -8;

    /// <summary>
    /// The largest blocks glibc will still take from the heap (its cap on M_MMAP_THRESHOLD on 64-bit).
    /// </summary>
    const int HeapBlockLimit = 32 << 20;
    /// <summary>Free heap memory glibc may keep before returning it: more than a step at T = 10 uses.</summary>
    const int KeepFree = 1 << 30;
    /// <summary>How much the heap grows at a time: fewer, larger extensions.</summary>
    const int GrowBy = 64 << 20;
    /// <summary>
    /// Heaps (arenas) at most. Each keeps its freed memory, and training shards run on thread-pool
    /// threads that glibc would give arenas of their own: unbounded, two shards at T = 10 peaked at
    /// 2.0 GB, with one arena 1.2 GB but slower (threads wait for its lock), with two 1.5 GB.
    /// </summary>
    const int Arenas = 2;

    static bool configured;

    /// <summary>
    /// Applies the settings once per process; does nothing where glibc is absent (macOS, Windows, musl).
    /// </summary>
    public static void Configure()
    {
        if (configured || !OperatingSystem.IsLinux()) return;
        configured = true;
        try
        {
            // mallopt returns 0 for a value it refuses: glibc's defaults then stay, which is only slower.
            _ = mallopt(MmapThreshold, HeapBlockLimit);
            _ = mallopt(TrimThreshold, KeepFree);
            _ = mallopt(TopPad, GrowBy);
            _ = mallopt(ArenaMax, Arenas);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            // not glibc: its own allocator's defaults stay
        }
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int mallopt(int param, int value);
}
