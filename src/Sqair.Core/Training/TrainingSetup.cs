using System.Diagnostics;
using Sqair.Data;
using Sqair.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Sqair.Training;

/// <summary>
/// What a training step needs, built one way for the trainer and the benchmark alike: the model
/// seeded with the config's seed, its trainable parameters, their optimiser, the shuffled batches
/// and the gradient step.
/// </summary>
internal sealed record TrainingSetup(SqairModel Model, IReadOnlyList<(string Name, Parameter Param)> Trainable,
                                     ParameterOptimizer Optimizer, BatchLoader Batches, GradientStep Step)
{
    /// <summary>
    /// The setup of <paramref name="config"/>: batches split over <paramref name="shards"/>, the shards after the
    /// first in worker processes started from <paramref name="shardProcess"/> when given, else on threads.
    /// </summary>
    public static TrainingSetup Create(SqairConfig config, ISequenceSource source, Device device, int shards,
                                       Func<ProcessStartInfo>? shardProcess = null)
    {
        manual_seed((long)config.Seed);
        var model = new SqairModel(config);
        model.to(device);
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad)
            .Select(p => (p.name, p.parameter)).ToList();
        var optimizer = ParameterOptimizer.Create(config.Optimizer,
                                                  trainable.Select(p => (p.name, (Tensor)p.parameter)));
        var batches = new BatchLoader(source, config.BatchSize, shuffle: true, seed: config.Seed, device)
        {
            RandomWindows = config.WindowStart == WindowStart.Random
        };
        if (shardProcess is not null && config.BatchSize < shards)
            throw new ArgumentException($"config key 'batch_size' = {config.BatchSize}: fewer sequences than the " +
                                        $"{shards} shards to run in processes");
        var processes = shardProcess is not null && shards > 1
            ? new ShardProcesses(model, shards - 1, Math.Max(1, get_num_threads() / shards), shardProcess)
            : null;
        return new TrainingSetup(model, trainable, optimizer, batches,
                                 new GradientStep(model, processes is null ? shards : 1,
                                                  config.VimcoSignal == VimcoSignal.Original, processes));
    }
}
