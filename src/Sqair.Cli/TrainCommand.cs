using System.CommandLine;
using System.Runtime.InteropServices;
using Spectre.Console;
using Sqair.Data;
using Sqair.Model;
using Sqair.Training;
using TorchSharp;

namespace Sqair.Cli;

/// <summary><c>sqair train</c>: every config key is also an option (--output_std 0.2), under the original's names.</summary>
static class TrainCommand
{
    static readonly Option<string> Preset = new("--preset") { Description = $"Starting config: {string.Join(", ", Presets.All.Keys)}", DefaultValueFactory = _ => "cpu" };
    static readonly Option<string?> ConfigFile = new("--config") { Description = "JSON file of config keys applied on top of the preset" };
    static readonly Option<string?> RunDir = new("--run-dir") { Description = "Run folder (default runs/<preset>-<time>)" };
    static readonly Option<string?> Resume = new("--resume") { Description = "Continue the run in this folder from its newest checkpoint" };
    public static readonly Option<string> DeviceOption = new("--device") { Description = "cpu or cuda", DefaultValueFactory = _ => "cpu" };
    public static readonly Option<int> Threads = new("--threads") { Description = "CPU threads for libtorch (default: all cores)", DefaultValueFactory = _ => Environment.ProcessorCount };
    public static readonly Option<int> Shards = new("--shards")
    {
        Description = "Split each training batch over this many threads, each with threads/shards libtorch threads; " +
                      "1 (default): the whole batch at once on --threads threads (docs/performance.md)",
        DefaultValueFactory = _ => 1,
    };

    /// <summary>The number of shards a training batch is split into (at least 1).</summary>
    public static int ShardCount(ParseResult r) => r.GetValue(Shards) >= 1 ? r.GetValue(Shards) : throw new UserError($"--shards {r.GetValue(Shards)}: must be at least 1");

    /// <summary>One string option per config key, so "--learning_rate 3e-4" works like the original's flags.</summary>
    static readonly Dictionary<string, Option<string?>> KeyOptions =
        SqairConfig.Keys.Keys.ToDictionary(k => k, k => new Option<string?>($"--{k}") { Description = $"config key {k}", HelpName = "value" });

    public static Command Build()
    {
        var train = new Command("train", "Train SQAIR on moving multi-MNIST (a run folder with checkpoints, figures, TensorBoard events)")
        {
            RunDir, Resume, DeviceOption, Threads, Shards, Cli.Cache, Cli.MnistDir,
        };
        AddConfigOptions(train);
        train.SetAction(Run);
        return train;
    }

    /// <summary>--preset, --config and one option per config key.</summary>
    public static void AddConfigOptions(Command command)
    {
        command.Options.Add(Preset);
        command.Options.Add(ConfigFile);
        foreach (var o in KeyOptions.Values) command.Options.Add(o);
    }

    /// <summary>The config from preset, then file, then command-line keys; validated with the source of every bad key named.</summary>
    public static SqairConfig ConfigFrom(ParseResult r)
    {
        var config = Presets.Get(r.GetValue(Preset)!);
        if (r.GetValue(ConfigFile) is { } file) config = SqairConfig.FromJsonFile(file, config);
        var assignments = KeyOptions.Where(kv => r.GetValue(kv.Value) is not null).Select(kv => $"{kv.Key}={r.GetValue(kv.Value)}").ToList();
        return assignments.Count > 0 ? config.With(assignments) : config;
    }

    /// <summary>A resumed run's config: its checkpoint's, with only the resumable keys overridable.</summary>
    static SqairConfig ResumeConfig(ParseResult r, string runDir)
    {
        var config = Checkpoint.Read(Checkpoint.InRun(runDir).FirstOrDefault() ?? throw new UserError($"{runDir} has no checkpoints to resume from")).Config;
        var assignments = KeyOptions.Where(kv => r.GetValue(kv.Value) is not null).ToList();
        var fixedKeys = assignments.Select(kv => kv.Key).Where(k => !SqairConfig.ResumableKeys.Contains(k)).ToList();
        if (fixedKeys.Count > 0 || r.GetValue(ConfigFile) is not null)
            throw new UserError($"--resume keeps the run's config; only {string.Join(", ", SqairConfig.ResumableKeys)} may be given (not {string.Join(", ", fixedKeys.DefaultIfEmpty("--config"))})");
        return assignments.Count > 0 ? config.With(assignments.Select(kv => $"{kv.Key}={r.GetValue(kv.Value)}")) : config;
    }

    public static torch.Device Device(ParseResult r)
    {
        torch.set_num_threads(r.GetValue(Threads));
        var name = r.GetValue(DeviceOption)!;
        if (name.StartsWith("cuda") && !torch.cuda.is_available())
            throw new UserError("--device cuda: no CUDA device is available to this build (it uses TorchSharp-cpu; install TorchSharp-cuda-linux to use a GPU)");
        return torch.device(name);
    }

    static int Run(ParseResult r)
    {
        var device = Device(r);
        var resume = r.GetValue(Resume);
        var config = resume is null ? ConfigFrom(r) : ResumeConfig(r, resume);
        var runDir = resume ?? r.GetValue(RunDir) ?? Path.Combine("runs", $"{r.GetValue(Preset)}-{DateTime.Now:yyyyMMdd-HHmmss}");
        var cache = r.GetValue(Cli.Cache)!;
        var mnist = Cli.EnsureMnist(cache, r.GetValue(Cli.MnistDir));
        var dataConfig = config.DataConfig();
        ISequenceSource trainSource = config.OnTheFly
            ? new GeneratedSource(Datasets.Generator(mnist, dataConfig, Pool.Train, config.DataSeed))
            : Cli.Dataset(cache, mnist, dataConfig, Pool.Train, config.TrainSize, config.DataSeed);
        var validSource = Cli.Dataset(cache, mnist, dataConfig, Pool.Validation, config.ValidSize, config.DataSeed);

        var trainer = new Trainer(config, runDir, trainSource, validSource, device, Cli.Log, resume is not null, ShardCount(r));
        AnsiConsole.MarkupLine($"run folder [green]{Markup.Escape(trainer.RunDir)}[/]  (tensorboard --logdir {Markup.Escape(trainer.RunDir)})");
        AnsiConsole.MarkupLine($"[grey]model {config.Model}, {trainer.Model.parameters().Sum(p => p.numel()):N0} parameters, optimizer {config.Optimizer} lr {config.LearningRate}, batch {config.BatchSize}, K {config.KParticles}, {torch.get_num_threads()} threads in {ShardCount(r)} shard(s) on {device}[/]");

        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; cts.Cancel(); });

        TrainOutcome outcome;
        if (AnsiConsole.Profile.Capabilities.Interactive)
        {
            outcome = TrainOutcome.Completed;
            Cli.ModelProgress()
                .Start(ctx =>
                {
                    var task = ctx.AddTask("starting", maxValue: config.MaxTrainIter);
                    task.Value = trainer.Iteration;
                    outcome = trainer.Run(cts.Token, p =>
                    {
                        task.Value = p.Iteration;
                        task.Description = Markup.Escape(Line(p));
                        ctx.Refresh();
                    });
                });
        }
        else
        {
            outcome = trainer.Run(cts.Token, p =>
            {
                if (p.Iteration % config.LogItr == 0) Console.WriteLine(Line(p));
            });
        }
        var color = outcome is TrainOutcome.Diverged ? "red" : "green";
        AnsiConsole.MarkupLine($"[{color}]{Markup.Escape(trainer.StopMessage ?? outcome.ToString())}[/]");
        return outcome is TrainOutcome.Diverged ? 2 : 0;
    }

    static string Line(TrainProgress p) =>
        $"it {p.Iteration}/{p.MaxIterations} len {p.SeqLen} loss {p.Loss:F1} iwae {p.Iwae:F1} acc {p.CountAccuracy:F3} {p.IterationsPerSecond:F2} it/s ETA {p.Eta:d\\.hh\\:mm\\:ss}";
}
