using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Sqair.Data;
using Sqair.Files;
using Sqair.Model;
using Sqair.Native;
using Sqair.Objective;
using Sqair.Runs;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Sqair.Training;

/// <summary>What the progress line shows after each iteration.</summary>
public sealed record TrainProgress(long Iteration, long MaxIterations, int SeqLen,
                                   double Loss, double Iwae, double CountAccuracy,
                                   double IterationsPerSecond, TimeSpan Eta, double LearningRate)
{
    /// <summary>
    /// The progress line, each measure in its registry format and the current culture (as a console shows
    /// numbers); time left to whichever of max_train_iter and the time limit comes first, as h:mm:ss.
    /// </summary>
    public string Line =>
        $"it {Iteration}/{MaxIterations} len {SeqLen} loss {In(Metrics.Loss, Loss)} " +
        $"iwae {In(Metrics.Iwae, Iwae)} acc {In(Metrics.CountAccVisible, CountAccuracy)} " +
        $"{In(Metrics.IterationsPerSecond, IterationsPerSecond)} it/s " +
        $"left {(int)Eta.TotalHours}:{Eta:mm\\:ss}";

    static string In(Metric measure, double value) =>
        value.ToString(measure.Format, System.Globalization.CultureInfo.CurrentCulture);
}

/// <summary>How a training run ended.</summary>
public enum TrainOutcome
{
    /// <summary>It reached max_train_iter.</summary>
    Completed,
    /// <summary>It was asked to stop (SIGINT, SIGTERM, a cancelled token) and saved a checkpoint.</summary>
    Interrupted,
    /// <summary>It reached time_limit_min and saved, measured and drew its model.</summary>
    TimeLimit,
    /// <summary>Its steps kept failing; the last good checkpoint was restored.</summary>
    Diverged,
}

/// <summary>
/// How a trainer treats its run folder: start a new run (refusing a folder that holds one), continue it, or replace it.
/// </summary>
public enum StartMode
{
    /// <summary>A new run; a folder that holds a run is refused.</summary>
    New,
    /// <summary>Continue the run in the folder from its newest readable checkpoint.</summary>
    Resume,
    /// <summary>Delete the run in the folder, then start a new one.</summary>
    Replace,
}

/// <summary>
/// The training loop of docs/design.md §4 with everything a long run needs: the curriculum and learning-rate
/// schedule, periodic evaluation and figures, atomic checkpoints that resume exactly, a clean stop
/// on cancellation, and skipping (then, if repeated, stopping on) failed steps. A run folder holds
/// config.json, metrics.jsonl and events.* (<see cref="RunLog"/>), figures/, checkpoints/
/// (<see cref="CheckpointStore"/>) and, while a training runs, run.lock (<see cref="RunLock"/>).
/// </summary>
public sealed class Trainer : IDisposable
{
    /// <summary>Consecutive failed steps after which training restores the last good checkpoint and stops.</summary>
    public const int MaxBadSteps = 5;

    /// <summary>The run's config.</summary>
    public SqairConfig Config { get; }
    /// <summary>The run folder (full path).</summary>
    public string RunDir { get; }
    /// <summary>The model being trained.</summary>
    public SqairModel Model { get; }
    /// <summary>Iterations done.</summary>
    public long Iteration { get; private set; }
    /// <summary>Why the last <see cref="Run"/> stopped, for people.</summary>
    public string? StopMessage { get; private set; }

    readonly Device device;
    readonly ParameterOptimizer optimizer;
    readonly BatchLoader train;
    readonly ISequenceSource? valid;
    readonly ITrainingMarks? marks;
    readonly Action<string> log;
    readonly RunLog runLog;
    readonly CheckpointStore checkpoints;
    readonly IReadOnlyList<(string Name, Parameter Param)> trainable;
    readonly GradientStep step;
    RunLock? runLock;

    /// <summary>
    /// Sets up a run in <paramref name="runDir"/> and takes its lock: a new one (refused when the
    /// folder already holds a run, unless <see cref="StartMode.Replace"/>), or the run resumed from
    /// its newest readable checkpoint, whose config may differ from <paramref name="config"/> only in
    /// <see cref="SqairConfig.ResumableKeys"/>. Each batch is split over <paramref name="shards"/>
    /// threads (<see cref="GradientStep"/>), or, with <paramref name="shardProcess"/>, the shards after the first
    /// over worker processes it starts (<see cref="ShardWorker"/>). Nothing is created or changed when a check fails.
    /// </summary>
    /// <remarks>
    /// A new run starts from <paramref name="init"/>'s parameters when given (same architecture; a fresh optimiser).
    /// With <paramref name="validSource"/> and <paramref name="marks"/> it measures and draws at its marks
    /// (eval_itr, fig_itr); <c>Sqair.Jobs.TrainingRun</c> supplies the evaluator and the figures. A newer checkpoint
    /// a resume passes over is reported through <paramref name="warn"/> (null: <paramref name="log"/>).
    /// </remarks>
    public Trainer(SqairConfig config, string runDir, ISequenceSource trainSource, ISequenceSource? validSource,
                   Device device, Action<string>? log = null, StartMode start = StartMode.New, int shards = 1,
                   Checkpoint.Contents? init = null, ITrainingMarks? marks = null, Action<string>? warn = null,
                   Func<ProcessStartInfo>? shardProcess = null)
    {
        this.log = log ?? (_ => { });
        this.marks = marks;
        this.device = device;
        RunDir = Path.GetFullPath(runDir);
        CheckFits(config, trainSource, "training");
        if (validSource is not null) CheckFits(config, validSource, "validation");

        (config, var from) = Starting(config, RunDir, start, warn ?? this.log);
        Config = config;

        bool created = !Directory.Exists(RunDir);
        runLock = RunLock.Acquire(RunDir, this.log);
        try
        {
            if (start == StartMode.Replace) RunFolder.Clear(RunDir, this.log);
            (Model, trainable, optimizer, train, step) = TrainingSetup.Create(config, trainSource, device, shards,
                                                                                shardProcess);
            valid = validSource;
            runLog = new RunLog(RunDir);
            checkpoints = new CheckpointStore(RunDir, config.CkptItr, this.log);
            if (from is not null) ResumeFrom(from);
            else StartNew(trainSource, init);
        }
        catch
        {
            Dispose();
            if (created) RunFolder.RemoveIfEmptyRun(RunDir);
            throw;
        }
    }

    /// <summary>
    /// The config the run goes on with and, to resume, the checkpoint to resume from; refuses a resume whose
    /// config changes more than <see cref="SqairConfig.ResumableKeys"/>, and a new run in a folder that holds one.
    /// </summary>
    static (SqairConfig Config, Checkpoint.Contents? From) Starting(SqairConfig config, string runDir,
                                                                    StartMode start, Action<string> log)
    {
        if (start == StartMode.Resume)
        {
            var from = CheckpointStore.NewestResumable(runDir, log)
                       ?? throw new FileNotFoundException($"{runDir} has no checkpoint to resume from");
            // The learning-rate stages stay where the run put them, whatever max_train_iter the resume gives.
            var trained = from.Config.WithScheduleFixed();
            if (config.LrScheduleItr == 0) config = config with { LrScheduleItr = trained.LrScheduleItr };
            var changed = config.UnresumableChanges(trained).ToList();
            if (changed.Count > 0)
                throw new ArgumentException(
                    $"cannot resume {from.Path} with a different {string.Join(", ", changed)}; " +
                    $"a resumed run may only change {string.Join(", ", SqairConfig.ResumableKeys)}");
            return (config, from);
        }
        if (RunFolder.Describe(runDir) is { } existing && start == StartMode.New)
            throw new ArgumentException(
                $"{runDir} already holds a run ({existing}); resume it with --resume {runDir}, " +
                "choose another --run-dir, or pass --force to replace it");
        return (config.WithScheduleFixed(), null);
    }

    /// <summary>
    /// Loads the model, optimiser and random state of <paramref name="from"/> and drops the metrics logged after it.
    /// </summary>
    void ResumeFrom(Checkpoint.Contents from)
    {
        log($"resuming {from.Path} at iteration {from.Iteration}");
        Checkpoint.LoadInto(from, Model, optimizer, restoreRng: true);
        Iteration = from.Iteration;
        if (runLog.TruncateAfter(Iteration) is > 0 and var dropped)
            log($"dropped {dropped} line(s) of metrics.jsonl past iteration {Iteration}, " +
                "written after that checkpoint");
    }

    /// <summary>
    /// Starts a new run: the mean image from the training data, <paramref name="init"/>'s parameters when given,
    /// and the run's config.json.
    /// </summary>
    void StartNew(ISequenceSource trainSource, Checkpoint.Contents? init)
    {
        Model.Decoder.SetMeanImage(MeanFrame(trainSource, device));
        if (init is not null)
        {
            if (Checkpoint.Misfit(init, Model) is { } misfit)
                throw new ArgumentException(
                    $"{misfit}: a run starts only from a model of its own architecture");
            Checkpoint.LoadInto(init, Model);
            log($"starting from the parameters of {init.Path} (iteration {init.Iteration})");
        }
        AtomicFile.WriteAllText(Path.Combine(RunDir, RunFolder.ConfigFile), Config.ToJson());
    }

    static void CheckFits(SqairConfig c, ISequenceSource source, string what)
    {
        if (c.Misfit(source.Config) is { } misfit)
            throw new ArgumentException($"the {what} data does not fit the model: {misfit}");
        if (source.Config.SeqLen < c.SeqLen)
            throw new ArgumentException(
                $"the {what} data has {source.Config.SeqLen} frames per sequence, fewer than seq_len = {c.SeqLen}");
    }

    /// <summary>Releases the run folder's lock (also done when <see cref="Run"/> returns).</summary>
    public void Dispose()
    {
        step?.Dispose();
        runLock?.Dispose();
        runLock = null;
    }

    /// <summary>
    /// The mean training frame (over up to 1 000 sequences), the initial value of the learned mean image.
    /// </summary>
    static Tensor MeanFrame(ISequenceSource source, Device device)
    {
        long n = Math.Min(source.Count ?? 1000, 1000);
        var c = source.Config;
        var sum = new double[c.Channels * c.CanvasSize * c.CanvasSize];
        for (long i = 0; i < n; i++)
        {
            var s = source.Get(i);
            for (int p = 0; p < s.Frames.Length; p++) sum[p % sum.Length] += s.Frames[p];
        }
        double scale = 1.0 / (255.0 * n * c.SeqLen);
        return tensor(sum.Select(v => (float)(v * scale)).ToArray(), [c.Channels, c.CanvasSize, c.CanvasSize])
            .to(device);
    }

    /// <summary>
    /// Trains until max_train_iter, the time limit, a stop request or divergence; releases the run's lock when it
    /// returns.
    /// </summary>
    public TrainOutcome Run(CancellationToken stop, Action<TrainProgress>? onIteration = null)
    {
        runLock ??= RunLock.Acquire(RunDir, log);
        try { return Loop(onIteration, stop); }
        finally { Dispose(); }
    }

    /// <summary>
    /// The flat training loop: a step, its bookkeeping, the work due at this iteration, the progress line.
    /// </summary>
    TrainOutcome Loop(Action<TrainProgress>? onIteration, CancellationToken stop)
    {
        var c = Config;
        var clock = Stopwatch.StartNew();
        var window = new TrainWindow();
        double rate = 0;
        int badSteps = 0;
        IReadOnlyDictionary<string, double>? logged = null;
        long lastTick = Stopwatch.GetTimestamp();
        Model.train();
        while (Iteration < c.MaxTrainIter)
        {
            if (stop.IsCancellationRequested)
            {
                SaveCheckpoint();
                StopMessage = $"interrupted at iteration {Iteration}; resume with --resume {RunDir}";
                return TrainOutcome.Interrupted;
            }
            if (c.TimeLimitMin > 0 && clock.Elapsed.TotalMinutes >= c.TimeLimitMin)
                return End(TrainOutcome.TimeLimit,
                           $"time limit of {c.TimeLimitMin} min reached at iteration {Iteration}");

            int seqLen = c.SeqLenAt(Iteration);
            double lr = c.LearningRateAt(Iteration);
            string? failure = Step(seqLen, lr, window);
            Model.zero_grad();
            Iteration++;
            if (failure is not null)
            {
                badSteps++;
                log($"iteration {Iteration - 1}: {failure}, step skipped ({badSteps} in a row)");
                runLog.Scalar("train/skipped_steps", badSteps, Iteration);
                if (badSteps >= MaxBadSteps) return Diverged($"{MaxBadSteps} failed steps in a row");
            }
            else
            {
                badSteps = 0;
                long now = Stopwatch.GetTimestamp();
                double seconds = (now - lastTick) / (double)Stopwatch.Frequency;
                lastTick = now;
                rate = rate == 0 ? 1 / seconds : 0.95 * rate + 0.05 / seconds;
            }

            if ((Iteration % c.LogItr == 0 || Iteration == c.MaxTrainIter) && window.Steps > 0)
            {
                logged = window.Means(lr, seqLen, rate);
                Record("train", logged);
                window = new TrainWindow();
            }
            // Due work is done even after a skipped step: the parameters are those of the last good one.
            DueWork();

            // The progress line shows the running window, or the last logged one just after a log.
            var shown = window.Steps > 0 ? window.Means(lr, seqLen, rate) : logged;
            onIteration?.Invoke(Progress(shown, seqLen, rate, lr, clock));
        }
        return End(TrainOutcome.Completed, $"finished {Iteration} iterations");
    }

    /// <summary>The evaluation, figures and checkpoint due at this iteration.</summary>
    void DueWork()
    {
        var c = Config;
        if (Iteration % c.EvalItr == 0 && valid is not null && marks is not null)
            Safely("evaluation", () => Evaluate());
        if (Iteration % c.FigItr == 0 && valid is not null && marks is not null) Safely("figures", Figures);
        if (Iteration % c.CkptItr == 0) SaveCheckpoint();
    }

    /// <summary>The progress line's values, with the measures of <paramref name="shown"/> (NaN when none).</summary>
    TrainProgress Progress(IReadOnlyDictionary<string, double>? shown, int seqLen, double rate, double lr,
                           Stopwatch clock)
    {
        var c = Config;
        double Shown(Metric m) => shown?[m.Key] ?? double.NaN;
        return new TrainProgress(Iteration, c.MaxTrainIter, seqLen, Shown(Metrics.Loss),
            Shown(Metrics.Iwae), Shown(Metrics.CountAccVisible), rate,
            TimeLeft(c.MaxTrainIter - Iteration, rate, c.TimeLimitMin, clock.Elapsed), lr);
    }

    /// <summary>
    /// One training step at <paramref name="seqLen"/> frames and rate <paramref name="lr"/>: gradient,
    /// clipping, the optimiser's step, the batch's measures into <paramref name="window"/>. Returns why
    /// the step was skipped, or null: a non-finite loss or gradient leaves the parameters as they were.
    /// </summary>
    string? Step(int seqLen, double lr, TrainWindow window)
    {
        var c = Config;
        try
        {
            using var scope = NewDisposeScope();
            using var batch = train.Get(Iteration, seqLen);
            Model.PresenceTemperature = c.PresenceTemperatureAt(Iteration);
            var (lossValue, metrics) = step.Run(batch, c.KParticles, c.Seed, Iteration);
            double gradNorm = double.IsFinite(lossValue) ? GradNorm() : double.NaN;
            if (!double.IsFinite(lossValue) || !double.IsFinite(gradNorm))
                return $"non-finite {(double.IsFinite(lossValue) ? "gradient" : "loss")}";
            if (c.ClipGradNorm > 0 && gradNorm > c.ClipGradNorm)
                using (no_grad())
                using (var factor = (c.ClipGradNorm / gradNorm).ToScalar())
                    foreach (var (_, p) in trainable) p.grad?.mul_(factor);
            optimizer.Step(lr);
            window.Add(metrics!, lossValue, gradNorm);
            return null;
        }
        catch (ExternalException e)
        {
            // A guard, not a fix: the known cause, TorchSharp's finalizer-freed scalars, is
            // banned from our code (KeptScalars.cs). Should libtorch still fail in a step, the
            // step is lost, not the run: it is skipped like a non-finite one.
            return $"libtorch error ({e.Message.Split('\n')[0].Trim()})";
        }
    }

    /// <summary>
    /// The training measures summed since the last log line, and their means for the log and the progress line.
    /// </summary>
    internal sealed class TrainWindow
    {
        BatchMetrics metrics = new();
        double loss, gradNorm;

        /// <summary>Steps summed (skipped steps are not).</summary>
        public int Steps { get; private set; }

        public void Add(BatchMetrics batch, double stepLoss, double stepGradNorm)
        {
            metrics += batch;
            loss += stepLoss;
            gradNorm += stepGradNorm;
            Steps++;
        }

        /// <summary>The means of the window, with the step's rate, length and speed.</summary>
        public Dictionary<string, double> Means(double lr, int seqLen, double iterationsPerSecond) =>
            new(metrics.Means())
            {
                [Metrics.Loss.Key] = loss / Steps,
                [Metrics.GradNorm.Key] = gradNorm / Steps,
                [Metrics.LearningRate.Key] = lr,
                [Metrics.SeqLen.Key] = seqLen,
                [Metrics.IterationsPerSecond.Key] = iterationsPerSecond,
            };
    }

    /// <summary>
    /// The end of a run that was not interrupted (done, or out of time): <see cref="Finish"/>, unless
    /// the last steps left the parameters infinite with too few failed steps after them to stop the
    /// run: that is divergence, not a finished run without its checkpoint.
    /// </summary>
    TrainOutcome End(TrainOutcome outcome, string message)
    {
        if (!ParametersFinite()) return Diverged(NotFinite);
        Finish();
        StopMessage = message;
        return outcome;
    }

    /// <summary>
    /// Time until whichever limit comes first: the iterations left at the current rate, or the
    /// time limit (0: none). Unknown (zero rate, no time limit) is <see cref="TimeSpan.Zero"/>.
    /// </summary>
    public static TimeSpan TimeLeft(long iterationsLeft, double iterationsPerSecond, double timeLimitMin,
                                    TimeSpan elapsed)
    {
        double byIterations = iterationsPerSecond > 0 ? iterationsLeft / iterationsPerSecond : double.PositiveInfinity;
        double byClock = timeLimitMin > 0
            ? Math.Max(0, timeLimitMin * 60 - elapsed.TotalSeconds)
            : double.PositiveInfinity;
        double seconds = Math.Min(byIterations, byClock);
        return double.IsFinite(seconds)
            ? TimeSpan.FromSeconds(Math.Min(seconds, TimeSpan.MaxValue.TotalSeconds / 2))
            : TimeSpan.Zero;
    }

    /// <summary>
    /// The end of a run that was not interrupted (done, or out of time): the final model is saved,
    /// measured and drawn unless that already happened at this iteration (just now, or before a
    /// resume of a finished run, which must add no second checkpoint, figure or metrics record).
    /// </summary>
    void Finish()
    {
        var c = Config;
        if (Iteration % c.CkptItr != 0 && !File.Exists(Checkpoint.PathFor(RunDir, Iteration))) SaveCheckpoint();
        if (valid is not null && Iteration % c.EvalItr != 0 && !runLog.HasRecord("valid", Iteration))
            Safely("evaluation", () => Evaluate());
        if (valid is not null && Iteration % c.FigItr != 0 && !File.Exists(SequenceFigurePath))
            Safely("figures", Figures);
    }

    /// <summary>Periodic side work must not end a run: a libtorch error there is logged and training goes on.</summary>
    void Safely(string what, Action action)
    {
        try { action(); }
        catch (ExternalException e)
        {
            log($"iteration {Iteration}: {what} failed ({e.Message.Split('\n')[0].Trim()}); training continues");
        }
    }

    double GradNorm()
    {
        using var _ = no_grad();
        var squares = trainable.Where(p => p.Param.grad is not null)
            .Select(p => (p.Param.grad! * p.Param.grad!).sum()).ToArray();
        return KeptScalars.ValueOf(stack(squares).sum().sqrt());
    }

    const string NotFinite = "its parameters are no longer finite";

    /// <summary>
    /// Restores the newest checkpoint to resume from (if any) and says in <see cref="StopMessage"/>
    /// <paramref name="why"/> the run stopped.
    /// </summary>
    TrainOutcome Diverged(string why)
    {
        if (CheckpointStore.NewestResumable(RunDir, log) is { } contents)
        {
            Checkpoint.LoadInto(contents, Model, optimizer, restoreRng: true);
            Iteration = contents.Iteration;
            StopMessage = $"training diverged: {why}; restored {contents.Path} " +
                          $"(iteration {contents.Iteration}) and stopped. " +
                          "Try a lower learning_rate or clip_grad_norm.";
        }
        else
        {
            StopMessage = $"training diverged: {why} at iteration {Iteration}, before any checkpoint was saved. " +
                          "Try a lower learning_rate or clip_grad_norm.";
        }
        return TrainOutcome.Diverged;
    }

    /// <summary>
    /// Measures on the first eval_size validation sequences with the marks' measure and records "valid/…" scalars.
    /// </summary>
    public IReadOnlyDictionary<string, double> Evaluate()
    {
        if (valid is null || marks is null)
            throw new InvalidOperationException("this trainer has no validation data or no measure to run on it");
        var n = Config.EvalSize == 0
            ? valid.Count ?? 1000
            : Math.Min(Config.EvalSize, valid.Count ?? Config.EvalSize);
        var metrics = marks.Measure(Model, valid, n, device);
        Record("valid", metrics);
        return metrics;
    }

    /// <summary>The measures the log's lines show of a record, in the record's order; the file has them all.</summary>
    static readonly IReadOnlySet<string> Logged = new[]
    {
        Metrics.Loss, Metrics.Iwae, Metrics.Kl, Metrics.LogLikelihood, Metrics.CountAccPresent,
        Metrics.CountAccVisible, Metrics.Ess, Metrics.Mota, Metrics.Idf1,
    }.Select(m => m.Key).ToHashSet();

    void Record(string split, IReadOnlyDictionary<string, double> values)
    {
        runLog.Record(split, Iteration, values);
        if (split == "valid" || Iteration % (Config.LogItr * 10) == 0 || Iteration == Config.LogItr)
            log($"{split} @ {Iteration}: " + string.Join("  ", values
                .Where(kv => Logged.Contains(kv.Key))
                .Select(kv => $"{kv.Key} {kv.Value:G5}")));
    }

    string SequenceFigurePath => Path.Combine(RunDir, RunFolder.FiguresDir, $"sequence-{Iteration:D9}.png");

    /// <summary>Sequences in the training figures: as many as a screen shows side by side.</summary>
    const int FigureSequences = 4;

    /// <summary>Sequence and still figures of the first validation sequences that hold a digit.</summary>
    public void Figures()
    {
        if (valid is null || marks is null)
            throw new InvalidOperationException("this trainer has no validation data or no figures to draw of it");
        var dir = Path.Combine(RunDir, RunFolder.FiguresDir);
        Directory.CreateDirectory(dir);
        using var batch = SequenceBatch.Of(valid, SequenceBatch.Showing(valid, FigureSequences), device: device);
        var seq = SequenceFigurePath;
        var still = Path.Combine(dir, $"still-{Iteration:D9}.png");
        marks.DrawFigures(Model, batch, Iteration, seq, still);
        runLog.Image("figures/sequence", seq, Iteration);
        runLog.Image("figures/still", still, Iteration);
    }

    /// <summary>
    /// Saves a checkpoint unless a parameter is not finite (a bad checkpoint must never replace good ones).
    /// </summary>
    public string? SaveCheckpoint()
    {
        if (!ParametersFinite())
        {
            log($"iteration {Iteration}: parameters are not finite, checkpoint not written");
            return null;
        }
        return checkpoints.Save(Model, optimizer, Iteration);
    }

    bool ParametersFinite()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        return trainable.All(p => p.Param.isfinite().all().item<bool>());
    }
}
