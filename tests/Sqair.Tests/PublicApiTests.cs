namespace Sqair.Tests;

/// <summary>
/// The library's public API is deliberate: what a user calls (README, "Use it from C#"; examples/,
/// notebooks/) and nothing else. A type that becomes public by accident fails here; one that should
/// be public is added to the list, with its documentation (the build flags undocumented members).
/// </summary>
public class PublicApiTests
{
    static readonly string[] Approved =
    [
        "Sqair.Data.BatchLoader", "Sqair.Data.Datasets", "Sqair.Data.FrameFolder", "Sqair.Data.FrameImport",
        "Sqair.Data.GeneratedSource", "Sqair.Data.ISequenceSource", "Sqair.Data.ImportOptions",
        "Sqair.Data.ImportSummary", "Sqair.Data.Mnist", "Sqair.Data.MnistSplit", "Sqair.Data.MotBox",
        "Sqair.Data.MovingMnist", "Sqair.Data.MovingMnistConfig", "Sqair.Data.Pool", "Sqair.Data.ResizeFilter",
        "Sqair.Data.Sequence", "Sqair.Data.SequenceBatch", "Sqair.Data.SequenceFile", "Sqair.Data.Template",
        "Sqair.Objective.BatchMetrics", "Sqair.Inference.BoxKind", "Sqair.Evaluation.EvaluationReport",
        "Sqair.Evaluation.Evaluator", "Sqair.Inference.Infer", "Sqair.Inference.InferenceOptions",
        "Sqair.Inference.InferredBatch", "Sqair.Evaluation.MotSummary", "Sqair.Inference.StreamedFrame",
        "Sqair.Inference.TrackStream", "Sqair.Inference.TrackBox", "Sqair.Inference.TrackExtraction",
        "Sqair.Jobs.TrackRun", "Sqair.Jobs.TrackRun+Input", "Sqair.Jobs.TrackRun+Result",
        "Sqair.Jobs.TrackRun+Settings",
        "Sqair.Jobs.TrackRun+Tracked", "Sqair.Jobs.TrackRun+TrackedSequence",
        "Sqair.Jobs.TrainingRun", "Sqair.Jobs.ValidationMarks", "Sqair.Data.DataCache",
        "Sqair.Model.FrameOutput", "Sqair.Model.ModelKind", "Sqair.Model.OptimizerKind", "Sqair.Model.Pruning",
        "Sqair.Model.PresenceEstimator", "Sqair.Model.VimcoSignal",
        "Sqair.Model.WindowStart", "Sqair.Model.Resampling", "Sqair.Model.SequenceOutput", "Sqair.Model.SqairConfig",
        "Sqair.Model.SqairModel",
        "Sqair.Native.NativeLibraries",
        "Sqair.Runs.Checkpoint", "Sqair.Runs.Checkpoint+Contents", "Sqair.Training.Presets",
        "Sqair.Training.ITrainingMarks", "Sqair.Training.StartMode",
        "Sqair.Runs.RunFolderInUseException", "Sqair.Training.TrainOutcome",
        "Sqair.Training.TrainProgress", "Sqair.Training.Trainer", "Sqair.Training.TrainingData",
        "Sqair.Training.ShardWorker",
        "Sqair.Visualisation.Curves", "Sqair.Visualisation.DataFigures", "Sqair.Visualisation.ModelFigures",
        "Sqair.Visualisation.ModelFigures+Track",
        // What the command line uses beside the model: files written whole, benchmarks, memory checks, the
        // process's native settings, sweeps.
        "Sqair.Files.AtomicFile", "Sqair.Files.RealPath", "Sqair.Files.StaleTemporaries",
        "Sqair.Jobs.Bench", "Sqair.Jobs.BenchResult", "Sqair.Jobs.InferenceBenchResult",
        "Sqair.Jobs.MemoryEstimate", "Sqair.Jobs.MemoryEstimate+Options", "Sqair.Model.IModelSettings",
        "Sqair.Native.ProcessTuning",
        "Sqair.Sweeps.Sweep", "Sqair.Sweeps.SweepAccess", "Sqair.Sweeps.SweepRequest", "Sqair.Sweeps.SweepTaskRun",
        "Sqair.Text.EditDistance",
    ];

    [Fact]
    public void Only_the_approved_types_are_public()
    {
        var exported = typeof(Sqair.Model.SqairModel).Assembly.GetExportedTypes()
            .Select(t => t.FullName!).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(Approved.Order(StringComparer.Ordinal), exported);
    }
}

/// <summary>README's promises about the code, held by the code.</summary>
public class ReadmeTests
{
    [Fact]
    public void The_configuration_section_names_every_config_key()
    {
        var readme = File.ReadAllText(Path.Combine(TestUtil.RepositoryRoot(), "README.md"));
        int start = readme.IndexOf("### Configuration", StringComparison.Ordinal),
            end = readme.IndexOf("### Training runs", StringComparison.Ordinal);
        Assert.True(start >= 0 && end > start, "README lost its Configuration section");
        var named = System.Text.RegularExpressions.Regex.Matches(readme[start..end], "`([a-z_]+)`")
            .Select(m => m.Groups[1].Value).ToHashSet();
        Assert.DoesNotContain(Sqair.Model.SqairConfig.Keys.Keys, k => !named.Contains(k));
    }

    [Fact]
    public void The_command_table_names_every_command()
    {
        var readme = File.ReadAllText(Path.Combine(TestUtil.RepositoryRoot(), "README.md"));
        // Hidden commands (a training shard's worker) are the program talking to itself, not for people.
        var commands = Sqair.Cli.Cli.BuildRoot().Subcommands.Where(c => !c.Hidden)
            .SelectMany(c => c.Subcommands.Count > 0 ? c.Subcommands.Select(s => $"{c.Name} {s.Name}") : [c.Name]);
        Assert.DoesNotContain(commands, c => !readme.Contains($"| `{c}", StringComparison.Ordinal));
    }
}
