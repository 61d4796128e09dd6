using Sqair.Data;
using Sqair.Model;
using static TorchSharp.torch;

namespace Sqair.Training;

/// <summary>
/// What a <see cref="Trainer"/> does with its model at its marks, supplied by the layers above training (the
/// trainer measures and draws through this, so that training needs neither the evaluator nor the figures):
/// measures on validation sequences at every eval_itr, figures at every fig_itr.
/// </summary>
public interface ITrainingMarks
{
    /// <summary>
    /// The validation measures of <paramref name="model"/> on the first <paramref name="sequences"/> of
    /// <paramref name="valid"/>, by metric key; must not draw from the training's random stream.
    /// </summary>
    IReadOnlyDictionary<string, double> Measure(SqairModel model, ISequenceSource valid, long sequences, Device device);

    /// <summary>
    /// Draws <paramref name="model"/>'s inference of <paramref name="batch"/> at <paramref name="iteration"/> into
    /// the sequence and still figure files; must not draw from the training's random stream.
    /// </summary>
    void DrawFigures(SqairModel model, SequenceBatch batch, long iteration, string sequencePath, string stillPath);
}
