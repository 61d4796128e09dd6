using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Model;
using Sqair.Objective;
using Sqair.Visualisation;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Sqair.Training;

/// <summary>What the progress line shows after each iteration.</summary>
public sealed record TrainProgress(long Iteration, long MaxIterations, int SeqLen, double Loss, double Iwae, double CountAccuracy,
                                   double IterationsPerSecond, TimeSpan Eta, double LearningRate);

public enum TrainOutcome { Completed, Interrupted, TimeLimit, Diverged }

/// <summary>
/// The training loop of docs/design.md §4 with everything a long run needs: the curriculum and learning-rate
/// schedule, TensorBoard scalars and figures, periodic evaluation, atomic checkpoints that resume
/// exactly, a clean stop on cancellation, and skipping (then, if repeated, stopping on) NaN steps.
/// A run folder holds config.json, metrics.jsonl, events.* (TensorBoard), figures/ and checkpoints/.
/// </summary>
public sealed class Trainer
{
    /// <summary>Consecutive non-finite steps after which training restores the last good checkpoint and stops.</summary>
    public const int MaxBadSteps = 5;

    public SqairConfig Config { get; }
    public string RunDir { get; }
    public SqairModel Model { get; }
    public long Iteration { get; private set; }
    public string? StopMessage { get; private set; }

    readonly Device device;
    readonly Optimizer optimizer;
    readonly BatchLoader train;
    readonly ISequenceSource? valid;
    readonly Action<string> log;
    readonly SummaryWriter tensorboard;
    readonly List<(string Name, Parameter Param)> trainable;
    readonly GradientStep step;

    /// <summary>
    /// Sets up a new run in <paramref name="runDir"/>, or resumes it from its newest checkpoint when
    /// <paramref name="resume"/> is set; a resumed run's config may differ from its checkpoint's only
    /// in <see cref="SqairConfig.ResumableKeys"/>. Each batch is split over <paramref name="shards"/>
    /// threads (<see cref="GradientStep"/>).
    /// </summary>
    public Trainer(SqairConfig config, string runDir, ISequenceSource trainSource, ISequenceSource? validSource, Device device,
                   Action<string>? log = null, bool resume = false, int shards = 1)
    {
        this.log = log ?? (_ => { });
        this.device = device;
        RunDir = Path.GetFullPath(runDir);
        Directory.CreateDirectory(RunDir);
        Checkpoint.Contents? start = null;
        if (resume)
        {
            var path = Checkpoint.InRun(RunDir).FirstOrDefault()
                ?? throw new FileNotFoundException($"{RunDir} has no checkpoints to resume from");
            start = Checkpoint.Read(path);
            var changed = config.DifferingKeys(start.Config).Where(k => !SqairConfig.ResumableKeys.Contains(k)).ToList();
            if (changed.Count > 0)
                throw new ArgumentException($"cannot resume {path} with a different {string.Join(", ", changed)}; a resumed run may only change {string.Join(", ", SqairConfig.ResumableKeys)}");
            this.log($"resuming {path} at iteration {start.Iteration}");
        }
        Config = config;
        manual_seed((long)config.Seed);
        Model = new SqairModel(config);
        Model.to(device);
        trainable = Model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)).ToList();
        optimizer = Optimizer.Create(config.Optimizer, trainable.Select(p => (p.Name, (Tensor)p.Param)));
        step = new GradientStep(Model, shards);
        train = new BatchLoader(trainSource, config.BatchSize, shuffle: true, seed: config.Seed, device);
        valid = validSource;
        if (trainSource.Config.CanvasSize != config.ImgSize || trainSource.Config.SeqLen < config.SeqLen)
            throw new ArgumentException($"the training data ({trainSource.Config.CanvasSize}px, {trainSource.Config.SeqLen} frames) does not fit img_size = {config.ImgSize}, seq_len = {config.SeqLen}");

        if (start is not null)
        {
            Checkpoint.LoadInto(start, Model, optimizer, restoreRng: true);
            Iteration = start.Iteration;
        }
        else
        {
            Model.Decoder.SetMeanImage(MeanFrame(trainSource, device));
            AtomicFile.WriteAllText(Path.Combine(RunDir, "config.json"), config.ToJson());
        }
        tensorboard = torch.utils.tensorboard.SummaryWriter(RunDir);
    }

    /// <summary>The mean training frame (over up to 1 000 sequences), the initial value of the learned mean image.</summary>
    static Tensor MeanFrame(ISequenceSource source, Device device)
    {
        long n = Math.Min(source.Count ?? 1000, 1000);
        var c = source.Config;
        var sum = new double[c.CanvasSize * c.CanvasSize];
        for (long i = 0; i < n; i++)
        {
            var s = source.Get(i);
            for (int p = 0; p < s.Frames.Length; p++) sum[p % sum.Length] += s.Frames[p];
        }
        double scale = 1.0 / (255.0 * n * c.SeqLen);
        return tensor(sum.Select(v => (float)(v * scale)).ToArray(), [1, c.CanvasSize, c.CanvasSize]).to(device);
    }

    public TrainOutcome Run(CancellationToken stop, Action<TrainProgress>? onIteration = null)
    {
        var c = Config;
        var clock = Stopwatch.StartNew();
        var window = new BatchMetrics();
        double windowLoss = 0, windowGradNorm = 0, rate = 0;
        int windowSteps = 0, badSteps = 0;
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
            {
                Finish();
                StopMessage = $"time limit of {c.TimeLimitMin} min reached at iteration {Iteration}";
                return TrainOutcome.TimeLimit;
            }

            int seqLen = c.SeqLenAt(Iteration);
            double lr = c.LearningRateAt(Iteration);
            string? failure = null;
            try
            {
                using var scope = NewDisposeScope();
                using var batch = train.Get(Iteration, seqLen);
                var (lossValue, output) = step.Run(batch.Frames, c.KParticles, c.Seed, Iteration);
                double gradNorm = double.IsFinite(lossValue) ? GradNorm() : double.NaN;
                if (!double.IsFinite(lossValue) || !double.IsFinite(gradNorm))
                    failure = $"non-finite {(double.IsFinite(lossValue) ? "gradient" : "loss")}";
                else
                {
                    if (c.ClipGradNorm > 0 && gradNorm > c.ClipGradNorm)
                        using (no_grad())
                        using (var factor = (c.ClipGradNorm / gradNorm).ToScalar())
                            foreach (var (_, p) in trainable) p.grad?.mul_(factor);
                    optimizer.Step(lr);
                    window += BatchMetrics.Of(output, batch);
                    windowLoss += lossValue;
                    windowGradNorm += gradNorm;
                    windowSteps++;
                }
            }
            catch (ExternalException e)
            {
                // A guard, not a fix: the known cause, TorchSharp's finalizer-freed scalars, is
                // banned from our code (KeptScalars.cs). Should libtorch still fail in a step, the
                // step is lost, not the run: it is skipped like a non-finite one.
                failure = $"libtorch error ({e.Message.Split('\n')[0].Trim()})";
            }
            Model.zero_grad();
            if (failure is not null)
            {
                badSteps++;
                log($"iteration {Iteration}: {failure}, step skipped ({badSteps} in a row)");
                tensorboard.add_scalar("train/skipped_steps", badSteps, (int)Iteration);
                if (badSteps >= MaxBadSteps) return Diverged();
                Iteration++;
                continue;
            }
            badSteps = 0;
            Iteration++;

            long now = Stopwatch.GetTimestamp();
            double seconds = (now - lastTick) / (double)Stopwatch.Frequency;
            lastTick = now;
            rate = rate == 0 ? 1 / seconds : 0.95 * rate + 0.05 / seconds;

            if (Iteration % c.LogItr == 0 || Iteration == c.MaxTrainIter)
            {
                var means = new Dictionary<string, double>(window.Means())
                {
                    ["loss"] = windowLoss / windowSteps,
                    ["grad_norm"] = windowGradNorm / windowSteps,
                    ["lr"] = lr,
                    ["seq_len"] = seqLen,
                    ["iterations_per_second"] = rate,
                };
                Record("train", means);
                logged = means;
                window = new BatchMetrics();
                windowLoss = windowGradNorm = 0;
                windowSteps = 0;
            }
            if (Iteration % c.EvalItr == 0 && valid is not null) Safely("evaluation", () => Evaluate());
            if (Iteration % c.FigItr == 0 && valid is not null) Safely("figures", Figures);
            if (Iteration % c.CkptItr == 0) SaveCheckpoint();

            var etaSeconds = rate > 0 ? (c.MaxTrainIter - Iteration) / rate : 0;
            // The progress line shows the running window, or the last logged one just after a log.
            var shown = windowSteps > 0 ? new Dictionary<string, double>(window.Means()) { ["loss"] = windowLoss / windowSteps } : logged;
            onIteration?.Invoke(new TrainProgress(Iteration, c.MaxTrainIter, seqLen, shown?["loss"] ?? double.NaN,
                shown?["iwae"] ?? double.NaN, shown?["count_acc_visible"] ?? double.NaN, rate,
                TimeSpan.FromSeconds(Math.Min(etaSeconds, TimeSpan.MaxValue.TotalSeconds / 2)), lr));
        }
        Finish();
        StopMessage = $"finished {Iteration} iterations";
        return TrainOutcome.Completed;
    }

    /// <summary>
    /// The end of a run that was not interrupted (done, or out of time): the final model is saved,
    /// measured and drawn unless that just happened at this iteration.
    /// </summary>
    void Finish()
    {
        var c = Config;
        if (Iteration % c.CkptItr != 0) SaveCheckpoint();
        if (valid is not null && Iteration % c.EvalItr != 0) Safely("evaluation", () => Evaluate());
        if (valid is not null && Iteration % c.FigItr != 0) Safely("figures", Figures);
    }

    /// <summary>Periodic side work must not end a run: a libtorch error there is logged and training goes on.</summary>
    void Safely(string what, Action action)
    {
        try { action(); }
        catch (ExternalException e) { log($"iteration {Iteration}: {what} failed ({e.Message.Split('\n')[0].Trim()}); training continues"); }
    }

    double GradNorm()
    {
        using var _ = no_grad();
        var squares = trainable.Where(p => p.Param.grad is not null).Select(p => (p.Param.grad! * p.Param.grad!).sum()).ToArray();
        return stack(squares).sum().sqrt().ToDouble();
    }

    TrainOutcome Diverged()
    {
        var (last, contents) = Checkpoint.InRun(RunDir).Select(path => (path, Readable(path))).FirstOrDefault(x => x.Item2 is not null);
        if (last is not null && contents is not null)
        {
            Checkpoint.LoadInto(contents, Model, optimizer, restoreRng: true);
            Iteration = contents.Iteration;
            StopMessage = $"training diverged: {MaxBadSteps} non-finite steps in a row; restored {last} (iteration {contents.Iteration}) and stopped. " +
                          "Try a lower learning_rate or clip_grad_norm.";
        }
        else
        {
            StopMessage = $"training diverged: {MaxBadSteps} non-finite steps in a row at iteration {Iteration}, before any checkpoint was saved. " +
                          "Try a lower learning_rate or clip_grad_norm.";
        }
        log(StopMessage);
        return TrainOutcome.Diverged;
    }

    /// <summary>Sequences per evaluation batch: as large as memory comfortably allows at K = 5 and T = 10.</summary>
    const int EvalBatchSize = 50;

    /// <summary>Evaluates on the first eval_size validation sequences and records "valid/…" scalars.</summary>
    public IReadOnlyDictionary<string, double> Evaluate()
    {
        var n = Config.EvalSize == 0 ? valid!.Count ?? 1000 : Math.Min(Config.EvalSize, valid!.Count ?? Config.EvalSize);
        var metrics = Evaluator.Run(Model, valid, n, Config.KParticles, EvalBatchSize, device).Flat();
        Record("valid", metrics);
        return metrics;
    }

    void Record(string split, IReadOnlyDictionary<string, double> values)
    {
        foreach (var (k, v) in values) tensorboard.add_scalar($"{split}/{k}", (float)v, (int)Iteration);
        var line = new Dictionary<string, object> { ["iteration"] = Iteration, ["split"] = split, ["time"] = DateTime.UtcNow.ToString("o") };
        foreach (var (k, v) in values) line[k] = double.IsFinite(v) ? Math.Round(v, 6) : v.ToString();
        File.AppendAllText(Path.Combine(RunDir, "metrics.jsonl"), JsonSerializer.Serialize(line) + "\n");
        if (split == "valid" || Iteration % (Config.LogItr * 10) == 0 || Iteration == Config.LogItr)
            log($"{split} @ {Iteration}: " + string.Join("  ", values.Where(kv => kv.Key is "loss" or "iwae" or "kl" or "log_p_x_given_z" or "count_acc_present" or "count_acc_visible" or "ess" or "mota" or "idf1")
                                                                  .Select(kv => $"{kv.Key} {kv.Value:G5}")));
    }

    /// <summary>Sequence and still figures of four validation sequences.</summary>
    public void Figures()
    {
        var dir = Path.Combine(RunDir, "figures");
        Directory.CreateDirectory(dir);
        var loader = new BatchLoader(valid!, 4, shuffle: false, seed: 0, device);
        using var batch = loader.Get(0);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Model.eval();
        var output = Model.Forward(batch.Frames, Config.KParticles, keepFrames: true);
        Model.train();
        var rows = output.ResampleRows(new Generator(0)).data<long>().ToArray();
        var tracks = rows.Select((row, b) => ModelFigures.Extract(batch.Frames, output.Frames!, b, row)).ToList();
        var seq = Path.Combine(dir, $"sequence-{Iteration:D9}.png");
        var still = Path.Combine(dir, $"still-{Iteration:D9}.png");
        ModelFigures.SequenceFigure(tracks, seq, $"iteration {Iteration}: inputs and reconstructions (caption: count: ids)");
        ModelFigures.StillFigure(tracks, batch.T - 1, still, $"iteration {Iteration}, frame {batch.T - 1}: input, reconstruction, glimpses");
        tensorboard.add_img("figures/sequence", seq, (int)Iteration);
        tensorboard.add_img("figures/still", still, (int)Iteration);
    }

    Checkpoint.Contents? Readable(string path)
    {
        try { return Checkpoint.Read(path); }
        catch (InvalidDataException e)
        {
            log($"skipping unreadable checkpoint: {e.Message}");
            return null;
        }
    }

    /// <summary>Saves a checkpoint unless a parameter is not finite (a bad checkpoint must never replace good ones).</summary>
    public string? SaveCheckpoint()
    {
        using (no_grad())
            if (trainable.Any(p => !p.Param.isfinite().all().item<bool>()))
            {
                log($"iteration {Iteration}: parameters are not finite, checkpoint not written");
                return null;
            }
        var path = Checkpoint.PathFor(RunDir, Iteration);
        Checkpoint.Save(path, Model, optimizer, Iteration);
        // Keep the two newest checkpoints and every one on the checkpoint cadence.
        foreach (var old in Checkpoint.InRun(RunDir).Skip(2))
            if (long.TryParse(Path.GetFileNameWithoutExtension(old)["step-".Length..], out var step) && step % Config.CkptItr != 0)
                File.Delete(old);
        return path;
    }
}
