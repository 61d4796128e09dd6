using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Sqair.Files;
using Sqair.Runs;
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
    { Description = "Validation sequences per measurement", DefaultValueFactory = _ => 500 });
    static readonly Option<int> TaskThreads = CommonOptions.ThreadCount(1, "libtorch threads per task");
    static readonly Option<int?> Parallel = CommonOptions.AtLeast(1, new Option<int?>("--parallel")
    {
        Description = "Tasks at once (default: cores / --threads)",
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

    /// <summary>A fraction of the budget between measurements when --eval-every is not given.</summary>
    const int DefaultMeasurements = 4;
    /// <summary>Iterations between measurements of a minutes budget when --eval-every is not given.</summary>
    const long DefaultEvalEveryForMinutes = 500;

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
        var dir = Path.GetFullPath(r.GetValue(Dir)!);
        // Read before the folder is touched: a bad --sbatch must not leave a sweep behind.
        var sbatchArgs = SweepSlurm.SplitWords(r.GetValue(SbatchArgs) ?? "", "--sbatch");
        bool collect = r.GetValue(Collect);
        int? taskIndex = r.GetValue(Task);
        // A local run or a submission holds the sweep's lock to its end: a second process running the
        // same folder would start the same tasks again. A task runs under its sweep's lock; --collect only reads.
        var (spec, sweepLock) = SpecFrom(r, dir, collect, keepLock: taskIndex is null && !collect);
        using var _ = sweepLock;
        if (taskIndex is { } index) return RunTask(r, spec, dir, index);
        if (collect)
        {
            Report(spec, dir);
            return ExitCodes.Success;
        }
        var command = TaskCommand(r, dir);
        if (r.GetValue(Slurm))
        {
            Console.WriteLine(SweepSlurm.Submit(spec, dir, command, sbatchArgs));
            Cli.Log($"job script {Path.Combine(dir, SweepSlurm.ScriptName)}; " +
                    $"when the array has finished: sqair sweep {dir} --collect");
            return ExitCodes.Success;
        }
        Cli.Log($"sweep {dir}: {spec.Arms.Count} arm(s) × {spec.Seeds.Count} seed(s); {spec.Fairness}");
        var outcome = SweepRunner.RunLocal(spec, dir, t => Local(command, t), Cli.Log, Cli.Stopping);
        Report(spec, dir);
        if (Cli.Stopping.IsCancellationRequested) return ExitCodes.Interrupted;
        var failed = outcome.Failed;
        var busy = outcome.Busy.Count == 0 ? "" :
            $"{outcome.Busy.Count} task(s) still training in another process, first {outcome.Busy[0].Arm.Name} " +
            $"seed {outcome.Busy[0].Seed}, were left to it: run the sweep again once it has ended";
        if (failed.Count > 0)
            throw new IOException($"{failed.Count} task(s) failed, first {failed[0].Task.Arm.Name} " +
                                  $"seed {failed[0].Task.Seed} (exit {failed[0].ExitCode}): " +
                                  $"see {SweepRunner.LogOf(dir, failed[0].Task)}; run the sweep again to retry them" +
                                  (busy == "" ? "" : "; " + busy));
        // As a run folder in use is: the work is not done, but nothing failed.
        if (busy != "") throw new Sqair.Runs.RunFolderInUseException(busy);
        return ExitCodes.Success;
    }

    /// <summary>
    /// The sweep described by the options, checked and saved; or, with no arms and no budget given,
    /// the one saved in the folder (checked as strictly). A folder that holds another sweep is refused;
    /// --collect never saves one. The spec is written under the sweep's lock, so that two sweeps started
    /// at once in a new folder cannot both take it; with <paramref name="keepLock"/> the lock is returned held.
    /// </summary>
    static (SweepSpec Spec, RunLock? Lock) SpecFrom(ParseResult r, string dir, bool collect, bool keepLock)
    {
        bool described = (r.GetValue(Arms)?.Length ?? 0) + (r.GetValue(Grids)?.Length ?? 0) > 0 ||
                         r.GetValue(Iterations) is not null || r.GetValue(Minutes) is not null;
        var given = described ? Described(r) : null;
        given?.Validate();
        var saved = SweepSpec.Read(dir);
        if (saved is null && collect)
            throw new UserError($"{dir} holds no sweep ({SweepSpec.FileName}): nothing to collect");
        if (saved is null && given is null)
            throw new UserError($"{dir} holds no sweep ({SweepSpec.FileName}); give arms " +
                                "(--arm, --grid) and a budget (--iterations or --minutes)");
        RefuseAnother(r, dir, saved, given);
        if (saved is not null && !keepLock) return (saved, null);
        var held = RunLock.Acquire(dir, Cli.Log, SweepSpec.LockFile, holder: "sweep");
        try
        {
            // Again under the lock: another process may have saved its sweep since.
            saved = SweepSpec.Read(dir);
            RefuseAnother(r, dir, saved, given);
            if (saved is null)
            {
                if (Directory.EnumerateFileSystemEntries(dir).Any(e => Path.GetFileName(e) != SweepSpec.LockFile))
                    throw new UserError($"{dir} is not empty and holds no sweep; choose a new folder");
                AtomicFile.WriteAllText(Path.Combine(dir, SweepSpec.FileName), given!.ToJson());
                saved = given;
            }
            if (keepLock) return (saved, held);
            held.Dispose();
            return (saved, null);
        }
        catch
        {
            held.Dispose();
            throw;
        }
    }

    static void RefuseAnother(ParseResult r, string dir, SweepSpec? saved, SweepSpec? given)
    {
        if (saved is not null && given is not null && !saved.SameAs(given))
            throw new UserError($"{dir} holds another sweep ({SweepSpec.FileName}); " +
                                $"run 'sqair sweep {r.GetValue(Dir)}' alone to resume it, " +
                                "or choose another folder");
    }

    static SweepSpec Described(ParseResult r)
    {
        var arms = new List<SweepSpec.ArmJson>();
        if (!r.GetValue(NoBase)) arms.Add(new SweepSpec.ArmJson("base", []));
        arms.AddRange((r.GetValue(Arms) ?? []).Select(SweepSpec.ParseArm));
        arms.AddRange((r.GetValue(Grids) ?? []).SelectMany(SweepSpec.ParseGrid));
        var baseKeys = new Dictionary<string, System.Text.Json.Nodes.JsonNode?>();
        foreach (var set in r.GetValue(Sets) ?? [])
            foreach (var (k, v) in SweepSpec.SplitAssignments(set, $"--set {set}")) baseKeys[k] = v;
        if (r.GetValue(Init) is { } init) baseKeys["init"] = init;
        // Files by full path: each task's process, a Slurm node or a later resume may start elsewhere.
        foreach (var key in SweepSpec.FileKeys.Where(k => baseKeys.ContainsKey(k)))
            if (baseKeys[key] is { } v && v.GetValueKind() == System.Text.Json.JsonValueKind.String)
                baseKeys[key] = Path.GetFullPath(v.GetValue<string>());
        long? iterations = r.GetValue(Iterations);
        int threads = r.GetValue(TaskThreads);
        return new SweepSpec
        {
            Preset = r.GetValue(ConfigOptions.Preset)!,
            Base = baseKeys,
            Arms = arms,
            Seeds = r.GetValue(Seeds) is { Length: > 0 } seeds ? [.. seeds] : [1, 2],
            Iterations = iterations,
            Minutes = r.GetValue(Minutes),
            EvalEvery = r.GetValue(EvalEvery) ?? (iterations is { } n
                ? Math.Max(1, (n + DefaultMeasurements - 1) / DefaultMeasurements)
                : DefaultEvalEveryForMinutes),
            EvalCount = r.GetValue(EvalCount),
            Threads = threads,
            Parallel = r.GetValue(Parallel) ?? Math.Max(1, Environment.ProcessorCount / threads),
        };
    }

    /// <summary>
    /// One task in this process: its training started, resumed (an iterations budget) or started
    /// again (a minutes budget: resuming would give it more time than the others), then marked done.
    /// </summary>
    static int RunTask(ParseResult r, SweepSpec spec, string dir, int index)
    {
        if (index >= spec.Tasks.Count)
            throw new UserError($"--task {index}: the sweep has tasks 0..{spec.Tasks.Count - 1}");
        var task = spec.Tasks[index];
        var runDir = task.RunDir(dir);
        SweepRunner.StopWhenSweepEnds(Cli.RequestStop);
        var state = SweepRunner.StateOf(runDir);
        if (state == TaskState.Done)
        {
            Cli.Log($"task {index} ({task.Arm.Name} seed {task.Seed}) has finished already");
            return ExitCodes.Success;
        }
        bool resume = state == TaskState.Started && spec.Iterations is not null;
        var config = resume
            ? CheckpointStore.NewestResumable(runDir)?.Config
              ?? throw new UserError($"{runDir}: the task's run has no checkpoint to resume from")
            : spec.ConfigOf(task);
        var device = CommonOptions.DeviceFrom(r, spec.Threads);
        int code = TrainCommand.Train(config, resume ? StartMode.Resume : StartMode.Replace, runDir, device,
                                      Cli.DataCache(r, spec.Threads), shards: 1);
        if (code == ExitCodes.Success) SweepRunner.MarkDone(runDir);
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

    static ProcessStartInfo Local(List<string> command, SweepTask task)
    {
        var info = new ProcessStartInfo(command[0]);
        foreach (var word in command.Skip(1).Concat(["--task", task.Index.ToString(CultureInfo.InvariantCulture)]))
            info.ArgumentList.Add(word);
        return info;
    }

    static void Report(SweepSpec spec, string dir)
    {
        Console.WriteLine(SweepReport.Write(spec, dir));
        Cli.Log($"wrote {Path.Combine(dir, SweepReport.MarkdownFile)}, {SweepReport.CsvFile} " +
                $"and {SweepReport.PlotsDir}/");
    }
}
