namespace Sqair.Training;

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

    /// <summary>The files of a run, relative to its folder: what <see cref="Clear"/> removes.</summary>
    static IEnumerable<string> RunFiles(string dir) =>
        new[] { Path.Combine(dir, ConfigFile), Path.Combine(dir, MetricsFile) }.Where(File.Exists)
            .Concat(Directory.Exists(dir) ? Directory.GetFiles(dir, "events.out.tfevents.*") : [])
            .Concat(Checkpoint.InRun(dir));

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
    /// Removes a run's files (config, logs, events, checkpoints, figures) so a new run can start in its folder.
    /// </summary>
    public static void Clear(string dir, Action<string>? log = null)
    {
        var files = RunFiles(dir).ToList();
        foreach (var f in files) File.Delete(f);
        var figures = Path.Combine(dir, FiguresDir);
        if (Directory.Exists(figures)) Directory.Delete(figures, recursive: true);
        if (files.Count > 0)
            log?.Invoke($"--force: removed the previous run in {dir} ({files.Count} files and its figures)");
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
