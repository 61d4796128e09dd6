using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Spectre.Console;
using Sqair.Data;
using Sqair.Model;
using Sqair.Training;

namespace Sqair.Cli;

/// <summary><c>sqair train</c>: every config key is also an option (--output_std 0.2), under the original's names.</summary>
static class TrainCommand
{
    static readonly Option<string> Preset = CommonOptions.OneOf(new Option<string>("--preset")
    {
        Description = $"Starting config: {string.Join(", ", Presets.All.Keys)}",
        DefaultValueFactory = _ => "cpu",
    }, [.. Presets.All.Keys]);
    static readonly Option<string?> ConfigFile = new("--config") { Description = "JSON file of config keys applied on top of the preset" };
    static readonly Option<string?> RunDir = new("--run-dir") { Description = "Run folder (default runs/<preset>-<time>); refused if it holds a run, unless --force" };
    static readonly Option<string?> Resume = new("--resume") { Description = "Continue the run in this folder from its newest readable checkpoint" };
    static readonly Option<bool> Force = new("--force") { Description = "Replace the run in --run-dir (its checkpoints, logs and figures are deleted)" };
    public static readonly Option<int> Shards = CommonOptions.AtLeast(1, new Option<int>("--shards")
    {
        Description = "Split each training batch over this many threads, each with threads/shards libtorch threads; " +
                      "1 (default): the whole batch at once on --threads threads (docs/performance.md)",
        DefaultValueFactory = _ => 1,
    });

    /// <summary>One string option per config key, so "--learning_rate 3e-4" works like the original's flags.</summary>
    static readonly Dictionary<string, Option<string?>> KeyOptions =
        SqairConfig.Keys.Keys.ToDictionary(k => k, k => new Option<string?>($"--{k}") { Description = $"config key {k}", HelpName = "value" });

    public static Command Build()
    {
        var train = new Command("train", "Train SQAIR on moving multi-MNIST or a dataset file (a run folder with checkpoints, figures, TensorBoard events)")
        {
            RunDir, Resume, Force, CommonOptions.Device, CommonOptions.Threads, Shards, CommonOptions.Cache, CommonOptions.MnistDir,
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

    static IEnumerable<string> KeyAssignments(ParseResult r) =>
        KeyOptions.Where(kv => r.GetValue(kv.Value) is not null).Select(kv => $"{kv.Key}={r.GetValue(kv.Value)}");

    /// <summary>
    /// The config from the preset, then the file's keys, then the command line's, validated once
    /// with all of them applied; a bad key is named with where it came from.
    /// </summary>
    public static SqairConfig ConfigFrom(ParseResult r)
    {
        var overrides = new JsonObject();
        var sources = new List<string>();
        if (r.GetValue(ConfigFile) is { } file)
        {
            foreach (var (k, v) in SqairConfig.ReadOverrides(file)) overrides[k] = v?.DeepClone();
            sources.Add(file);
        }
        var assignments = KeyAssignments(r).ToList();
        if (assignments.Count > 0)
        {
            foreach (var (k, v) in SqairConfig.Assignments(assignments)) overrides[k] = v?.DeepClone();
            sources.Add("command line");
        }
        var preset = Presets.Get(r.GetValue(Preset)!);
        return sources.Count == 0 ? preset : preset.With(overrides, string.Join(" + ", sources));
    }

    static int Run(ParseResult r)
    {
        var device = CommonOptions.DeviceFrom(r);
        var resume = r.GetValue(Resume);
        SqairConfig config;
        StartMode mode;
        string runDir;
        if (resume is not null)
        {
            var ignored = new (Option Option, bool Given)[]
            {
                (RunDir, r.GetValue(RunDir) is not null), (Preset, r.GetResult(Preset) is { Implicit: false }),
                (ConfigFile, r.GetValue(ConfigFile) is not null), (Force, r.GetValue(Force)),
            }.Where(x => x.Given).Select(x => x.Option.Name).ToList();
            if (ignored.Count > 0)
                throw new UserError($"--resume continues the run in its own folder with its own config; {string.Join(", ", ignored)} cannot be given with it");
            if (!Directory.Exists(resume)) throw new UserError($"--resume {resume}: no such run folder");
            // The config from a header alone; the trainer reads the checkpoint it resumes from once, whole.
            var runConfig = Checkpoint.InRun(resume).Select(TryReadConfig).FirstOrDefault(c => c is not null)
                            ?? throw new UserError($"--resume {resume}: the folder has no readable checkpoint");
            config = runConfig.With(KeyAssignments(r));
            (mode, runDir) = (StartMode.Resume, resume);
        }
        else
        {
            config = ConfigFrom(r);
            mode = r.GetValue(Force) ? StartMode.Replace : StartMode.New;
            runDir = r.GetValue(RunDir) ?? Path.Combine("runs", $"{r.GetValue(Preset)}-{DateTime.Now:yyyyMMdd-HHmmss}");
        }

        var (trainSource, validSource) = Sources(r, config);
        using var trainFile = trainSource as SequenceFile;
        using var validFile = validSource as SequenceFile;
        config = WithDataProvenance(config, trainFile, mode);
        Checkpoint.Contents? init = null;
        if (mode != StartMode.Resume && config.Init != "")
        {
            init = CommonOptions.ReadCheckpoint(config.Init);
            config = config with { Init = Path.GetFullPath(init.Path) };
        }
        using var trainer = new Trainer(config, runDir, trainSource, validSource, device, Cli.Log, mode, r.GetValue(Shards), init);
        AnsiConsole.MarkupLine($"run folder [green]{Markup.Escape(trainer.RunDir)}[/]  (tensorboard --logdir {Markup.Escape(trainer.RunDir)})");
        AnsiConsole.MarkupLine($"[grey]model {config.Model}, {trainer.Model.parameters().Sum(p => p.numel()):N0} parameters, optimizer {config.Optimizer} lr {config.LearningRate}, batch {config.BatchSize}, K {config.KParticles}, {TorchSharp.torch.get_num_threads()} threads in {r.GetValue(Shards)} shard(s) on {device}[/]");

        TrainOutcome outcome;
        if (AnsiConsole.Profile.Capabilities.Interactive)
        {
            outcome = TrainOutcome.Completed;
            Cli.ModelProgress()
                .Start(ctx =>
                {
                    var task = ctx.AddTask("starting", maxValue: config.MaxTrainIter);
                    task.Value = trainer.Iteration;
                    outcome = trainer.Run(Cli.Stopping, p =>
                    {
                        task.Value = p.Iteration;
                        task.Description = Markup.Escape(Line(p));
                        ctx.Refresh();
                    });
                });
        }
        else
        {
            outcome = trainer.Run(Cli.Stopping, p =>
            {
                if (p.Iteration % config.LogItr == 0) Console.WriteLine(Line(p));
            });
        }
        var color = outcome is TrainOutcome.Diverged ? "red" : "green";
        AnsiConsole.MarkupLine($"[{color}]{Markup.Escape(trainer.StopMessage ?? outcome.ToString())}[/]");
        return outcome switch
        {
            TrainOutcome.Diverged => ExitCodes.Diverged,
            TrainOutcome.Interrupted => ExitCodes.Interrupted,
            _ => ExitCodes.Success,
        };
    }

    static SqairConfig? TryReadConfig(string checkpoint)
    {
        try { return Checkpoint.ReadConfig(checkpoint); }
        catch (Exception e) when (e is InvalidDataException or IOException) { return null; }
    }

    /// <summary>
    /// The training and validation sequences: dataset files the user names (checked against their
    /// checksums), else the cached standard sets (generated once), else the on-the-fly generator.
    /// </summary>
    static (ISequenceSource Train, ISequenceSource Valid) Sources(ParseResult r, SqairConfig config)
    {
        var dataConfig = config.DataConfig();
        if (config.Data != "")
        {
            var train = OpenChecked(config.Data, "data");
            return (train, config.ValidData != "" ? OpenChecked(config.ValidData, "valid_data") : train);
        }
        if (config.ValidData != "") throw new UserError("config key 'valid_data' needs 'data' (the generated training set comes with its own validation set)");
        ISequenceSource trainSource = config.OnTheFly
            ? new GeneratedSource(Datasets.Generator(Cli.EnsureMnist(r), dataConfig, Pool.Train, config.DataSeed))
            : Checked(Cli.Dataset(r, dataConfig, Pool.Train, config.TrainSize, config.DataSeed));
        return (trainSource, Checked(Cli.Dataset(r, dataConfig, Pool.Validation, config.ValidSize, config.DataSeed)));
    }

    static SequenceFile OpenChecked(string path, string key) =>
        File.Exists(path) ? Checked(SequenceFile.Open(path)) : throw new UserError($"config key '{key}' = {path}: no such file");

    /// <summary>
    /// A new run records its data files by full path and the training frames' checksum; a resumed
    /// run must find the same frames there.
    /// </summary>
    static SqairConfig WithDataProvenance(SqairConfig config, SequenceFile? train, StartMode mode)
    {
        if (train is null || config.Data == "") return config;
        var checksum = train.Checksum("frames") ?? "";
        if (mode == StartMode.Resume)
        {
            if (config.DataChecksum != "" && checksum != config.DataChecksum)
                throw new UserError($"config key 'data' = {config.Data}: its frames changed since the run started (checksum {checksum}, the run's {config.DataChecksum})");
            return config;
        }
        return config with
        {
            Data = Path.GetFullPath(config.Data),
            ValidData = config.ValidData == "" ? "" : Path.GetFullPath(config.ValidData),
            DataChecksum = checksum,
        };
    }

    /// <summary>
    /// Checks a dataset file against its checksums before training on it: a changed byte would
    /// silently change what is learnt, and reading even the 1.5 GB training set costs seconds of an hour.
    /// </summary>
    static SequenceFile Checked(SequenceFile file)
    {
        var sw = Stopwatch.StartNew();
        switch (file.Verify())
        {
            case null:
                Cli.Warn($"{file.Path} has no checksums (written by an older version): its values were checked, its bytes cannot be; delete it to have it generated again with checksums");
                break;
            case []:
                Cli.Log($"{file.Path}: checksums verified in {sw.Elapsed.TotalSeconds:F1} s");
                break;
            case var problems:
                file.Dispose();
                throw new InvalidDataException($"{file.Path}: {problems[0]}");
        }
        return file;
    }

    /// <summary>The progress line; time left to whichever of max_train_iter and the time limit comes first, as h:mm:ss.</summary>
    static string Line(TrainProgress p) =>
        $"it {p.Iteration}/{p.MaxIterations} len {p.SeqLen} loss {p.Loss:F1} iwae {p.Iwae:F1} acc {p.CountAccuracy:F3} {p.IterationsPerSecond:F2} it/s " +
        $"left {(int)p.Eta.TotalHours}:{p.Eta:mm\\:ss}";
}
