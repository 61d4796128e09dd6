namespace Sqair.Native;

/// <summary>
/// The process-wide settings that make libtorch on a CPU fast: glibc's malloc keeps freed activations for the
/// next step (<see cref="NativeAllocator"/>) and denormal floats flush to zero (<see cref="Denormals"/>).
/// </summary>
public static class ProcessTuning
{
    /// <summary>
    /// Applies both; call it first thing in a program that trains or infers, before libtorch starts its worker
    /// threads (they inherit the calling thread's float flags). Safe to call again; does nothing where a setting
    /// is unavailable.
    /// </summary>
    public static void Apply()
    {
        NativeAllocator.Configure();
        Denormals.FlushToZero();
    }
}
