using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Jobs;
using Sqair.Model;
using Sqair.Objective;
using Sqair.Runs;
using Sqair.Training;

namespace Sqair.Cli;

/// <summary>
/// <c>sqair train</c>: every config key is also an option (--output_std 0.2), under the original's names.
/// </summary>
static class TrainCommand
{
    static readonly Option<string?> RunDir = new("--run-dir")
    {
        Description = "Run folder (default runs/<preset>-<time>); refused if it holds a run, unless --force",
    };
    static readonly Option<string?> Resume = new("--resume")
    {
        Description = "Continue the run in this folder from its newest readable checkpoint",
    };
    static readonly Option<bool> Force = new("--force")
    {
        Description = "Replace the run in --run-dir (the files it wrote are deleted and named; nothing else)",
    };
    public static Command Build()
    {
        var train = new Command("train", "Train SQAIR on moving multi-MNIST or a dataset file " +
                                         "(a run folder with checkpoints, figures, TensorBoard events)")
        {
            RunDir, Resume, Force,
            CommonOptions.Device, CommonOptions.Threads, CommonOptions.Shards, CommonOptions.ShardProcesses,
            CommonOptions.Cache, CommonOptions.MnistDir,
        };
        ConfigOptions.AddTo(train);
        CommonOptions.CheckShardProcesses(train);
        train.SetAction(Run);
        return train;
    }

    static int Run(ParseResult r)
    {
        var (config, mode, runDir) = r.GetValue(Resume) is { } resume ? Resumed(r, resume) : Started(r);
        var device = CommonOptions.DeviceFrom(r);
        return Train(config, mode, runDir, device, Cli.DataCache(r), r.GetValue(CommonOptions.Shards),
                     CommonOptions.ShardProcessFrom(r));
    }

    /// <summary>
    /// Opens the run (<see cref="TrainingRun.Open"/>), says what it is, trains it to the end with its progress shown,
    /// and returns the exit code of its outcome. A sweep's task runs here too.
    /// </summary>
    public static int Train(SqairConfig config, StartMode mode, string runDir, TorchSharp.torch.Device device,
                            DataCache cache, int shards,
                            Func<System.Diagnostics.ProcessStartInfo>? shardProcess = null)
    {
        using var run = TrainingRun.Open(config, runDir, mode, cache, device, Cli.Log, Cli.Warn, shards, shardProcess);
        var trainer = run.Trainer;
        config = trainer.Config;
        AnsiConsole.MarkupLine($"run folder [green]{Markup.Escape(trainer.RunDir)}[/]  " +
                               $"(tensorboard --logdir {Markup.Escape(trainer.RunDir)})");
        AnsiConsole.MarkupLine($"[grey]model {config.Model.ToString().ToLowerInvariant()}, " +
                               $"{trainer.Model.parameters().Sum(p => p.numel()):N0} parameters, " +
                               $"optimizer {config.Optimizer.ToString().ToLowerInvariant()} " +
                               $"lr {config.LearningRate}, batch {config.BatchSize}, K {config.KParticles}, " +
                               $"{TorchSharp.torch.get_num_threads()} threads " +
                               $"in {shards} shard(s){(shardProcess is null ? "" : " (processes)")} " +
                               $"on {device}[/]");

        var outcome = RunShowingProgress(trainer, config);
        var message = trainer.StopMessage ?? outcome.ToString();
        if (outcome is TrainOutcome.Diverged) Cli.Error(message);
        else AnsiConsole.MarkupLine($"[green]{Markup.Escape(message)}[/]");
        return outcome switch
        {
            TrainOutcome.Diverged => ExitCodes.Diverged,
            TrainOutcome.Interrupted => ExitCodes.Interrupted,
            _ => ExitCodes.Success,
        };
    }

    /// <summary>
    /// Trains to the end: a progress bar on a terminal, a line every log_itr iterations otherwise
    /// (logs, CI, Slurm).
    /// </summary>
    static TrainOutcome RunShowingProgress(Trainer trainer, SqairConfig config)
    {
        if (AnsiConsole.Profile.Capabilities.Interactive)
        {
            var outcome = TrainOutcome.Completed;
            Cli.ModelProgress()
                .Start(ctx =>
                {
                    var task = ctx.AddTask("starting", maxValue: config.MaxTrainIter);
                    task.Value = trainer.Iteration;
                    outcome = trainer.Run(Cli.Stopping, p =>
                    {
                        task.Value = p.Iteration;
                        task.Description = Markup.Escape(p.Line);
                        ctx.Refresh();
                    });
                });
            return outcome;
        }
        return trainer.Run(Cli.Stopping, p =>
        {
            if (p.Iteration % config.LogItr == 0) Console.WriteLine(p.Line);
        });
    }

    /// <summary>
    /// The config, start mode and folder of a new run (or one that replaces a folder's run, with --force).
    /// </summary>
    static (SqairConfig, StartMode, string) Started(ParseResult r) =>
        (ConfigOptions.From(r), r.GetValue(Force) ? StartMode.Replace : StartMode.New,
         r.GetValue(RunDir)
         ?? Path.Combine("runs", $"{r.GetValue(ConfigOptions.Preset)}-{DateTime.Now:yyyyMMdd-HHmmss}"));

    /// <summary>
    /// The config of a resumed run: that of the checkpoint it resumes from, with only the key options
    /// given (resumable keys; the trainer refuses others); the options that choose a folder or a config are refused.
    /// </summary>
    static (SqairConfig, StartMode, string) Resumed(ParseResult r, string resume)
    {
        var ignored = new (Option Option, bool Given)[]
        {
            (RunDir, r.GetValue(RunDir) is not null),
            (ConfigOptions.Preset, CommonOptions.IsGiven(r, ConfigOptions.Preset)),
            (ConfigOptions.ConfigFile, r.GetValue(ConfigOptions.ConfigFile) is not null),
            (Force, r.GetValue(Force)),
        }.Where(x => x.Given).Select(x => x.Option.Name).ToList();
        if (ignored.Count > 0)
            throw new UserError("--resume continues the run in its own folder with its own config; " +
                                $"{string.Join(", ", ignored)} cannot be given with it");
        if (!Directory.Exists(resume)) throw new UserError($"--resume {resume}: no such run folder");
        // The config of the checkpoint the trainer will resume from (it reads that file again: a few MB).
        var runConfig = TrainingRun.ResumableConfig(resume)
                        ?? throw new UserError($"--resume {resume}: the folder has no checkpoint to resume from");
        return (runConfig.With(ConfigOptions.KeyAssignments(r)), StartMode.Resume, resume);
    }
}
