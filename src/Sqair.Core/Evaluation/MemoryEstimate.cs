using Sqair.Model;

namespace Sqair.Evaluation;

/// <summary>
/// An up-front estimate of what inference (<c>sqair eval</c>, <c>sqair track</c>) will hold in memory,
/// so that a batch that cannot fit is refused in one line before it fills the machine.
/// Inference frees each frame's intermediates (<see cref="SqairModel"/>), so memory grows with the
/// particle rows R = batch · K: per row, one frame's working tensors and every kept frame's canvas and
/// glimpses. The constants were fitted to peak RSS of <c>sqair eval</c> on the paper config (50×50
/// grey frames, 3 objects, 256 hidden units, 20×20 glimpses): about 0.6 GB for the process and 0.8 MB
/// per row at 10 frames (docs/performance.md, "Memory"); other configs scale by their tensor sizes.
/// </summary>
internal static class MemoryEstimate
{
    /// <summary>The runtime, libtorch, the model and the pages of the dataset file read so far.</summary>
    const long ProcessBytes = 600L << 20;

    /// <summary>
    /// One frame's transient tensors per row, in canvases (the spatial transformer's write) and per object.
    /// </summary>
    const long WorkingCanvases = 48, WorkingHiddenPerObject = 16, WorkingGlimpsesPerObject = 8;

    /// <summary>
    /// The small values a kept frame holds per object beside its glimpse: where and window (4 each),
    /// presence, its probability and id, rounded up.
    /// </summary>
    const long KeptValuesPerObject = 16;

    /// <summary>
    /// Bytes held at the peak of inference over <paramref name="rows"/> particle rows keeping
    /// <paramref name="keptFrames"/> frames.
    /// </summary>
    public static long InferenceBytes(IModelSettings c, long rows, int keptFrames)
    {
        long canvas = (long)c.Channels * c.ImgSize * c.ImgSize,
             glimpse = (long)c.Channels * c.GlimpseSize * c.GlimpseSize;
        long working = WorkingCanvases * canvas +
            (long)c.MaxObjects * (WorkingHiddenPerObject * c.NHidden + WorkingGlimpsesPerObject * glimpse);
        long kept = canvas + c.MaxObjects * (glimpse + KeptValuesPerObject);
        return ProcessBytes + rows * (working + keptFrames * kept) * sizeof(float);
    }

    /// <summary>
    /// Memory the kernel can give without swapping (MemAvailable), or null where /proc/meminfo is not there.
    /// </summary>
    public static long? AvailableBytes() => ProcFiles.Kilobytes("/proc/meminfo", "MemAvailable") * 1024;

    /// <summary>
    /// Refuses (<see cref="ArgumentException"/>) inference over <paramref name="batch"/> sequences of
    /// <paramref name="k"/> particles keeping <paramref name="keptFrames"/> frames when its estimate exceeds
    /// <paramref name="available"/> bytes, naming the largest batch that fits and <paramref name="batchOption"/>.
    /// </summary>
    public static void Check(IModelSettings c, long batch, int k, int keptFrames, long? available, string batchOption)
    {
        if (available is not long free) return;
        long need = InferenceBytes(c, batch * k, keptFrames);
        if (need <= free) return;
        long perSequence = InferenceBytes(c, k, keptFrames) - ProcessBytes;
        long fits = Math.Max(0, (free - ProcessBytes) / perSequence);
        throw new ArgumentException(
            $"{batchOption} {batch} with K = {k} needs about {Gb(need)} of memory and {Gb(free)} are available: " +
            (fits >= 1 ? $"use {batchOption} {fits} or less" : "lower --k") + " (docs/performance.md, \"Memory\")");
    }

    static string Gb(long bytes) => $"{bytes / (double)(1L << 30):F1} GB";
}
