using System.Diagnostics;
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Inference;
using Sqair.Model;
using Sqair.Native;
using Sqair.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Sqair.Jobs;

/// <summary>
/// Timing of training iterations, split by phase, with the arithmetic done. Forward and backward
/// are timed apart only for an unsharded step (<see cref="GradientStep"/>); sharded, they overlap
/// on two threads and only their sum is measured.
/// </summary>
public sealed record BenchResult(int Iterations, int SeqLen, int Threads, int Shards, string Device,
                                   double IterationsPerSecond, double DataMs, double? ForwardMs, double? BackwardMs,
                                   double GradientMs, double OptimizerMs,
                                   double PeakRssMb, double ForwardGflops, long ForwardOps,
                                   IReadOnlyDictionary<string, long> ParametersPerModule)
{
    /// <summary>
    /// Forward plus backward, counting the backward pass as twice the forward's matmul/conv FLOPs.
    /// </summary>
    public double GflopsPerIteration => 3 * ForwardGflops;
    /// <summary>
    /// The arithmetic rate reached: <see cref="GflopsPerIteration"/> at the measured iterations per second.
    /// </summary>
    public double AchievedGflopsPerSecond => GflopsPerIteration * IterationsPerSecond;
}

/// <summary>Inference timing: evaluation (sequences per second) and tracking (frames per second).</summary>
public sealed record InferenceBenchResult(long Sequences, int SeqLen, int K, int Threads, double EvalSeconds,
                                          double EvalSequencesPerSecond, double TrackFramesPerSecond, double PeakRssMb);

/// <summary>
/// <c>sqair bench</c>'s measurements: training iterations timed by phase, and inference's evaluation and tracking
/// rates, each on a synthetic or real source (docs/performance.md).
/// </summary>
public static class Bench
{
    /// <summary>
    /// Times <paramref name="iterations"/> training steps at <paramref name="seqLen"/> frames after
    /// <paramref name="warmup"/> untimed ones (at least one: the first step allocates), split by phase.
    /// </summary>
    public static BenchResult Train(SqairConfig c, ISequenceSource source, int seqLen, int warmup, int iterations,
                                    Device device, int shards = 1, Func<ProcessStartInfo>? shardProcess = null,
                                    CancellationToken stop = default)
    {
        var (model, _, optimizer, loader, gradientStep) = TrainingSetup.Create(c, source, device, shards,
                                                                               shardProcess);
        using var _ = gradientStep;
        double data = 0, forward = 0, gradient = 0, step = 0;
        double forwardGflops = 0;
        long ops = 0;
        warmup = Math.Max(1, warmup);
        for (int i = 0; i < warmup + iterations; i++)
        {
            stop.ThrowIfCancellationRequested();
            bool timed = i >= warmup;
            using var scope = NewDisposeScope();
            // FLOPs and ops are counted once, in the first (untimed) iteration, so the hooks never slow a timed
            // one.
            if (i == 0)
                using (var first = loader.Get(i, seqLen))
                {
                    forwardGflops = FlopCounter.Forward(model, first.Frames, c.KParticles) / 1e9;
                    ops = OpCount.Forward(model, first.Frames, c.KParticles);
                }
            var sw = Stopwatch.StartNew();
            using var batch = loader.Get(i, seqLen);
            double t0 = sw.Elapsed.TotalMilliseconds, t1 = double.NaN;
            if (gradientStep.InProcesses) gradientStep.Run(batch, c.KParticles, c.Seed, i, measure: false);
            else
                gradientStep.Run(batch.Frames, c.KParticles, c.Seed, i,
                                 afterForward: () => t1 = sw.Elapsed.TotalMilliseconds);
            double t2 = sw.Elapsed.TotalMilliseconds;
            optimizer.Step(c.LearningRate);
            model.zero_grad();
            double t3 = sw.Elapsed.TotalMilliseconds;
            if (!timed) continue;
            data += t0; forward += t1 - t0; gradient += t2 - t0; step += t3 - t2;
        }
        double total = data + gradient + step;
        bool split = gradientStep.Shards == 1 && !gradientStep.InProcesses;
        int shardsRun = gradientStep.InProcesses ? shards : gradientStep.Shards;
        var perModule = model.named_children()
            .ToDictionary(m => m.name, m => m.module.parameters().Sum(p => p.numel()));
        return new BenchResult(iterations, seqLen, get_num_threads(), shardsRun, device.ToString(),
                               iterations / (total / 1000), data / iterations, split ? forward / iterations : null,
                               split ? (gradient - forward) / iterations : null, gradient / iterations,
                               step / iterations, PeakRssMb(), forwardGflops, ops, perModule);
    }

    /// <summary>
    /// Inference speed of a freshly initialised model (the same ops as a trained one): <c>sqair eval</c>
    /// (every measure, K particles, batches of 50) and
    /// <c>sqair track</c> (K = 1, batches of 32, forward pass and tight boxes).
    /// </summary>
    public static InferenceBenchResult Inference(SqairConfig c, ISequenceSource source, long sequences, int k,
                                                 Device device, CancellationToken stop = default)
    {
        stop.ThrowIfCancellationRequested();
        manual_seed((long)c.Seed);
        var model = new SqairModel(c);
        model.to(device);
        var clock = Stopwatch.StartNew();
        Evaluator.Run(model, source, sequences, new InferenceOptions(k), EvalBatchSize, device,
                      _ => stop.ThrowIfCancellationRequested());
        double evalSeconds = clock.Elapsed.TotalSeconds;

        long frames = 0, done = 0;
        clock.Restart();
        using (no_grad())
            foreach (var batch in new BatchLoader(source, TrackBatchSize, shuffle: false, seed: 0, device)
                .Ordered(sequences))
            {
                using var scope = NewDisposeScope();
                using (batch)
                {
                    stop.ThrowIfCancellationRequested();
                    Infer.Run(model, batch.Frames, InferenceOptions.Single, first: done, stop: stop)
                        .Boxes(BoxKind.Content);
                    frames += (long)batch.T * batch.B;
                    done += batch.B;
                }
            }
        double trackSeconds = clock.Elapsed.TotalSeconds;
        return new InferenceBenchResult(sequences, source.Config.SeqLen, k, get_num_threads(), evalSeconds,
                                        sequences / evalSeconds, frames / trackSeconds, PeakRssMb());
    }

    /// <summary>Batch sizes of <c>sqair eval</c> and <c>sqair track</c> (their defaults).</summary>
    public const int EvalBatchSize = 50, TrackBatchSize = 32;

    /// <summary>Peak resident memory of this process (VmHWM), in MB; 0 where /proc is not available.</summary>
    public static double PeakRssMb() => (ProcFiles.Kilobytes("/proc/self/status", "VmHWM") ?? 0) / 1024.0;
}

/// <summary>
/// The ops of one forward pass and its loss, counted as the tensors they create (an op returning
/// several tensors counts each; in-place ops create none). At ~25 µs per op end to end, plus as much
/// for its autograd node in backward (docs/performance.md), this count is the fixed cost of an
/// iteration that larger batches do not amortise. TorchSharp 0.107 does not expose a tensor's
/// gradient function, so autograd nodes cannot be counted from C#; every differentiable op adds one,
/// so the op count bounds them.
/// </summary>
internal static class OpCount
{
    public static long Forward(SqairModel model, Tensor frames, int k)
    {
        using var scope = NewDisposeScope();
        long before = DisposeScopeManager.Statistics.TensorStatistics.CreatedInScopeCount;
        var output = model.Forward(frames, k);
        Objective.Vimco.Surrogate(output.LogWeights, output.LogQDiscrete, (int)frames.shape[0], original: false);
        return DisposeScopeManager.Statistics.TensorStatistics.CreatedInScopeCount - before;
    }
}

/// <summary>
/// Counts the multiply-add FLOPs of linear, convolutional and GRU layers through forward hooks
/// (2 per multiply-accumulate); every layer is called through <c>Module.call</c>, so every call is
/// seen. Elementwise ops and the spatial transformer are left out, so this counts the essential
/// arithmetic of the networks (docs/performance.md checks one layer of each kind by hand).
/// </summary>
sealed class FlopCounter
{
    double flops;
    readonly List<Action> removers = [];

    /// <summary>
    /// The FLOPs of one forward pass of <paramref name="model"/> on <paramref name="frames"/> (no gradient kept).
    /// </summary>
    public static double Forward(SqairModel model, Tensor frames, int k)
    {
        var counter = Attach(model);
        // its own scope, so its activations are freed before the step the bench times
        using (NewDisposeScope())
        using (no_grad())
            model.Forward(frames, k);
        return counter.Detach();
    }

    public static FlopCounter Attach(nn.Module model)
    {
        var counter = new FlopCounter();
        // A module reachable under two names (an auto-property and the Sequential holding it) is hooked once.
        var seen = new HashSet<nn.Module>(ReferenceEqualityComparer.Instance);
        foreach (var m in model.named_modules().Select(x => x.module).Prepend(model))
        {
            if (!seen.Add(m)) continue;
            switch (m)
            {
                case Linear l:
                    var hl = l.register_forward_hook((_, input, output) =>
                    {
                        counter.flops += 2.0 * l.weight!.shape[1] * output.numel();
                        return output;
                    });
                    counter.removers.Add(() => hl.remove());
                    break;
                case Conv2d conv:
                    var hc = conv.register_forward_hook((_, input, output) =>
                    {
                        var w = conv.weight!.shape;
                        counter.flops += 2.0 * w[1] * w[2] * w[3] * output.numel();
                        return output;
                    });
                    counter.removers.Add(() => hc.remove());
                    break;
                case ConvTranspose2d deconv:
                    var hd = deconv.register_forward_hook((_, input, output) =>
                    {
                        var w = deconv.weight!.shape;
                        counter.flops += 2.0 * input.numel() * w[1] * w[2] * w[3];
                        return output;
                    });
                    counter.removers.Add(() => hd.remove());
                    break;
                case GRUCell gru:
                    var hg = gru.register_forward_hook((_, input, hidden, output) =>
                    {
                        var rows = input.shape[0];
                        counter.flops += 2.0 * rows * (gru.weight_ih!.shape[0] * gru.weight_ih.shape[1]
                                                       + gru.weight_hh!.shape[0] * gru.weight_hh.shape[1]);
                        return output;
                    });
                    counter.removers.Add(() => hg.remove());
                    break;
            }
        }
        return counter;
    }

    public double Detach()
    {
        foreach (var remove in removers) remove();
        return flops;
    }
}
