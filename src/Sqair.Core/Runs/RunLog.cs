using System.Text.Json;
using System.Text.Json.Nodes;
using Sqair.Files;
using TorchSharp.Modules;

namespace Sqair.Runs;

/// <summary>
/// What a run records as it goes: one JSON line per logged window or evaluation in metrics.jsonl
/// (what <c>sqair plot</c> reads) and the same scalars plus figures as TensorBoard events.
/// </summary>
internal sealed class RunLog
{
    readonly string runDir;
    readonly string metricsPath;
    SummaryWriter? tensorboard;

    public RunLog(string runDir)
    {
        this.runDir = runDir;
        metricsPath = Path.Combine(runDir, RunFolder.MetricsFile);
    }

    /// <summary>
    /// The events file, created at the first write: a resume that writes nothing adds none.
    /// </summary>
    SummaryWriter Tensorboard => tensorboard ??= TorchSharp.torch.utils.tensorboard.SummaryWriter(runDir);

    /// <summary>
    /// Whether metrics.jsonl holds a record of <paramref name="split"/> at <paramref name="iteration"/>.
    /// </summary>
    public bool HasRecord(string split, long iteration) =>
        File.Exists(metricsPath) && File.ReadLines(metricsPath).Where(l => IterationOf(l) == iteration)
            .Any(l => JsonNode.Parse(l)?["split"]?.GetValue<string>() == split);

    /// <summary>
    /// Appends one record of <paramref name="split"/> ("train", "valid") at an iteration to both logs.
    /// </summary>
    public void Record(string split, long iteration, IReadOnlyDictionary<string, double> values)
    {
        foreach (var (k, v) in values) Tensorboard.add_scalar($"{split}/{k}", (float)v, (int)iteration);
        var line = new Dictionary<string, object?>
        {
            ["iteration"] = iteration, ["split"] = split, ["time"] = DateTime.UtcNow.ToString("o")
        };
        // JSON has no NaN: an undefined measure is null.
        foreach (var (k, v) in values) line[k] = double.IsFinite(v) ? Math.Round(v, 6) : null;
        File.AppendAllText(metricsPath, JsonSerializer.Serialize(line) + "\n");
    }

    public void Scalar(string tag, double value, long iteration) =>
        Tensorboard.add_scalar(tag, (float)value, (int)iteration);

    public void Image(string tag, string pngPath, long iteration) => Tensorboard.add_img(tag, pngPath, (int)iteration);

    /// <summary>
    /// Drops the lines of iterations after <paramref name="iteration"/> (and any partial line), so
    /// that a run resumed from that checkpoint logs each iteration once. Returns the number dropped.
    /// </summary>
    public int TruncateAfter(long iteration)
    {
        if (!File.Exists(metricsPath)) return 0;
        var lines = File.ReadAllLines(metricsPath);
        var kept = lines.Where(l => IterationOf(l) is { } i && i <= iteration).ToList();
        if (kept.Count == lines.Length) return 0;
        AtomicFile.WriteAllText(metricsPath, string.Concat(kept.Select(l => l + "\n")));
        return lines.Length - kept.Count;
    }

    /// <summary>The iteration of a metrics.jsonl line, or null if the line is not a whole JSON record.</summary>
    public static long? IterationOf(string line)
    {
        try { return JsonNode.Parse(line)?["iteration"]?.GetValue<long>(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException) { return null; }
    }
}
