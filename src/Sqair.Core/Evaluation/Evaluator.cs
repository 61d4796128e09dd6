using Sqair.Data;
using Sqair.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Evaluation;

/// <summary>Runs a model over (part of) a dataset in inference mode and adds up the SPEC §5 measurements.</summary>
public static class Evaluator
{
    /// <param name="onBatch">Called after each batch with the batch, the model output (frames kept) and the resampled rows [B].</param>
    public static BatchMetrics Run(SqairModel model, ISequenceSource source, long sequences, int k, int batchSize, Device device,
                                   Action<long>? progress = null, Action<SequenceBatch, SequenceOutput, Tensor>? onBatch = null)
    {
        var loader = new BatchLoader(source, batchSize, shuffle: false, seed: 0, device);
        var total = new BatchMetrics();
        long done = 0;
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var _ = no_grad();
            foreach (var batch in loader.Ordered(sequences))
            {
                using var scope = NewDisposeScope();
                using (batch)
                {
                    var output = model.Forward(batch.Frames, k, keepFrames: true);
                    total += BatchMetrics.Of(output, batch);
                    onBatch?.Invoke(batch, output, output.ResampleRows());
                    done += batch.B;
                    progress?.Invoke(done);
                }
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }
        return total;
    }
}
