using System.Runtime.InteropServices;

namespace Sqair.Native;

/// <summary>
/// Flushes denormal floats to zero (x86 FTZ and DAZ), as <c>torch.set_flush_denormal(True)</c> does. Gradients
/// of saturated sigmoids and exponentials underflow into the denormal range, where every multiply-add takes a
/// slow path: on a Xeon with AVX-512, MKL's sgemm made the backward pass at T = 3 take 828 ms against 197 ms
/// with the flags set (docs/performance.md, "Denormals"). Values below 1.2·10⁻³⁸ become zero, far below
/// anything the model's sums can tell apart.
/// </summary>
internal static partial class Denormals
{
    static bool unavailable;

    /// <summary>
    /// Sets the flags on the calling thread (they are per thread; threads started later by it inherit them, so
    /// the command line sets them first thing, before libtorch starts its worker threads). Cheap enough to call
    /// per frame; does nothing where libtorch lacks the entry point or the CPU the flags.
    /// </summary>
    public static void FlushToZero()
    {
        if (unavailable) return;
        try
        {
            unavailable = !SetFlushDenormal(true);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            unavailable = true;
        }
    }

    /// <summary>
    /// libtorch's static at::Context::setFlushDenormal on the calling thread; returns whether the CPU supports the
    /// flags. Tests clear them with it.
    /// </summary>
    [LibraryImport("libtorch_cpu", EntryPoint = "_ZN2at7Context16setFlushDenormalEb")]
    [return: MarshalAs(UnmanagedType.U1)]
    internal static partial bool SetFlushDenormal([MarshalAs(UnmanagedType.U1)] bool on);
}
