using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Sqair.Sweeps;
using Sqair.Training;

namespace Sqair.Cli;

/// <summary>
/// <c>sqair sweep DIR</c>: arms of a base config, each trained with every seed on the same budget in
/// its own process, measured on validation, tabulated and plotted (docs/tuning.md). Run again, it
/// resumes; <c>--task N</c> runs one task (what each process runs); <c>--collect</c> only reports.
/// </summary>
static class SweepCommand
{
    static readonly Argument<string> Dir = new("dir")
    {
        Description = "Sweep folder: sweep.json, one run folder per arm and seed, sweep.csv, sweep.md, plots/",
    };
    static readonly Option<string[]> Arms = new("--arm")
    {
        Description = "An arm: name:key=value,key=value (or key=value,… named by its changes); repeat for more arms",
        AllowMultipleArgumentsPerToken = false,
    };
    static readonly Option<string[]> Grids = new("--grid")
    {
        Description = "key=v1,v2,…: one arm per value; repeat for more keys (each varied alone)",
    };
    static readonly Option<string[]> Sets = new("--set")
    {
        Description = "key=value applied to every arm (the base), e.g. --set curriculum_start=6",
    };
    static readonly Option<bool> NoBase = new("--no-base")
    {
        Description = "Do not add the base config as an arm of its own (added first by default)",
    };
    static readonly Option<ulong[]> Seeds = new("--seeds")
    {
        Description = "Seeds of every arm [default: 1 2]",
        AllowMultipleArgumentsPerToken = true,
    };
    static readonly Option<long?> Iterations = CommonOptions.AtLeast(1L, new Option<long?>("--iterations")
    {
        Description = "Budget: iterations per arm and seed",
    });
    static readonly Option<double?> Minutes = new("--minutes")
    {
        Description = "Budget: minutes per arm and seed (wall time; an interrupted task starts again)",
    };
    static readonly Option<string?> Init = new("--init")
    {
        Description = "Continue a checkpoint's parameters in every arm (config key init)",
    };
    static readonly Option<long?> EvalEvery = CommonOptions.AtLeast(1L, new Option<long?>("--eval-every")
    {
        Description = "Measure on validation every this many iterations " +
                      "(default: a quarter of --iterations; 500 with --minutes)",
    });
    static readonly Option<int> EvalCount = CommonOptions.AtLeast(1, new Option<int>("--eval-count")
    {
        Description = "Validation sequences per measurement",
        DefaultValueFactory = _ => SweepRequest.DefaultEvalCount,
    });
    static readonly Option<int> TaskThreads = CommonOptions.ThreadCount(SweepRequest.DefaultThreads,
                                                                            "libtorch threads per task");
    static readonly Option<int?> Parallel = CommonOptions.AtLeast(1, new Option<int?>("--parallel")
    {
        Description = "Tasks at once (default: cores / --threads); given alone on a sweep's folder, from now on",
    });
    static readonly Option<int?> Task = CommonOptions.AtLeast(0, new Option<int?>("--task")
    {
        Description = "Run only task N of the sweep in this process " +
                      "(what each task's process and a Slurm array task run)",
    });
    static readonly Option<bool> Collect = new("--collect")
    {
        Description = "Only write the table and plots from the run folders",
    };
    static readonly Option<bool> Slurm = new("--slurm")
    {
        Description = "Submit the unfinished tasks as one Slurm job array (sbatch) instead of running them here",
    };
    static readonly Option<string?> SbatchArgs = new("--sbatch")
    {
        Description = "Options passed to sbatch with --slurm, split into words as a shell would " +
                      "(quotes group, no expansion), e.g. \"--partition=gpu --comment='two words'\"",
    };

    public static Command Build()
    {
        var sweep = new Command("sweep", "Compare arms of a config fairly: each arm and seed trained on the same " +
                                         "budget, measured, tabulated and plotted")
        {
            Dir, Arms, Grids, Sets, NoBase, Seeds, Iterations, Minutes, Init, ConfigOptions.Preset,
            EvalEvery, EvalCount, TaskThreads, Parallel, Task, Collect, Slurm, SbatchArgs,
            CommonOptions.Device, CommonOptions.Cache, CommonOptions.MnistDir,
        };
        sweep.SetAction(Run);
        return sweep;
    }

    static int Run(ParseResult r)
    {
        // Read before the folder is touched: a bad --sbatch must not leave a sweep behind.
        var sbatchArgs = Sweep.SplitWords(r.GetValue(SbatchArgs) ?? "", "--sbatch");
        int? taskIndex = r.GetValue(Task);
        var access = taskIndex is not null ? SweepAccess.Task
            : r.GetValue(Collect) ? SweepAccess.Collect : SweepAccess.Run;
        using var sweep = Sweep.Open(r.GetValue(Dir)!, Request(r), access, Cli.Log);
        if (taskIndex is { } index) return RunTask(r, sweep, index);
        if (access == SweepAccess.Collect)
        {
            Report(sweep);
            return ExitCodes.Success;
        }
        var command = TaskCommand(r, sweep.Dir);
        if (r.GetValue(Slurm))
        {
            Console.WriteLine(sweep.SubmitToSlurm(command, sbatchArgs));
            Cli.Log($"job script {sweep.SlurmScript}; when the array has finished: sqair sweep {sweep.Dir} --collect");
            return ExitCodes.Success;
        }
        Cli.Log($"sweep {sweep.Dir}: {sweep.Summary}");
        try { sweep.RunLocal(i => Local(command, i), Cli.Log, Cli.Stopping); }
        finally { Report(sweep); }
        return Cli.Stopping.IsCancellationRequested ? ExitCodes.Interrupted : ExitCodes.Success;
    }

    /// <summary>The sweep the options describe (or none: arms and a budget absent name the folder's own).</summary>
    static SweepRequest Request(ParseResult r) => new()
    {
        Arms = r.GetValue(Arms) ?? [],
        Grids = r.GetValue(Grids) ?? [],
        Sets = r.GetValue(Sets) ?? [],
        WithBase = !r.GetValue(NoBase),
        Seeds = r.GetValue(Seeds) ?? [],
        Iterations = r.GetValue(Iterations),
        Minutes = r.GetValue(Minutes),
        Init = r.GetValue(Init),
        // Options with a default shown in help are passed only when given: a saved sweep refuses them by name.
        Preset = CommonOptions.IsGiven(r, ConfigOptions.Preset) ? r.GetValue(ConfigOptions.Preset) : null,
        EvalEvery = r.GetValue(EvalEvery),
        EvalCount = CommonOptions.IsGiven(r, EvalCount) ? r.GetValue(EvalCount) : null,
        Threads = CommonOptions.IsGiven(r, TaskThreads) ? r.GetValue(TaskThreads) : null,
        Parallel = r.GetValue(Parallel),
    };

    /// <summary>One task in this process, trained as <c>sqair train</c> trains, then marked done.</summary>
    static int RunTask(ParseResult r, Sweep sweep, int index)
    {
        Sweep.StopWhenSweepEnds(Cli.RequestStop);
        if (sweep.TaskRun(index) is not { } run)
        {
            Cli.Log($"task {index} ({sweep.TaskName(index)}) has finished already");
            return ExitCodes.Success;
        }
        var device = CommonOptions.DeviceFrom(r, sweep.Threads);
        int code = TrainCommand.Train(run.Config, run.Mode, run.RunDir, device,
                                      Cli.DataCache(r, sweep.Threads), shards: 1);
        if (code == ExitCodes.Success) Sweep.MarkDone(run);
        return code;
    }

    /// <summary>
    /// This program asked to run a task of the sweep, as words (the program first); the task's
    /// number follows as --task N.
    /// </summary>
    static List<string> TaskCommand(ParseResult r, string dir)
    {
        var dll = typeof(SweepCommand).Assembly.Location;
        var apphost = Path.Combine(Path.GetDirectoryName(dll)!, OperatingSystem.IsWindows() ? "sqair.exe" : "sqair");
        var words = File.Exists(apphost) ? new List<string> { apphost } : ["dotnet", dll];
        words.AddRange(["sweep", dir]);
        words.AddRange(PassedOn(r));
        return words;
    }

    /// <summary>
    /// The options a sweep passes on to each task and each task to its training: device, cache, MNIST folder.
    /// </summary>
    static List<string> PassedOn(ParseResult r)
    {
        var words = new List<string>
        {
            "--device", r.GetValue(CommonOptions.Device)!,
            "--cache", r.GetValue(CommonOptions.Cache)!,
        };
        if (r.GetValue(CommonOptions.MnistDir) is { } mnist) words.AddRange(["--mnist-dir", mnist]);
        return words;
    }

    static ProcessStartInfo Local(List<string> command, int task)
    {
        var info = new ProcessStartInfo(command[0]);
        foreach (var word in command.Skip(1).Concat(["--task", task.ToString(CultureInfo.InvariantCulture)]))
            info.ArgumentList.Add(word);
        return info;
    }

    static void Report(Sweep sweep)
    {
        Console.WriteLine(sweep.Report());
        Cli.Log($"wrote {sweep.ReportFiles}");
    }
}
