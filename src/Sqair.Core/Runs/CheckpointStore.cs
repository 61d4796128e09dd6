using Sqair.Files;
using Sqair.Model;

namespace Sqair.Runs;

/// <summary>
/// The checkpoints/ folder of a run: atomic saves, the retention rule, and finding the newest
/// checkpoint that can still be read.
/// </summary>
/// <remarks>
/// Retention (README, "Training runs"): every checkpoint on the <c>ckpt_itr</c> cadence is kept, and
/// so are the two newest (the end of a run, a stop); the ones in between are deleted as newer ones
/// arrive. Checkpoints that existed when this process started are never deleted, so resuming
/// with another <c>ckpt_itr</c> cannot remove a run's history.
/// </remarks>
internal sealed class CheckpointStore
{
    /// <summary>The newest checkpoints kept whatever their step.</summary>
    public const int KeepNewest = 2;

    readonly string runDir;
    readonly long cadence;
    readonly HashSet<string> keptFromBefore;
    readonly Action<string> log;

    public CheckpointStore(string runDir, long cadence, Action<string>? log = null)
    {
        this.runDir = runDir;
        this.cadence = cadence;
        this.log = log ?? (_ => { });
        keptFromBefore = Checkpoint.InRun(runDir).ToHashSet();
        StaleTemporaries.RemoveStale(Path.Combine(runDir, RunFolder.CheckpointsDir), this.log);
    }

    /// <summary>
    /// Saves the model and optimiser at <paramref name="iteration"/>, then applies the retention rule.
    /// </summary>
    public string Save(SqairModel model, IOptimizerState optimizer, long iteration)
    {
        var path = Checkpoint.PathFor(runDir, iteration);
        Checkpoint.Save(path, model, optimizer, iteration);
        var existing = Checkpoint.InRun(runDir).Select(p => (Path: p, Step: Checkpoint.StepOf(p))).ToList();
        foreach (var old in Retired(existing, cadence, keptFromBefore, p => p == path || Readable(p)))
            File.Delete(old);
        return path;
    }

    /// <summary>
    /// The checkpoints the retention rule deletes, from all of a run's checkpoints (newest first):
    /// older than the <see cref="KeepNewest"/> newest <paramref name="readable"/> ones, not on the
    /// cadence, not kept from before. Unreadable files never count among the newest (two damaged
    /// newer files must not cost the run its good checkpoint) and are never deleted
    /// unless older than those.
    /// </summary>
    public static IEnumerable<string> Retired(IReadOnlyList<(string Path, long Step)> newestFirst, long cadence,
                                              IReadOnlySet<string> keptFromBefore, Func<string, bool> readable)
    {
        var newest = newestFirst.Where(c => readable(c.Path)).Take(KeepNewest).ToList();
        if (newest.Count < KeepNewest) return [];
        long oldestKept = newest[^1].Step;
        return newestFirst.Where(c => c.Step < oldestKept && c.Step % cadence != 0 && !keptFromBefore.Contains(c.Path))
            .Select(c => c.Path);
    }

    /// <summary>Whether a checkpoint reads and checks out (its tensors are read and released).</summary>
    static bool Readable(string path)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        return TryRead(path) is not null;
    }

    /// <summary>
    /// The checkpoint, or null when it does not read or check out (<paramref name="warn"/> says why).
    /// </summary>
    static Checkpoint.Contents? TryRead(string path, Action<string>? warn = null)
    {
        try { return Checkpoint.Read(path); }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            warn?.Invoke($"skipping unreadable checkpoint {FileProblem.Of(path, e.Message)}");
            return null;
        }
    }

    /// <summary>
    /// The newest checkpoint a run can resume from: it reads and checks out, holds the optimiser's and
    /// random generator's state (a model file copied in does not), and was trained with the run's
    /// config.json on every key a resume cannot change (a colour model's checkpoint copied into a grey
    /// run was not). Each newer file passed over is reported through <paramref name="warn"/> with its
    /// reason, so that resuming from an older one is never silent. Null when there is none.
    /// </summary>
    public static Checkpoint.Contents? NewestResumable(string runDir, Action<string>? warn = null)
    {
        var runConfig = RunConfig(runDir);
        foreach (var path in Checkpoint.InRun(runDir))
        {
            if (TryRead(path, warn) is not { } c) continue;
            var why = Checkpoint.NotResumable(c);
            if (why is null &&
                runConfig?.UnresumableChanges(c.Config).ToList()
                    is [_, ..] changed)
                why = $"it was trained with another {string.Join(", ", changed)} than {RunFolder.ConfigFile}";
            if (why is null) return c;
            warn?.Invoke($"skipping checkpoint {path}: {why}");
        }
        return null;
    }

    /// <summary>
    /// The run's config.json, or null when it is missing or unreadable (then the checkpoints are not checked against
    /// it).
    /// </summary>
    static SqairConfig? RunConfig(string runDir)
    {
        var path = Path.Combine(runDir, RunFolder.ConfigFile);
        try { return File.Exists(path) ? SqairConfig.FromJsonFile(path) : null; }
        catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException) { return null; }
    }

    /// <summary>
    /// The newest checkpoint of a run folder that reads and checks out; each unreadable newer one is
    /// reported through <paramref name="warn"/> with its file and reason. Null when none is readable.
    /// </summary>
    public static Checkpoint.Contents? NewestReadable(string runDir, Action<string>? warn = null) =>
        Checkpoint.InRun(runDir).Select(path => TryRead(path, warn)).FirstOrDefault(c => c is not null);
}
