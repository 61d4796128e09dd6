using Sqair.Model;

namespace Sqair.Runs;

/// <summary>
/// The layout of a run folder, named here once (README, "Training runs"): what makes a folder a run
/// folder, and replacing one (<c>train --force</c>).
/// </summary>
internal static class RunFolder
{
    /// <summary>The run's config, a valid --config file.</summary>
    public const string ConfigFile = "config.json";
    /// <summary>One JSON line per logged window or evaluation (<see cref="RunLog"/>).</summary>
    public const string MetricsFile = "metrics.jsonl";
    /// <summary>The folder of checkpoints (<see cref="CheckpointStore"/>).</summary>
    public const string CheckpointsDir = "checkpoints";
    /// <summary>The folder of sequence and still figures.</summary>
    public const string FiguresDir = "figures";

    /// <summary>
    /// The files a run wrote, what <see cref="Clear"/> removes: its config only when it reads as a run config
    /// (a folder that is not a run may hold a config.json of something else), its log, event files, checkpoints
    /// and figures; nothing else the folder holds.
    /// </summary>
    static IEnumerable<string> RunFiles(string dir)
    {
        if (!Directory.Exists(dir)) return [];
        var config = Path.Combine(dir, ConfigFile);
        var figures = Path.Combine(dir, FiguresDir);
        return new[] { config }.Where(f => File.Exists(f) && IsRunConfig(f))
            .Concat(new[] { Path.Combine(dir, MetricsFile) }.Where(File.Exists))
            .Concat(Directory.GetFiles(dir, "events.out.tfevents.*"))
            .Concat(Checkpoint.InRun(dir))
            .Concat(Directory.Exists(figures)
                ? FigurePatterns.SelectMany(p => Directory.GetFiles(figures, p)).Order(StringComparer.Ordinal)
                : []);
    }

    /// <summary>
    /// The names of the figures a run draws (the trainer's sequence and still per figure iteration).
    /// </summary>
    static readonly string[] FigurePatterns = ["sequence-*.png", "still-*.png"];

    static bool IsRunConfig(string path)
    {
        try
        {
            SqairConfig.FromJsonFile(path);
            return true;
        }
        catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// A short description of the run a folder holds ("config.json, metrics.jsonl, 3 checkpoints"), or null if it
    /// holds none.
    /// </summary>
    public static string? Describe(string dir)
    {
        if (!Directory.Exists(dir)) return null;
        int checkpoints = Checkpoint.InRun(dir).Count();
        var parts = new[] { ConfigFile, MetricsFile }.Where(f => File.Exists(Path.Combine(dir, f))).ToList();
        if (checkpoints > 0) parts.Add($"{checkpoints} checkpoint{(checkpoints == 1 ? "" : "s")}");
        return parts.Count > 0 ? string.Join(", ", parts) : null;
    }

    /// <summary>
    /// Removes the files a run wrote (<see cref="RunFiles"/>), saying which, so a new run can start in its folder;
    /// the figures folder goes only when that leaves it empty.
    /// </summary>
    public static void Clear(string dir, Action<string>? log = null)
    {
        var config = Path.Combine(dir, ConfigFile);
        // the new run writes its config there: one that is not a run's would be lost
        if (File.Exists(config) && !IsRunConfig(config))
            throw new ArgumentException($"--force: {config} is not a run's config (it does not read as one); " +
                                        "move it away or choose another --run-dir");
        var files = RunFiles(dir).ToList();
        if (files.Count == 0) return;
        log?.Invoke($"--force: removing the previous run's files in {dir}: " +
                    string.Join(", ", files.Select(f => Path.GetRelativePath(dir, f))));
        foreach (var f in files) File.Delete(f);
        var figures = Path.Combine(dir, FiguresDir);
        if (Directory.Exists(figures) && !Directory.EnumerateFileSystemEntries(figures).Any())
            Directory.Delete(figures);
    }

    /// <summary>
    /// Removes a folder a failed start created, as long as it holds no run (nothing of value is lost).
    /// </summary>
    public static void RemoveIfEmptyRun(string dir)
    {
        if (Directory.Exists(dir) && Describe(dir) is null)
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { }
    }
}
