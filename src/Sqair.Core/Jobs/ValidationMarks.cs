using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Inference;
using Sqair.Model;
using Sqair.Training;
using Sqair.Visualisation;
using static TorchSharp.torch;

namespace Sqair.Jobs;

/// <summary>
/// The trainer's marks as <c>sqair train</c> runs them: <see cref="Evaluator"/> on validation at the config's K,
/// and the model figures of <see cref="ModelFigures"/>. Both infer with their own generators (seed 0), so measuring
/// never moves the training's random stream.
/// </summary>
public sealed class ValidationMarks : ITrainingMarks
{
    /// <summary>Sequences per evaluation batch: as large as memory comfortably allows at K = 5 and T = 10.</summary>
    public const int EvalBatchSize = 50;

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, double> Measure(SqairModel model, ISequenceSource valid, long sequences,
                                                       Device device) =>
        Evaluator.Run(model, valid, sequences, new InferenceOptions(model.Config.KParticles), EvalBatchSize, device)
            .Flat();

    /// <inheritdoc/>
    public void DrawFigures(SqairModel model, SequenceBatch batch, long iteration, string sequencePath,
                            string stillPath)
    {
        using var scope = NewDisposeScope();
        var inferred = Infer.Run(model, batch.Frames, new InferenceOptions(model.Config.KParticles));
        var tracks = ModelFigures.Extract(batch.Frames, inferred.Output, inferred.Rows);
        ModelFigures.SequenceFigure(tracks, sequencePath,
                                    $"iteration {iteration}: inputs and reconstructions (caption: count: ids)");
        ModelFigures.StillFigure(tracks, batch.T - 1, stillPath,
                                 $"iteration {iteration}, frame {batch.T - 1}: input, reconstruction, glimpses");
    }
}
