using System.Diagnostics;
using Sqair.Data;
using Sqair.Model;
using Sqair.Objective;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Sqair.Training;

/// <summary>Timing of training iterations, split by phase, with an estimate of the arithmetic done.</summary>
public sealed record BenchResult(int Iterations, int SeqLen, int Threads, string Device, double IterationsPerSecond,
                                 double DataMs, double ForwardMs, double BackwardMs, double OptimizerMs,
                                 double PeakRssMb, double ForwardGflops, IReadOnlyDictionary<string, long> ParametersPerModule)
{
    /// <summary>Forward plus backward, counting the backward pass as twice the forward's matmul/conv FLOPs.</summary>
    public double GflopsPerIteration => 3 * ForwardGflops;
    public double AchievedGflopsPerSecond => GflopsPerIteration * IterationsPerSecond;
}

public static class Bench
{
    public static BenchResult Train(SqairConfig c, ISequenceSource source, int seqLen, int warmup, int iterations, Device device)
    {
        manual_seed((long)c.Seed);
        var model = new SqairModel(c);
        model.to(device);
        var parameters = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, (Tensor)p.parameter)).ToList();
        var optimizer = Optimizer.Create(c.Optimizer, parameters);
        var loader = new BatchLoader(source, c.BatchSize, shuffle: true, seed: c.Seed, device);
        double data = 0, forward = 0, backward = 0, step = 0;
        double forwardGflops = 0;
        // FLOPs are counted on the last warm-up iteration, so the hooks never slow a timed one.
        warmup = Math.Max(1, warmup);
        for (int i = 0; i < warmup + iterations; i++)
        {
            bool timed = i >= warmup;
            bool count = i == warmup - 1;
            using var scope = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            using var batch = loader.Get(i, seqLen);
            double t0 = sw.Elapsed.TotalMilliseconds;
            var hooks = count ? FlopCounter.Attach(model) : null;
            var output = model.Forward(batch.Frames, c.KParticles);
            var (loss, _) = Iwae.Surrogate(output.LogWeights, output.LogQDiscrete, seqLen);
            loss.ToDouble();
            double t1 = sw.Elapsed.TotalMilliseconds;
            if (hooks is not null) forwardGflops = hooks.Detach() / 1e9;
            loss.backward();
            double t2 = sw.Elapsed.TotalMilliseconds;
            optimizer.Step(c.LearningRate);
            model.zero_grad();
            double t3 = sw.Elapsed.TotalMilliseconds;
            if (!timed) continue;
            data += t0; forward += t1 - t0; backward += t2 - t1; step += t3 - t2;
        }
        double total = data + forward + backward + step;
        var perModule = model.named_children().ToDictionary(m => m.name, m => m.module.parameters().Sum(p => p.numel()));
        return new BenchResult(iterations, seqLen, get_num_threads(), device.ToString(), iterations / (total / 1000),
                               data / iterations, forward / iterations, backward / iterations, step / iterations,
                               PeakRssMb(), forwardGflops, perModule);
    }

    /// <summary>Peak resident memory of this process (VmHWM), in MB; 0 where /proc is not available.</summary>
    public static double PeakRssMb()
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return 0;
        var line = File.ReadLines(status).FirstOrDefault(l => l.StartsWith("VmHWM:"));
        return line is null ? 0 : double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
    }
}

/// <summary>
/// Counts the multiply-add FLOPs of linear, convolutional and GRU layers through forward hooks
/// (2 per multiply-accumulate). Elementwise ops and grid sampling are left out, so this is a
/// slight underestimate.
/// </summary>
sealed class FlopCounter
{
    double flops;
    readonly List<Action> removers = [];

    public static FlopCounter Attach(nn.Module model)
    {
        var counter = new FlopCounter();
        foreach (var (_, m) in model.named_modules())
        {
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
                        counter.flops += 2.0 * rows * (gru.weight_ih.shape[0] * gru.weight_ih.shape[1] + gru.weight_hh.shape[0] * gru.weight_hh.shape[1]);
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
