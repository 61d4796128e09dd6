using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sqair.Files;
using Sqair.Model;
using Sqair.Runs;
using Sqair.Training;

namespace Sqair.Sweeps;

/// <summary>
/// What is asked of a sweep, in the words <c>sqair sweep</c> takes: arms as <c>name:key=value,…</c>,
/// grids as <c>key=v1,v2,…</c>, base keys as <c>key=value</c>, a budget, and how to share the machine.
/// </summary>
public sealed record SweepRequest
{
    /// <summary>Arms, each <c>name:key=value,key=value</c> (or <c>key=value,…</c>, named by its changes).</summary>
    public IReadOnlyList<string> Arms { get; init; } = [];
    /// <summary>Grids, each <c>key=v1,v2,…</c>: one arm per value.</summary>
    public IReadOnlyList<string> Grids { get; init; } = [];
    /// <summary>Keys applied to every arm, each <c>key=value</c>.</summary>
    public IReadOnlyList<string> Sets { get; init; } = [];
    /// <summary>Whether the base config is an arm of its own (the first).</summary>
    public bool WithBase { get; init; } = true;
    /// <summary>Seeds of every arm; empty for the default (1 and 2).</summary>
    public IReadOnlyList<ulong> Seeds { get; init; } = [];
    /// <summary>Budget: iterations per arm and seed.</summary>
    public long? Iterations { get; init; }
    /// <summary>Budget: wall-clock minutes per arm and seed.</summary>
    public double? Minutes { get; init; }
    /// <summary>A checkpoint whose parameters every arm continues (config key init).</summary>
    public string? Init { get; init; }
    /// <summary>The preset the base starts from; null for the default (cpu).</summary>
    public string? Preset { get; init; }
    /// <summary>Iterations between measurements; null for a quarter of the iterations (500 with minutes).</summary>
    public long? EvalEvery { get; init; }
    /// <summary>Validation sequences per measurement; null for <see cref="DefaultEvalCount"/>.</summary>
    public int? EvalCount { get; init; }
    /// <summary>libtorch threads per task; null for <see cref="DefaultThreads"/>.</summary>
    public int? Threads { get; init; }
    /// <summary>Tasks at once; null for cores / threads.</summary>
    public int? Parallel { get; init; }

    /// <summary>Validation sequences per measurement when none is given.</summary>
    public const int DefaultEvalCount = 500;
    /// <summary>libtorch threads per task when none is given: tasks share the machine, one core each.</summary>
    public const int DefaultThreads = 1;

    /// <summary>Whether this describes a sweep (arms and a budget) rather than naming the folder's own.</summary>
    public bool Describes => Arms.Count + Grids.Count > 0 || Iterations is not null || Minutes is not null;

    /// <summary>
    /// The options given that only a new sweep takes, as the command line names them: a saved sweep resumes with
    /// its own (sweep.json), so these would be ignored when the request names the folder's sweep.
    /// </summary>
    public IReadOnlyList<string> NewSweepOptions =>
        new (bool Given, string Option)[]
        {
            (Sets.Count > 0, "--set"), (!WithBase, "--no-base"), (Seeds.Count > 0, "--seeds"),
            (Init is not null, "--init"), (Preset is not null, "--preset"), (EvalEvery is not null, "--eval-every"),
            (EvalCount is not null, "--eval-count"), (Threads is not null, "--threads"),
        }.Where(o => o.Given).Select(o => o.Option).ToList();

    /// <summary>
    /// Whether this gives only an iterations budget: for a folder that holds a sweep, a raised budget (its runs
    /// continue from their checkpoints to the new one).
    /// </summary>
    public bool OnlyIterations =>
        Arms.Count + Grids.Count == 0 && Iterations is not null && Minutes is null && NewSweepOptions.Count == 0 &&
        Parallel is null;
}

/// <summary>What is done with a sweep folder once opened.</summary>
public enum SweepAccess
{
    /// <summary>Run or submit its tasks: the sweep's lock is held until the sweep is disposed.</summary>
    Run,
    /// <summary>Run one task, under the lock of the sweep that started it.</summary>
    Task,
    /// <summary>Only read it and report: the folder must hold a sweep, and nothing is written but the report.</summary>
    Collect,
}

/// <summary>
/// A training run one task of a sweep needs: its config, whether it starts or resumes, and its folder.
/// Train it (e.g. <see cref="Jobs.TrainingRun.Open"/>), then call <see cref="Sweep.MarkDone"/> if it ended normally.
/// </summary>
public sealed record SweepTaskRun(int Index, string Name, SqairConfig Config, StartMode Mode, string RunDir);

/// <summary>
/// A sweep folder (docs/tuning.md): arms of a base config, each trained with every seed on the same
/// budget, measured on validation, tabulated and plotted. Opened once per process; the run of many
/// tasks (<see cref="RunLocal"/>), one task (<see cref="TaskRun"/>), a Slurm submission and the report
/// all start here.
/// </summary>
public sealed class Sweep : IDisposable
{
    /// <summary>A fraction of the budget between measurements when none is given.</summary>
    const int DefaultMeasurements = 4;
    /// <summary>Iterations between measurements of a minutes budget when none is given.</summary>
    const long DefaultEvalEveryForMinutes = 500;

    readonly RunLock? held;

    Sweep(string dir, SweepSpec spec, RunLock? held)
    {
        Dir = dir;
        Spec = spec;
        this.held = held;
    }

    /// <summary>The sweep folder, as a full path.</summary>
    public string Dir { get; }
    internal SweepSpec Spec { get; }

    /// <summary>Its tasks (arm × seed).</summary>
    public int TaskCount => Spec.Tasks.Count;
    /// <summary>libtorch threads of each task.</summary>
    public int Threads => Spec.Threads;
    /// <summary>"2 arm(s) × 3 seed(s); 3,000 iterations per arm and seed; …": what runs and how fairly.</summary>
    public string Summary => $"{Spec.Arms.Count} arm(s) × {Spec.Seeds.Count} seed(s); {Spec.Fairness}";

    /// <summary>
    /// Opens the sweep in <paramref name="dir"/>: the one <paramref name="request"/> describes, checked and
    /// saved in a new folder, or the folder's own when the request describes none (checked as strictly).
    /// A folder that holds another sweep is refused. The spec is written under the sweep's lock, so two
    /// sweeps started at once in a new folder cannot both take it; with <see cref="SweepAccess.Run"/> the
    /// lock stays held until disposal, since a second process running the folder would start the same tasks.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// A bad request, or a folder holding another sweep or something else.
    /// </exception>
    public static Sweep Open(string dir, SweepRequest request, SweepAccess access, Action<string> log)
    {
        dir = Path.GetFullPath(dir);
        var given = request.Describes ? SpecOf(request) : null;
        given?.Validate();
        var saved = SweepSpec.Read(dir);
        if (saved is null && access == SweepAccess.Collect)
            throw new ArgumentException($"{dir} holds no sweep ({SweepSpec.FileName}): nothing to collect");
        if (saved is null && given is null)
            throw new ArgumentException($"{dir} holds no sweep ({SweepSpec.FileName}); give arms " +
                                        "(--arm, --grid) and a budget (--iterations or --minutes)");
        if (given is null && request.NewSweepOptions is { Count: > 0 } ignored)
            throw new ArgumentException($"{string.Join(", ", ignored)}: {dir}'s sweep resumes with its own " +
                                        $"settings ({SweepSpec.FileName}); give only --parallel (tasks at once) " +
                                        "or --iterations (a raised budget), or choose a new folder");
        if (saved is not null && given is not null && request.OnlyIterations && !saved.SameAs(given))
        {
            if (access != SweepAccess.Run)
                throw new ArgumentException($"--iterations {request.Iterations}: raise {dir}'s budget with " +
                                            $"'sqair sweep {dir} --iterations N' alone");
            return Raised(dir, request.Iterations!.Value, log);
        }
        RefuseAnother(dir, saved, given);
        bool keepLock = access == SweepAccess.Run;
        if (saved is not null && !keepLock) return new Sweep(dir, saved, null);
        var lk = RunLock.Acquire(dir, log, SweepSpec.LockFile, holder: "sweep");
        try
        {
            var spec = SavedUnderLock(dir, given);
            if (given is null && request.Parallel is { } parallel) spec = WithParallel(dir, spec, parallel, log);
            if (keepLock) return new Sweep(dir, spec, lk);
            lk.Dispose();
            return new Sweep(dir, spec, null);
        }
        catch
        {
            lk.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The folder's iterations-budget sweep with its budget raised to <paramref name="iterations"/> (written under
    /// its lock): finished tasks become unfinished, and each resumes from its checkpoint to the new budget, as if it
    /// had never stopped (the schedules depend on max_train_iter only through lr_schedule_itr, which a sweep that
    /// is to be extended should set). A lower budget is refused: runs past it cannot be undone.
    /// </summary>
    static Sweep Raised(string dir, long iterations, Action<string> log)
    {
        var lk = RunLock.Acquire(dir, log, SweepSpec.LockFile, holder: "sweep");
        try
        {
            var saved = SweepSpec.Read(dir)!;
            if (saved.Iterations is not { } before)
                throw new ArgumentException($"{dir}: a minutes budget cannot be raised to --iterations {iterations}");
            if (iterations < before)
                throw new ArgumentException($"--iterations {iterations}: {dir} already trained its runs for " +
                                            $"{before}; a budget can be raised, not lowered");
            if (saved.Tasks.FirstOrDefault(t => RunLock.IsHeld(t.RunDir(dir))) is { } busy)
                throw new ArgumentException($"{busy.RunDir(dir)} is still training (a Slurm task or another " +
                                            "process): raise the budget once it has stopped");
            var spec = iterations > before ? WithRaisedBudget(saved, before, iterations) : saved;
            if (iterations > before)
            {
                AtomicFile.WriteAllText(Path.Combine(dir, SweepSpec.FileName), spec.ToJson());
                foreach (var task in spec.Tasks) SweepRunner.MarkUnfinished(task.RunDir(dir));
                log($"budget raised from {before:N0} to {iterations:N0} iterations: every run continues from its " +
                    "checkpoint");
            }
            return new Sweep(dir, spec, lk);
        }
        catch
        {
            lk.Dispose();
            throw;
        }
    }

    /// <summary>
    /// <paramref name="saved"/> with <paramref name="iterations"/>: where its runs fixed their learning-rate stages
    /// over the old budget (lr_schedule_itr 0), the old budget is written in, so tasks that start only now train on
    /// the same stages as those that resume.
    /// </summary>
    static SweepSpec WithRaisedBudget(SweepSpec saved, long before, long iterations)
    {
        var baseKeys = new Dictionary<string, JsonNode?>(saved.Base);
        if (saved.ConfigOf(saved.Tasks[0]).LrScheduleItr == 0) baseKeys["lr_schedule_itr"] = before;
        return saved with { Iterations = iterations, Base = baseKeys };
    }

    /// <summary>
    /// The folder's sweep run <paramref name="parallel"/> tasks at a time from now on (saved, so a later resume
    /// keeps it). An iterations budget allows it: each task trains the same iterations at any share of the
    /// machine. A minutes budget does not: its tasks were measured at the saved share.
    /// </summary>
    static SweepSpec WithParallel(string dir, SweepSpec saved, int parallel, Action<string> log)
    {
        if (parallel == saved.Parallel) return saved;
        var spec = saved with { Parallel = parallel };
        spec.Validate();
        if (saved.Minutes is not null)
            throw new ArgumentException($"--parallel {parallel}: {dir} has a minutes budget measured with " +
                                        $"{saved.Parallel} task(s) at a time; another count would change each " +
                                        "task's share of the machine");
        AtomicFile.WriteAllText(Path.Combine(dir, SweepSpec.FileName), spec.ToJson());
        log($"{dir}: {parallel} task(s) at a time from now on (was {saved.Parallel})");
        return spec;
    }

    /// <summary>The folder's sweep, read again under its lock (another process may have saved one since), or
    /// <paramref name="given"/> saved into the empty folder.</summary>
    static SweepSpec SavedUnderLock(string dir, SweepSpec? given)
    {
        var saved = SweepSpec.Read(dir);
        RefuseAnother(dir, saved, given);
        if (saved is not null) return saved;
        if (Directory.EnumerateFileSystemEntries(dir).Any(e => Path.GetFileName(e) != SweepSpec.LockFile))
            throw new ArgumentException($"{dir} is not empty and holds no sweep; choose a new folder");
        AtomicFile.WriteAllText(Path.Combine(dir, SweepSpec.FileName), given!.ToJson());
        return given;
    }

    static void RefuseAnother(string dir, SweepSpec? saved, SweepSpec? given)
    {
        if (saved is not null && given is not null && !saved.SameAs(given))
            throw new ArgumentException($"{dir} holds another sweep ({SweepSpec.FileName}); " +
                                        $"run 'sqair sweep {dir}' alone to resume it, or choose another folder");
    }

    /// <summary>The spec a request describes; files named by full path, since each task's process, a
    /// Slurm node or a later resume may start elsewhere.</summary>
    static SweepSpec SpecOf(SweepRequest request)
    {
        var arms = new List<SweepSpec.ArmJson>();
        if (request.WithBase) arms.Add(new SweepSpec.ArmJson("base", []));
        arms.AddRange(request.Arms.Select(SweepSpec.ParseArm));
        arms.AddRange(request.Grids.SelectMany(SweepSpec.ParseGrid));
        var baseKeys = new Dictionary<string, JsonNode?>();
        foreach (var set in request.Sets)
            foreach (var (k, v) in SweepSpec.SplitAssignments(set, $"--set {set}")) baseKeys[k] = v;
        if (request.Init is { } init) baseKeys["init"] = init;
        int threads = request.Threads ?? SweepRequest.DefaultThreads;
        foreach (var key in SweepSpec.FileKeys.Where(baseKeys.ContainsKey))
            if (baseKeys[key] is { } v && v.GetValueKind() == JsonValueKind.String)
                // "" is an absent file, as in a config
                baseKeys[key] = v.GetValue<string>() is { Length: > 0 } path ? Path.GetFullPath(path) : null;
        return new SweepSpec
        {
            Preset = request.Preset ?? Presets.Default,
            Base = baseKeys,
            Arms = arms,
            Seeds = request.Seeds.Count > 0 ? [.. request.Seeds] : [1, 2],
            Iterations = request.Iterations,
            Minutes = request.Minutes,
            EvalEvery = request.EvalEvery ?? (request.Iterations is { } n
                ? Math.Max(1, (n + DefaultMeasurements - 1) / DefaultMeasurements)
                : DefaultEvalEveryForMinutes),
            EvalCount = request.EvalCount ?? SweepRequest.DefaultEvalCount,
            Threads = threads,
            // Threads is checked by Validate; a bad one must reach it, not divide by zero here.
            Parallel = request.Parallel ?? Math.Max(1, Environment.ProcessorCount / Math.Max(1, threads)),
        };
    }

    /// <summary>
    /// The training task <paramref name="index"/> needs, or null if it has finished: started, resumed (an
    /// iterations budget) or started again (a minutes budget: resuming would give it more time than the others).
    /// </summary>
    /// <exception cref="ArgumentException">No such task, or a started task without a checkpoint.</exception>
    public SweepTaskRun? TaskRun(int index)
    {
        if (index < 0 || index >= Spec.Tasks.Count)
            throw new ArgumentException($"--task {index}: the sweep has tasks 0..{Spec.Tasks.Count - 1}");
        var task = Spec.Tasks[index];
        var runDir = task.RunDir(Dir);
        var state = SweepRunner.StateOf(runDir);
        if (state == TaskState.Done) return null;
        bool resume = state == TaskState.Started && Spec.Iterations is not null;
        var config = resume ? Resumed(runDir) : Spec.ConfigOf(task);
        return new SweepTaskRun(index, $"{task.Arm.Name} seed {task.Seed}", config,
                                resume ? StartMode.Resume : StartMode.Replace, runDir);
    }

    /// <summary>
    /// The config of the run in <paramref name="runDir"/> as its newest checkpoint holds it, trained on to the
    /// sweep's iterations (more than it had when the budget was raised).
    /// </summary>
    SqairConfig Resumed(string runDir)
    {
        var saved = Jobs.TrainingRun.ResumableConfig(runDir)
                    ?? throw new ArgumentException($"{runDir}: the task's run has no checkpoint to resume from");
        return saved with { MaxTrainIter = Spec.Iterations!.Value };
    }

    /// <summary>Task <paramref name="index"/> as people name it: "arm seed N".</summary>
    public string TaskName(int index) =>
        index >= 0 && index < Spec.Tasks.Count ? $"{Spec.Tasks[index].Arm.Name} seed {Spec.Tasks[index].Seed}"
                                               : $"task {index}";

    /// <summary>Marks a task finished: call it after its training ended normally.</summary>
    public static void MarkDone(SweepTaskRun run) => SweepRunner.MarkDone(run.RunDir);

    /// <summary>
    /// Calls <paramref name="stop"/> when the sweep that started this task's process ends
    /// (its stdin pipe closes), so an orphaned task saves and stops.
    /// </summary>
    public static void StopWhenSweepEnds(Action stop) => SweepRunner.StopWhenSweepEnds(stop);

    /// <summary>
    /// Runs every unfinished task on this machine, each in the process <paramref name="process"/> starts for a
    /// task index, until all have ended or <paramref name="stop"/> is cancelled.
    /// </summary>
    /// <exception cref="IOException">A task failed (named with its log).</exception>
    /// <exception cref="RunFolderInUseException">Tasks were left to another process still training them.</exception>
    public void RunLocal(Func<int, ProcessStartInfo> process, Action<string> log, CancellationToken stop)
    {
        var outcome = SweepRunner.RunLocal(Spec, Dir, t => process(t.Index), log, stop);
        if (stop.IsCancellationRequested) return;
        var failed = outcome.Failed;
        var busy = outcome.Busy.Count == 0 ? "" :
            $"{outcome.Busy.Count} task(s) still training in another process, first {outcome.Busy[0].Arm.Name} " +
            $"seed {outcome.Busy[0].Seed}, were left to it: run the sweep again once it has ended";
        if (failed.Count > 0)
            throw new IOException($"{failed.Count} task(s) failed, first {failed[0].Task.Arm.Name} " +
                                  $"seed {failed[0].Task.Seed} (exit {failed[0].ExitCode}): " +
                                  $"see {SweepRunner.LogOf(Dir, failed[0].Task)}; run the sweep again to retry them" +
                                  (busy == "" ? "" : "; " + busy));
        // As a run folder in use is: the work is not done, but nothing failed.
        if (busy != "") throw new RunFolderInUseException(busy);
    }

    /// <summary>
    /// Submits the unfinished tasks as one Slurm job array, each running <paramref name="taskCommand"/> and its
    /// index; returns sbatch's answer.
    /// </summary>
    public string SubmitToSlurm(IReadOnlyList<string> taskCommand, IReadOnlyList<string> sbatchArgs) =>
        SweepSlurm.Submit(Spec, Dir, taskCommand, sbatchArgs);

    /// <summary>The job script <see cref="SubmitToSlurm"/> writes into the folder.</summary>
    public string SlurmScript => Path.Combine(Dir, SweepSlurm.ScriptName);

    /// <summary>
    /// Words as a shell splits them (quotes group, no expansion): how sbatch options are given.
    /// </summary>
    /// <exception cref="ArgumentException">An unclosed quote, named with <paramref name="option"/>.</exception>
    public static IReadOnlyList<string> SplitWords(string text, string option) => SweepSlurm.SplitWords(text, option);

    /// <summary>
    /// Writes the table (markdown and CSV) and the plots from the run folders; returns the markdown.
    /// </summary>
    public string Report() => SweepReport.Write(Spec, Dir);

    /// <summary>What <see cref="Report"/> wrote, for a message.</summary>
    public string ReportFiles =>
        $"{Path.Combine(Dir, SweepReport.MarkdownFile)}, {SweepReport.CsvFile} and {SweepReport.PlotsDir}/";

    /// <summary>Releases the sweep's lock, if this process holds it.</summary>
    public void Dispose() => held?.Dispose();
}
