using Sqair.Model;
using Sqair.Native;

namespace Sqair.Jobs;

/// <summary>
/// An up-front estimate of what inference (<c>sqair eval</c>, <c>sqair track</c>) will hold in memory,
/// so that a batch that cannot fit is refused in one line before it fills the machine.
/// Inference frees each frame's intermediates (<see cref="SqairModel"/>), so memory grows with the
/// particle rows R = batch · K: per row, one frame's working tensors and every kept frame's canvas and
/// glimpses. The constants were fitted to peak RSS of <c>sqair eval</c> on the paper config (50×50
/// grey frames, 3 objects, 256 hidden units, 20×20 glimpses): about 0.6 GB for the process and 0.8 MB
/// per row at 10 frames (docs/performance.md, "Memory"); other configs scale by their tensor sizes.
/// </summary>
public static class MemoryEstimate
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
    /// <paramref name="keptFrames"/> frames. A double: a request can be far past what a long counts in bytes.
    /// </summary>
    public static double InferenceBytes(IModelSettings c, double rows, double keptFrames) =>
        ProcessBytes + rows * InferenceRowBytes(c, keptFrames);

    /// <summary>
    /// Bytes held at the peak of a training step over <paramref name="rows"/> particle rows of
    /// <paramref name="frames"/> frames. Autograd keeps what backward reads of every frame, so each frame
    /// is charged its whole working set and its kept values: an upper bound (the default config, 160 rows at
    /// 10 frames, peaks at 0.95 GB where this says 1.5 GB), which is enough to refuse what cannot fit.
    /// </summary>
    public static double TrainingBytes(IModelSettings c, double rows, double frames) =>
        ProcessBytes + rows * frames * InferenceRowBytes(c, 1);

    static double InferenceRowBytes(IModelSettings c, double keptFrames)
    {
        double canvas = (double)c.Channels * c.ImgSize * c.ImgSize,
               glimpse = (double)c.Channels * c.GlimpseSize * c.GlimpseSize;
        double working = WorkingCanvases * canvas +
            (double)c.MaxObjects * (WorkingHiddenPerObject * c.NHidden + WorkingGlimpsesPerObject * glimpse);
        double kept = canvas + c.MaxObjects * (glimpse + KeptValuesPerObject);
        return (working + keptFrames * kept) * sizeof(float);
    }

    /// <summary>
    /// Memory the kernel can give without swapping (MemAvailable), or null where /proc/meminfo is not there.
    /// </summary>
    public static long? AvailableBytes() => ProcFiles.Kilobytes("/proc/meminfo", "MemAvailable") * 1024;

    /// <summary>
    /// The options (or config keys) that set the factors of a check, so that a refusal names the one to lower:
    /// sequences per batch, particles, and frames held (null where the data fixes them).
    /// </summary>
    public sealed record Options(string Batch, string K, string? Frames = null);

    /// <summary>The options of <c>sqair eval</c> and <c>sqair track</c>.</summary>
    public static readonly Options Inference = new("--batch-size", "--k");

    /// <summary>
    /// Refuses (<see cref="ArgumentException"/>) inference over <paramref name="batch"/> sequences of
    /// <paramref name="k"/> particles keeping <paramref name="keptFrames"/> frames when its estimate exceeds
    /// <paramref name="available"/> bytes, naming the largest batch that fits, else the largest K, else the
    /// most frames.
    /// </summary>
    public static void Check(IModelSettings c, long batch, long k, long keptFrames, long? available, Options o,
                             long shownFrames = -1) =>
        Refuse(batch, k, keptFrames, shownFrames < 0 ? keptFrames : shownFrames, available, o, c,
               (rows, frames) => InferenceBytes(c, rows, frames));

    /// <summary>As <see cref="Check"/> for a training step over <paramref name="frames"/> frames.</summary>
    public static void CheckTraining(IModelSettings c, long batch, long k, long frames, long? available, Options o) =>
        Refuse(batch, k, frames, frames, available, o, c, (rows, t) => TrainingBytes(c, rows, t));

    /// <summary>
    /// Throws when <paramref name="bytes"/>(batch · k, frames) exceeds <paramref name="available"/>;
    /// <paramref name="shownFrames"/> is what the frames option was given (track holds --lag + 1 frames).
    /// </summary>
    static void Refuse(long batch, long k, long frames, long shownFrames, long? available, Options o,
                       IModelSettings c, Func<double, double, double> bytes)
    {
        if (available is not long free) return;
        double need = bytes((double)batch * k, frames);
        if (need <= free) return;
        string sizes = $"img_size {c.ImgSize}, channels {c.Channels}, glimpse_size {c.GlimpseSize}, " +
                       $"max_objects {c.MaxObjects}";
        // how far one factor may go with the ones before it at 1 (the estimate grows linearly in each)
        long Fits(double perUnit) => (long)Math.Min(long.MaxValue, Math.Floor((free - ProcessBytes) / perUnit));
        long batches = Fits(bytes(k, frames) - ProcessBytes), ks = Fits(bytes(1, frames) - ProcessBytes);
        long framesFit = FramesFit(free, bytes) - (frames - shownFrames);
        string advice = batches >= 1 ? $"use {o.Batch} {batches} or less"
            : ks >= 1 ? $"not even {o.Batch} 1 fits: lower {o.K} to {ks} or less"
            : o.Frames is { } framesOption && framesFit >= 1
                ? $"not even {o.Batch} 1 with {o.K} 1 fits: lower {framesOption} to {framesFit} or less"
                : $"not even one frame with {o.K} 1 fits at {sizes}";
        string held = o.Frames is { } f ? $", {f} {shownFrames}" : "";
        throw new ArgumentException(
            $"{o.Batch} {batch} with {o.K} {k}{held} needs about {Gb(need)} of memory and {Gb(free)} are " +
            $"available: {advice} (docs/performance.md, \"Memory\")");
    }

    /// <summary>The most frames one row can hold: the estimate is linear in them.</summary>
    static long FramesFit(long free, Func<double, double, double> bytes)
    {
        double fixedBytes = bytes(1, 0), perFrame = bytes(1, 1) - fixedBytes;
        return (long)Math.Min(long.MaxValue, Math.Max(0, Math.Floor((free - fixedBytes) / perFrame)));
    }

    static string Gb(double bytes) => $"{bytes / (1L << 30):F1} GB";
}
