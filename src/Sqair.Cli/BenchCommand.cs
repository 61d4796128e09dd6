using System.CommandLine;
using System.Text.Json;
using Spectre.Console;
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Jobs;
using Sqair.Training;

namespace Sqair.Cli;

/// <summary>
/// <c>sqair bench train</c>: iterations per second, time per phase, memory and FLOPs of a config;
/// <c>sqair bench eval</c>: inference speed.
/// </summary>
static class BenchCommand
{
    // Not --seq_len, the config key: the timed frames are a prefix of the config's sequences, as the curriculum's are.
    static readonly Option<int?> SeqLen = CommonOptions.AtLeast(1, new Option<int?>("--timed-len")
    {
        Description = "Frames per timed sequence (default: the config's seq_len)",
    });

    static readonly Option<int> Warmup = CommonOptions.AtLeast(0, new Option<int>("--warmup")
    {
        Description = "Untimed iterations first",
        DefaultValueFactory = _ => 3,
    });

    static readonly Option<int> Iterations = CommonOptions.AtLeast(1, new Option<int>("--iterations")
    {
        Description = "Timed iterations",
        DefaultValueFactory = _ => 20,
    });

    static readonly Option<bool> Synthetic = new("--synthetic")
    {
        Description = "Random digit-sized blobs instead of MNIST (no download)",
    };

    static readonly Option<string?> Json = new("--json") { Description = "Also write the result as JSON to this file" };

    static readonly Option<long> Count = CommonOptions.AtLeast(1L, new Option<long>("--count")
    {
        Description = "Sequences to evaluate and track",
        DefaultValueFactory = _ => 1000,
    });

    public static Command Build()
    {
        var train = new Command("train", "Time training iterations of a config (forward, backward, optimiser step)")
        {
            SeqLen, Warmup, Iterations, Synthetic, Json,
            CommonOptions.Device, CommonOptions.Threads, CommonOptions.Shards, CommonOptions.ShardProcesses,
            CommonOptions.Cache, CommonOptions.MnistDir,
        };
        ConfigOptions.AddTo(train);
        CommonOptions.CheckShardProcesses(train);
        train.SetAction(RunTrain);
        var inference = new Command("eval", "Time sqair eval (all measures, K particles) and sqair track (K = 1) " +
                                            "on a config's model")
        {
            Count, CommonOptions.K, Synthetic, Json,
            CommonOptions.Device, CommonOptions.Threads, CommonOptions.Cache, CommonOptions.MnistDir,
        };
        ConfigOptions.AddTo(inference);
        inference.SetAction(RunEval);
        return new Command("bench", "Benchmarks") { train, inference };
    }

    static int RunTrain(ParseResult r)
    {
        var config = ConfigOptions.From(r);
        CheckJson(r);
        var device = CommonOptions.DeviceFrom(r);
        var source = Source(r, config);
        int len = r.GetValue(SeqLen) ?? config.SeqLen;
        if (len > config.SeqLen)
            throw new UserError($"--timed-len {len}: must be at most the config's seq_len ({config.SeqLen})");
        MemoryEstimate.CheckTraining(config, config.BatchSize, config.KParticles, len, MemoryEstimate.AvailableBytes(),
                                     TrainingRun.MemoryKeys with { Frames = "--timed-len" });
        // No spinner: an animation thread allocating while libtorch runs is exactly what
        // TorchSharp's scalar finalizer race needs.
        AnsiConsole.MarkupLine($"[grey]timing {r.GetValue(Iterations)} iterations at T = {len}, " +
                               $"batch {config.BatchSize}, K = {config.KParticles}…[/]");
        var result = Bench.Train(config, source, len, r.GetValue(Warmup), r.GetValue(Iterations), device,
                                 r.GetValue(CommonOptions.Shards), CommonOptions.ShardProcessFrom(r), Cli.Stopping);
        var table = new Table().AddColumns("measure", "value");
        table.AddRow("model", $"{config.Model.ToString().ToLowerInvariant()}, T = {len}, " +
                              $"batch {config.BatchSize}, K = {config.KParticles}");
        table.AddRow("threads / shards / device", $"{result.Threads} / {result.Shards} / {result.Device}");
        table.AddRow("iterations/s", $"{result.IterationsPerSecond:F3}");
        table.AddRow("ms data / forward + backward / step",
                     $"{result.DataMs:F1} / {result.GradientMs:F1} / {result.OptimizerMs:F1}");
        if (result.Shards == 1)
            table.AddRow("ms forward / backward", $"{result.ForwardMs:F1} / {result.BackwardMs:F1}");
        table.AddRow("peak memory (RSS)", $"{result.PeakRssMb:N0} MB");
        table.AddRow("GFLOP per iteration (fwd + 2×fwd for bwd)", $"{result.GflopsPerIteration:F2}");
        table.AddRow("achieved GFLOP/s", $"{result.AchievedGflopsPerSecond:F1}");
        table.AddRow("ops: forward + loss (tensors made)", $"{result.ForwardOps:N0}");
        foreach (var (module, count) in result.ParametersPerModule)
            table.AddRow($"parameters: {module}", $"{count:N0}");
        table.AddRow("parameters: total", $"{result.ParametersPerModule.Values.Sum():N0}");
        AnsiConsole.Write(table);
        if (r.GetValue(Json) is { } path) Cli.WriteJson(path, result);
        return 0;
    }

    static int RunEval(ParseResult r)
    {
        var config = ConfigOptions.From(r);
        CheckJson(r);
        long n = r.GetValue(Count);
        // eval runs in batches of EvalBatchSize, so only a --count below it makes a batch smaller
        MemoryEstimate.Check(config, Math.Min(n, Bench.EvalBatchSize), r.GetValue(CommonOptions.K), config.SeqLen,
                             MemoryEstimate.AvailableBytes(), new MemoryEstimate.Options("--count", "--k"));
        var device = CommonOptions.DeviceFrom(r);
        var source = Source(r, config);
        AnsiConsole.MarkupLine($"[grey]evaluating and tracking {n} sequences of {config.SeqLen} frames…[/]");
        var result = Bench.Inference(config, source, n, r.GetValue(CommonOptions.K), device, Cli.Stopping);
        var table = new Table().AddColumns("measure", "value");
        table.AddRow("model", $"{config.Model.ToString().ToLowerInvariant()}, T = {result.SeqLen}, {n} sequences");
        table.AddRow("threads / device", $"{result.Threads} / {device}");
        table.AddRow($"eval, K = {result.K}: sequences/s", $"{result.EvalSequencesPerSecond:F1}");
        table.AddRow("eval: seconds per 10 000 sequences", $"{10_000 / result.EvalSequencesPerSecond:F0}");
        table.AddRow("track, K = 1: frames/s", $"{result.TrackFramesPerSecond:F0}");
        table.AddRow("peak memory (RSS)", $"{result.PeakRssMb:N0} MB");
        AnsiConsole.Write(table);
        if (r.GetValue(Json) is { } path) Cli.WriteJson(path, result);
        return 0;
    }

    /// <summary>Refuses a --json that is a folder or the --config file, before the timing starts.</summary>
    static void CheckJson(ParseResult r)
    {
        if (r.GetValue(Json) is { } path)
            Outputs.CheckFile("--json", path, ("the --config file", r.GetValue(ConfigOptions.ConfigFile)));
    }

    /// <summary>
    /// The sequences a bench runs on: digit-sized blobs (no download) or MNIST digits, generated on the fly.
    /// </summary>
    static GeneratedSource Source(ParseResult r, Model.SqairConfig config)
    {
        var dataConfig = config.DataConfig();
        var templates = r.GetValue(Synthetic)
            ? MovingMnist.SyntheticTemplates(MovingMnist.SyntheticPoolSize, 0)
            : MovingMnist.BuildPool(Mnist.LoadSplit(Cli.EnsureMnist(r), train: true), Pool.Train,
                                    dataConfig.DigitScale);
        return new GeneratedSource(new MovingMnist(dataConfig, templates, config.DataSeed));
    }
}
