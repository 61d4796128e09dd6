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
        "Sqair.Data.BatchLoader", "Sqair.Data.Datasets", "Sqair.Data.FrameFolder", "Sqair.Data.FrameImport", "Sqair.Data.GeneratedSource",
        "Sqair.Data.ISequenceSource", "Sqair.Data.ImportOptions", "Sqair.Data.ImportSummary", "Sqair.Data.Mnist", "Sqair.Data.MnistSplit",
        "Sqair.Data.MotBox", "Sqair.Data.MovingMnist", "Sqair.Data.MovingMnistConfig", "Sqair.Data.Pool", "Sqair.Data.ResizeFilter",
        "Sqair.Data.Sequence", "Sqair.Data.SequenceBatch", "Sqair.Data.SequenceFile", "Sqair.Data.Template",
        "Sqair.Evaluation.BatchMetrics", "Sqair.Evaluation.BoxKind", "Sqair.Evaluation.EvaluationReport", "Sqair.Evaluation.Evaluator",
        "Sqair.Evaluation.Inference", "Sqair.Evaluation.InferenceOptions", "Sqair.Evaluation.InferredBatch", "Sqair.Evaluation.MotSummary",
        "Sqair.Evaluation.StreamedFrame", "Sqair.Evaluation.TrackStream", "Sqair.Evaluation.TrackBox", "Sqair.Evaluation.TrackExtraction",
        "Sqair.Model.FrameOutput", "Sqair.Model.ModelKind", "Sqair.Model.Resampling", "Sqair.Model.SequenceOutput", "Sqair.Model.SqairConfig", "Sqair.Model.SqairModel",
        "Sqair.NativeLibraries",
        "Sqair.Training.Checkpoint", "Sqair.Training.Checkpoint+Contents", "Sqair.Training.Presets", "Sqair.Training.StartMode",
        "Sqair.Training.TrainOutcome", "Sqair.Training.TrainProgress", "Sqair.Training.Trainer", "Sqair.Training.TrainingData",
        "Sqair.Visualisation.Curves", "Sqair.Visualisation.DataFigures", "Sqair.Visualisation.ModelFigures", "Sqair.Visualisation.ModelFigures+Track",
    ];

    [Fact]
    public void Only_the_approved_types_are_public()
    {
        var exported = typeof(Sqair.Model.SqairModel).Assembly.GetExportedTypes().Select(t => t.FullName!).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(Approved.Order(StringComparer.Ordinal), exported);
    }
}
