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
    public static TrainingSetup Create(SqairConfig config, ISequenceSource source, Device device, int shards)
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
        return new TrainingSetup(model, trainable, optimizer, batches,
                                 new GradientStep(model, shards,
                                                  originalVimco: config.VimcoSignal == VimcoSignal.Original));
    }
}
