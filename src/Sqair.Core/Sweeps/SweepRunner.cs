using System.Diagnostics;
using System.Runtime.InteropServices;
using Sqair.Files;
using Sqair.Runs;
using Sqair.Training;

namespace Sqair.Sweeps;

/// <summary>Where a task stands: not started, started (it has a checkpoint to resume), or finished.</summary>
internal enum TaskState
{
    /// <summary>No checkpoint yet.</summary>
    Fresh,
    /// <summary>It has a checkpoint and no <see cref="SweepRunner.DoneMarker"/>.</summary>
    Started,
    /// <summary>Its training ended normally.</summary>
    Done,
}

/// <summary>
/// Runs a sweep's unfinished tasks on this machine, <see cref="SweepSpec.Parallel"/> at a time, each
/// in its own process (so a task owns its libtorch threads and random streams, and a crash ends one
/// task, not the sweep). A task is finished when its process wrote <see cref="DoneMarker"/>; a killed
/// sweep run again skips those and resumes the others from their checkpoints.
/// </summary>
internal static class SweepRunner
{
    /// <summary>Written into a task's run folder when its training ended normally.</summary>
    public const string DoneMarker = "sweep-done";

    /// <summary>How often the runner reports the running tasks' iterations.</summary>
    static readonly TimeSpan StatusEvery = TimeSpan.FromSeconds(60);

    /// <summary>Where the task in <paramref name="runDir"/> stands.</summary>
    public static TaskState StateOf(string runDir) =>
        File.Exists(Path.Combine(runDir, DoneMarker)) ? TaskState.Done :
        Checkpoint.InRun(runDir).Any() ? TaskState.Started : TaskState.Fresh;

    /// <summary>The tasks of a sweep whose training has not ended normally, in task order.</summary>
    public static IEnumerable<SweepTask> Unfinished(SweepSpec spec, string sweepDir) =>
        spec.Tasks.Where(t => StateOf(t.RunDir(sweepDir)) != TaskState.Done);

    /// <summary>Marks a task finished (its process calls this after training returned normally).</summary>
    public static void MarkDone(string runDir) =>
        AtomicFile.WriteAllText(Path.Combine(runDir, DoneMarker), DateTime.UtcNow.ToString("o") + "\n");

    /// <summary>Takes back a task's finished mark (its budget was raised).</summary>
    public static void MarkUnfinished(string runDir)
    {
        var marker = Path.Combine(runDir, DoneMarker);
        if (File.Exists(marker)) File.Delete(marker);
    }

    /// <summary>The log of a task's process, beside its run folder.</summary>
    public static string LogOf(string sweepDir, SweepTask task) => task.RunDir(sweepDir) + ".log";

    /// <summary>
    /// Set in a task's environment by <see cref="RunLocal"/>: the task's stdin is a pipe that only the
    /// sweep holds open, so the task can tell when its sweep has ended (<see cref="StopWhenSweepEnds"/>).
    /// </summary>
    public const string SweepPipeVariable = "SQAIR_SWEEP_STDIN_PIPE";

    /// <summary>What <see cref="RunLocal"/> left undone: tasks that failed, and tasks another process trains.</summary>
    public sealed record Outcome(IReadOnlyList<(SweepTask Task, int ExitCode)> Failed, IReadOnlyList<SweepTask> Busy);

    /// <summary>
    /// Runs every unfinished task through <paramref name="process"/> (the command that runs one task)
    /// and returns the tasks that failed, with their exit codes, and those it left to another process
    /// still training them (its run lock is held: a task of an earlier sweep process, or one run by hand).
    /// On <paramref name="stop"/> the running tasks are asked to stop (SIGTERM: each saves a checkpoint)
    /// and no new one starts.
    /// </summary>
    public static Outcome RunLocal(SweepSpec spec, string sweepDir, Func<SweepTask, ProcessStartInfo> process,
                                   Action<string> log, CancellationToken stop)
    {
        var waiting = new Queue<SweepTask>(Unfinished(spec, sweepDir));
        int done = spec.Tasks.Count - waiting.Count;
        if (done > 0) log($"{done} of {spec.Tasks.Count} tasks already finished; {waiting.Count} to run");
        var running = new List<(SweepTask Task, Process Process, StreamWriter Log)>();
        var failed = new List<(SweepTask, int)>();
        var busy = new List<SweepTask>();
        var lastStatus = Stopwatch.StartNew();
        string? lastLine = null;
        bool stopping = false;
        while ((!stopping && waiting.Count > 0) || running.Count > 0)
        {
            while (!stopping && running.Count < spec.Parallel && waiting.TryDequeue(out var task))
            {
                if (StartUnlessBusy(task, sweepDir, process, log) is { } started) running.Add(started);
                else busy.Add(task);
            }
            if (stop.IsCancellationRequested && !stopping)
            {
                stopping = true;
                foreach (var (_, p, _) in running) AskToStop(p);
                log($"stopping: {running.Count} running task(s) save their checkpoints; run the sweep again to resume");
            }
            Thread.Sleep(200);
            done = Reap(running, sweepDir, done, spec.Tasks.Count, stopping ? null : failed, log);
            if (running.Count > 0 && lastStatus.Elapsed >= StatusEvery)
            {
                lastStatus.Restart();
                var status = "running: " + string.Join("; ", running.Select(r =>
                    $"{r.Task.Arm.Name} seed {r.Task.Seed} at iteration {LastIteration(r.Task.RunDir(sweepDir))}"));
                if (status != lastLine) log(status);
                lastLine = status;
            }
        }
        return new Outcome(failed, busy);
    }

    /// <summary>
    /// Starts <paramref name="task"/>, or (null) leaves it to the other process that holds its run lock.
    /// </summary>
    static (SweepTask Task, Process Process, StreamWriter Log)? StartUnlessBusy(
        SweepTask task, string sweepDir, Func<SweepTask, ProcessStartInfo> process, Action<string> log)
    {
        var state = StateOf(task.RunDir(sweepDir));
        if (RunLock.IsHeld(task.RunDir(sweepDir)))
        {
            log($"{task.Arm.Name} seed {task.Seed} is still training in another process " +
                $"(it holds {Path.Combine(task.RunDir(sweepDir), RunLock.FileName)}): not started again");
            return null;
        }
        var started = Start(task, process(task), LogOf(sweepDir, task));
        log($"started {task.Arm.Name} seed {task.Seed}" +
            $"{(state == TaskState.Started ? " (resumed from its checkpoint)" : "")}: " +
            $"log {LogOf(sweepDir, task)}");
        return started;
    }

    /// <summary>
    /// Takes the tasks that have exited out of <paramref name="running"/>, adding to <paramref name="failed"/>
    /// (null while stopping) those that did not finish; returns how many of the <paramref name="total"/> tasks
    /// are done (<paramref name="done"/> before).
    /// </summary>
    static int Reap(List<(SweepTask Task, Process Process, StreamWriter Log)> running, string sweepDir, int done,
                    int total, List<(SweepTask, int)>? failed, Action<string> log)
    {
        foreach (var r in running.Where(r => r.Process.HasExited).ToList())
        {
            r.Process.WaitForExit();
            r.Log.Dispose();
            running.Remove(r);
            int code = r.Process.ExitCode;
            r.Process.Dispose();   // closes the task's stdin pipe too
            bool finished = StateOf(r.Task.RunDir(sweepDir)) == TaskState.Done;
            if (finished) done++;
            else failed?.Add((r.Task, code));
            log(finished ? $"finished {r.Task.Arm.Name} seed {r.Task.Seed} ({done} of {total})"
                         : $"{r.Task.Arm.Name} seed {r.Task.Seed} stopped with exit code {code}: " +
                           $"see {LogOf(sweepDir, r.Task)}");
        }
        return done;
    }

    static (SweepTask, Process, StreamWriter) Start(SweepTask task, ProcessStartInfo info, string logPath)
    {
        info.RedirectStandardOutput = info.RedirectStandardError = true;
        // Only this process holds the pipe's other end, so the kernel closes it however this process
        // ends, SIGKILL included, and the task then stops instead of training on as an orphan.
        info.RedirectStandardInput = true;
        info.Environment[SweepPipeVariable] = "1";
        info.UseShellExecute = false;
        Directory.CreateDirectory(Path.GetDirectoryName(logPath)!);
        var writer = new StreamWriter(logPath, append: true) { AutoFlush = true };
        var process = new Process { StartInfo = info };
        void Write(object? _, DataReceivedEventArgs e)
        {
            if (e.Data is null) return;
            lock (writer) writer.WriteLine(e.Data);
        }
        process.OutputDataReceived += Write;
        process.ErrorDataReceived += Write;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (task, process, writer);
    }

    /// <summary>
    /// In a task that <see cref="RunLocal"/> started, calls <paramref name="stop"/> once the sweep has ended:
    /// its end of the stdin pipe is then closed, and reading stdin gives end-of-file (at once when the sweep
    /// ended before this task began to read). Elsewhere (a Slurm task, a task run by hand) it does nothing.
    /// This rather than Linux's PR_SET_PDEATHSIG: that fires when the thread that started the task ends (a
    /// .NET pool thread may), is Linux only, and misses a sweep that died before the task set it; and rather
    /// than a process group, which nobody signals when the sweep alone is SIGKILLed.
    /// </summary>
    public static void StopWhenSweepEnds(Action stop)
    {
        if (Environment.GetEnvironmentVariable(SweepPipeVariable) != "1") return;
        var watcher = new Thread(WaitForEnd) { IsBackground = true, Name = "sweep watcher" };
        watcher.Start();

        void WaitForEnd()
        {
            using var stdin = Console.OpenStandardInput();
            var buffer = new byte[1];
            try { while (stdin.Read(buffer) > 0) { } }
            catch (IOException) { }   // a broken pipe says the same as end-of-file
            stop();
        }
    }

    /// <summary>The iteration of a run's newest metrics.jsonl record (0 before the first).</summary>
    static long LastIteration(string runDir)
    {
        var path = Path.Combine(runDir, RunFolder.MetricsFile);
        if (!File.Exists(path)) return 0;
        try { return File.ReadLines(path).Select(RunLog.IterationOf).LastOrDefault(i => i is not null) ?? 0; }
        catch (IOException) { return 0; }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int SendSignal(int pid, int signal);

    const int SigTerm = 15;

    /// <summary>
    /// SIGTERM where there are signals (the trainer then saves a checkpoint); elsewhere the process is ended.
    /// </summary>
    static void AskToStop(Process p)
    {
        if (p.HasExited) return;
        if (OperatingSystem.IsWindows()) p.Kill(entireProcessTree: true);
        else _ = SendSignal(p.Id, SigTerm);   // fails only when the process has just ended: nothing left to stop
    }
}
