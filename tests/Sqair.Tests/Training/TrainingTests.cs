using System.Text.Json.Nodes;
using Sqair.Data;
using Sqair.Jobs;
using Sqair.Model;
using Sqair.Runs;
using Sqair.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Tests.Training;

public class TrainingTests
{
    /// <summary>The marks <c>sqair train</c> gives its trainer: the evaluator and the figures.</summary>
    static readonly ValidationMarks Marks = new();

    static SqairConfig TinyTraining(OptimizerKind optimizer = OptimizerKind.Adam) => new()
    {
        ImgSize = 32, GlimpseSize = 8, NWhat = 8, NUnits = 2, MaxObjects = 2, KParticles = 3, BatchSize = 8,
        SeqLen = 3, CurriculumStart = 2, StageItr = 4, Optimizer = optimizer, LearningRate = 1e-3, LrSchedule = [1],
        MaxTrainIter = 40, LogItr = 5, EvalItr = 20, FigItr = 20, CkptItr = 20,
        EvalSize = 16, TrainSize = 64, ValidSize = 16,
    };

    static (ISequenceSource Train, ISequenceSource Valid) Data(SqairConfig c)
    {
        var dataConfig = c.DataConfig();
        return (new GeneratedSource(new MovingMnist(dataConfig, TestUtil.Templates(100, 1), 1)),
                new GeneratedSource(new MovingMnist(dataConfig, TestUtil.Templates(100, 2), 2)));
    }

    static double[] LoggedLosses(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!)
            .Where(n => (string)n["split"]! == "train").Select(n => (double)n["loss"]!).ToArray();

    [Fact]
    public void A_tiny_model_trains_and_its_loss_goes_down_with_everything_in_the_run_folder()
    {
        var c = TinyTraining();
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        var trainer = new Trainer(c, dir, train, valid, CPU, marks: Marks);
        Assert.Equal(TrainOutcome.Completed, trainer.Run(CancellationToken.None));
        var losses = LoggedLosses(dir);
        Assert.Equal(8, losses.Length);
        Assert.True(losses[^2..].Average() < losses[..2].Average() - 20, $"losses: {string.Join(", ", losses)}");
        Assert.True(File.Exists(Path.Combine(dir, "config.json")));
        Assert.Equal(2, Checkpoint.InRun(dir).Count());
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(dir, "figures"), "sequence-*.png"));
        Assert.NotEmpty(Directory.GetFiles(dir, "events.out.tfevents.*"));
    }

    [Fact]
    public void A_trainer_without_marks_trains_but_neither_measures_nor_draws()
    {
        var c = TinyTraining() with { MaxTrainIter = 4, LogItr = 2, EvalItr = 2, FigItr = 2, CkptItr = 4 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        using var trainer = new Trainer(c, dir, train, valid, CPU);
        Assert.Equal(TrainOutcome.Completed, trainer.Run(CancellationToken.None));
        var splits = File.ReadAllLines(Path.Combine(dir, RunFolder.MetricsFile))
            .Select(l => (string)JsonNode.Parse(l)!["split"]!).ToHashSet();
        Assert.Equal(["train"], splits);
        Assert.False(Directory.Exists(Path.Combine(dir, RunFolder.FiguresDir)));
        Assert.Throws<InvalidOperationException>(() => trainer.Evaluate());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Interrupted_and_resumed_training_equals_uninterrupted_training(int shards)
    {
        var c = TinyTraining(OptimizerKind.Rmsprop) with
        {
            MaxTrainIter = 8,
            CkptItr = 100,
            EvalItr = 100,
            FigItr = 100
        };
        var (train, valid) = Data(c);
        int threads = get_num_threads();

        var straightDir = TestUtil.TempDir();
        var straight = new Trainer(c, straightDir, train, valid, CPU, shards: shards, marks: Marks);
        straight.Run(CancellationToken.None);

        var resumedDir = TestUtil.TempDir();
        using var cts = new CancellationTokenSource();
        var first = new Trainer(c, resumedDir, train, valid, CPU, shards: shards, marks: Marks);
        Assert.Equal(TrainOutcome.Interrupted, first.Run(cts.Token, p => { if (p.Iteration == 3) cts.Cancel(); }));
        Assert.Equal(3, first.Iteration);
        manual_seed(12345); // whatever happens in between must not matter
        set_num_threads(threads);
        var second = new Trainer(c, resumedDir, train, valid, CPU, start: StartMode.Resume, shards: shards,
                                 marks: Marks);
        Assert.Equal(3, second.Iteration);
        Assert.Equal(TrainOutcome.Completed, second.Run(CancellationToken.None));

        var a = straight.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in second.Model.named_parameters())
            Assert.True(p.allclose(a[name], rtol: 0, atol: 0), $"parameter {name} differs");
        set_num_threads(threads);
    }

    [Fact]
    public void A_resumed_run_may_run_longer_but_not_change_its_model()
    {
        var c = TinyTraining() with { MaxTrainIter = 2, CkptItr = 100, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        new Trainer(c, dir, train, valid, CPU, marks: Marks).Run(CancellationToken.None);
        var longer = new Trainer(c with { MaxTrainIter = 4, TimeLimitMin = 5 }, dir, train, valid, CPU,
                                 start: StartMode.Resume, marks: Marks);
        Assert.Equal(TrainOutcome.Completed, longer.Run(CancellationToken.None));
        Assert.Equal(4, longer.Iteration);
        var e = Assert.Throws<ArgumentException>(() =>
            new Trainer(c with { MaxTrainIter = 6, OutputStd = 0.2 }, dir, train, valid, CPU, start: StartMode.Resume,
                        marks: Marks));
        Assert.Contains("output_std", e.Message);
    }

    /// <summary>
    /// A run of 4 iterations in two stages (the rate divided by 10 at iteration 2) stopped at iteration 1 and resumed
    /// to 8: every iteration trains at the rate the 4-iteration run gave it, not at one of stages spread over 8. A
    /// run from before lr_schedule_itr was recorded (0 in its checkpoint and no key in config.json) keeps the stages
    /// of the max_train_iter its checkpoint was trained with.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_resume_with_a_larger_max_train_iter_keeps_every_iterations_learning_rate(bool unrecorded)
    {
        const double Decay = 10;
        var c = TinyTraining() with
        {
            MaxTrainIter = 4,
            LrSchedule = [1, 1],
            LrDecay = Decay,
            CkptItr = 1,
            EvalItr = 100,
            FigItr = 100,
        };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        var rates = new Dictionary<long, double>();
        using var cts = new CancellationTokenSource();
        Assert.Equal(TrainOutcome.Interrupted, new Trainer(c, dir, train, valid, CPU, marks: Marks).Run(cts.Token, p =>
        {
            rates[p.Iteration - 1] = p.LearningRate;
            if (p.Iteration == 1) cts.Cancel();
        }));
        if (unrecorded) Unrecord(dir);
        var resumed = new Trainer(c with { MaxTrainIter = 8 }, dir, train, valid, CPU, start: StartMode.Resume,
                                  marks: Marks);
        Assert.Equal(TrainOutcome.Completed,
                     resumed.Run(CancellationToken.None, p => rates[p.Iteration - 1] = p.LearningRate));
        Assert.Equal(Enumerable.Range(0, 8).Select(i => (long)i), rates.Keys.Order());
        foreach (var (iteration, rate) in rates)
            Assert.Equal(iteration < 2 ? c.LearningRate : c.LearningRate / Decay, rate, 15);
        Assert.Equal(4, Checkpoint.Read(Checkpoint.InRun(dir).First()).Config.LrScheduleItr);
        // the recorded value is a key a resume cannot change
        var e = Assert.Throws<ArgumentException>(() => new Trainer(c with { MaxTrainIter = 9, LrScheduleItr = 9 },
                                                                   dir, train, valid, CPU, start: StartMode.Resume,
                                                                       marks: Marks));
        Assert.Contains("lr_schedule_itr", e.Message);
    }

    /// <summary>
    /// Makes a run look as if it was written before lr_schedule_itr existed: 0 (what a missing key reads as) in its
    /// checkpoints, no key in its config.json.
    /// </summary>
    static void Unrecord(string dir)
    {
        // the header's metadata holds the config as a JSON string, its quotes escaped as \u0022
        const string Recorded = "lr_schedule_itr\\u0022: 4", Missing = "lr_schedule_itr\\u0022: 0";
        foreach (var path in Checkpoint.InRun(dir))
        {
            var bytes = File.ReadAllBytes(path);
            var text = System.Text.Encoding.Latin1.GetString(bytes);
            Assert.Contains(Recorded, text);
            File.WriteAllBytes(path, System.Text.Encoding.Latin1.GetBytes(text.Replace(Recorded, Missing)));
            Assert.Equal(0, Checkpoint.ReadConfig(path).LrScheduleItr);
        }
        var config = Path.Combine(dir, RunFolder.ConfigFile);
        var json = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        Assert.True(json.Remove("lr_schedule_itr"));
        File.WriteAllText(config, json.ToJsonString());
    }

    [Fact]
    public void A_run_out_of_time_still_saves_measures_and_draws_its_final_model()
    {
        var c = TinyTraining() with
        {
            TimeLimitMin = 0.0005,
            MaxTrainIter = 1000,
            CkptItr = 100,
            EvalItr = 100,
            FigItr = 100
        };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        var trainer = new Trainer(c, dir, train, valid, CPU, marks: Marks);
        // sleeping past the 30 ms limit after the first step makes the run stop at iteration 1
        Assert.Equal(TrainOutcome.TimeLimit, trainer.Run(CancellationToken.None, _ => Thread.Sleep(50)));
        Assert.Equal(1, trainer.Iteration);
        Assert.EndsWith("step-000000001.safetensors", Checkpoint.InRun(dir).Single());
        var valids = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!)
            .Where(n => (string)n["split"]! == "valid");
        Assert.Equal(1, (long)Assert.Single(valids)["iteration"]!);
        Assert.Single(Directory.GetFiles(Path.Combine(dir, "figures"), "sequence-*.png"));
    }

    [Fact]
    public void A_corrupt_newest_checkpoint_is_skipped_with_a_warning_naming_it_and_left_as_it_is()
    {
        var c = TinyTraining() with { MaxTrainIter = 2, CkptItr = 1, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        new Trainer(c, dir, train, valid, CPU, marks: Marks).Run(CancellationToken.None);
        var newest = Checkpoint.InRun(dir).First();
        var bytes = File.ReadAllBytes(newest);
        File.WriteAllBytes(newest, bytes[..(bytes.Length / 2)]);

        var messages = new List<string>();
        using (var resumed = new Trainer(c, dir, train, valid, CPU, messages.Add, StartMode.Resume, marks: Marks))
            Assert.Equal(1, resumed.Iteration);
        Assert.Contains(messages, m => m.Contains(newest) && m.Contains("truncated"));
        Assert.Equal(bytes.Length / 2, new FileInfo(newest).Length);

        foreach (var f in Checkpoint.InRun(dir)) File.WriteAllBytes(f, new byte[100]);
        var e = Assert.Throws<FileNotFoundException>(() =>
            new Trainer(c, dir, train, valid, CPU, start: StartMode.Resume, marks: Marks));
        Assert.Contains("no checkpoint to resume from", e.Message);
    }

    [Fact]
    public void A_newest_checkpoint_that_fails_its_checksum_is_passed_over_for_the_one_before()
    {
        var c = TinyTraining() with { MaxTrainIter = 2, CkptItr = 1, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        new Trainer(c, dir, train, valid, CPU, marks: Marks).Run(CancellationToken.None);
        var newest = Checkpoint.InRun(dir).First();
        CheckpointChecksumTests.FlipNearTheEnd(newest);

        var messages = new List<string>();
        using (var resumed = new Trainer(c, dir, train, valid, CPU, messages.Add, StartMode.Resume, marks: Marks))
            Assert.Equal(1, resumed.Iteration);
        var warning = Assert.Single(messages, m => m.Contains($"skipping unreadable checkpoint {newest}"));
        Assert.Contains("tensor 'rng/torch' does not match its checksum", warning);
        Assert.Equal(2, warning.Split(newest).Length);   // the file named once
    }

    [Fact]
    public void A_folder_holding_a_run_is_refused_unchanged_unless_replaced()
    {
        var c = TinyTraining() with { MaxTrainIter = 2, CkptItr = 1, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        new Trainer(c, dir, train, valid, CPU, marks: Marks).Run(CancellationToken.None);
        var before = Directory.GetFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);

        var e = Assert.Throws<ArgumentException>(() => new Trainer(c, dir, train, valid, CPU, marks: Marks));
        Assert.Contains("already holds a run", e.Message);
        Assert.Contains("--force", e.Message);
        var after = Directory.GetFiles(dir, "*", SearchOption.AllDirectories);
        Assert.Equal(before.Keys.Order(), after.Order());
        foreach (var f in after) Assert.Equal(before[f], File.ReadAllBytes(f));

        using var replaced = new Trainer(c with { MaxTrainIter = 1 }, dir, train, valid, CPU, start: StartMode.Replace,
                                         marks: Marks);
        Assert.Equal(0, replaced.Iteration);
        Assert.Empty(Checkpoint.InRun(dir));
        Assert.False(File.Exists(Path.Combine(dir, RunFolder.MetricsFile)));
    }

    [Fact]
    public void A_running_training_holds_its_folder_and_releases_it_when_it_ends()
    {
        var c = TinyTraining() with { MaxTrainIter = 1, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        var first = new Trainer(c, dir, train, valid, CPU, marks: Marks);
        var e = Assert.Throws<RunFolderInUseException>(() =>
            new Trainer(c, dir, train, valid, CPU, start: StartMode.Replace, marks: Marks));
        Assert.Contains("in use by another training", e.Message);
        first.Run(CancellationToken.None);
        Assert.False(File.Exists(Path.Combine(dir, RunLock.FileName)));
        new Trainer(c with { MaxTrainIter = 2 }, dir, train, valid, CPU, start: StartMode.Resume,
                    marks: Marks).Dispose();
    }

    [Fact]
    public void Retention_keeps_the_cadence_the_two_newest_and_everything_from_before_this_process()
    {
        var steps = new long[] { 9, 8, 7, 6, 5, 4, 3, 2 }.Select(s => ($"step-{s}", s)).ToList();
        Assert.Equal(["step-7", "step-5", "step-3"],
                     CheckpointStore.Retired(steps, 2, new HashSet<string>(), _ => true));
        Assert.Equal(["step-7"],
                     CheckpointStore.Retired(steps, 2, new HashSet<string> { "step-5", "step-3" }, _ => true));
        // Two unreadable newest files count for nothing and are kept: 7 and 6 are the two newest.
        Assert.Equal(["step-5", "step-3"],
                     CheckpointStore.Retired(steps, 2, new HashSet<string>(), p => p is not ("step-9" or "step-8")));
        Assert.Empty(CheckpointStore.Retired(steps, 2, new HashSet<string>(), p => p == "step-9"));

        // A run that checkpointed every 2 iterations, resumed with ckpt_itr 5, keeps all of them.
        var c = TinyTraining() with { MaxTrainIter = 8, CkptItr = 2, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        new Trainer(c, dir, train, valid, CPU, marks: Marks).Run(CancellationToken.None);
        new Trainer(c with { MaxTrainIter = 14, CkptItr = 5 }, dir, train, valid, CPU, start: StartMode.Resume,
                    marks: Marks)
            .Run(CancellationToken.None, _ => { });
        var kept = Checkpoint.InRun(dir).Select(Checkpoint.StepOf).Order().ToArray();
        Assert.Equal([2, 4, 6, 8, 10, 14], kept);
    }

    [Fact]
    public void A_model_file_or_another_runs_checkpoint_copied_in_is_passed_over_with_a_warning()
    {
        var c = TinyTraining() with { MaxTrainIter = 2, CkptItr = 1, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        var (dir, otherDir) = (TestUtil.TempDir(), TestUtil.TempDir());
        new Trainer(c, dir, train, valid, CPU, marks: Marks).Run(CancellationToken.None);
        new Trainer(c with { LearningRate = 0.5 }, otherDir, train, valid, CPU,
                    marks: Marks).Run(CancellationToken.None);
        // newer than the run's own: another run's checkpoint (another learning_rate) as step 6, a model file as step 5
        File.Copy(Checkpoint.InRun(otherDir).First(), Checkpoint.PathFor(dir, 6));
        Checkpoint.SaveModel(Checkpoint.PathFor(dir, 5), Checkpoint.LoadModel(Checkpoint.InRun(dir).First()).Model,
                             5, 5, "{}");

        var messages = new List<string>();
        using (var resumed = new Trainer(c, dir, train, valid, CPU, messages.Add, StartMode.Resume, marks: Marks))
            Assert.Equal(2, resumed.Iteration);
        Assert.Contains(messages, m => m.Contains(Checkpoint.PathFor(dir, 6)) &&
                                       m.Contains("another learning_rate than config.json"));
        Assert.Contains(messages, m => m.Contains(Checkpoint.PathFor(dir, 5)) && m.Contains("parameters only"));
    }

    [Fact]
    public void Damaged_newer_checkpoints_do_not_cost_a_resumed_run_its_good_ones()
    {
        var c = TinyTraining() with { MaxTrainIter = 4, CkptItr = 2, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        new Trainer(c, dir, train, valid, CPU, marks: Marks).Run(CancellationToken.None);
        foreach (var step in new[] { 100, 101 }) File.WriteAllBytes(Checkpoint.PathFor(dir, step), []);
        new Trainer(c with { MaxTrainIter = 7, CkptItr = 5 }, dir, train, valid, CPU, start: StartMode.Resume,
                    marks: Marks)
            .Run(CancellationToken.None, _ => { });
        Assert.Equal([2, 4, 5, 7, 100, 101], Checkpoint.InRun(dir).Select(Checkpoint.StepOf).Order().ToArray());
        Assert.Equal(7, Checkpoint.Read(Checkpoint.PathFor(dir, 7)).Iteration);
    }

    [Fact]
    public void Resuming_a_finished_run_measures_and_logs_nothing_again()
    {
        var c = TinyTraining() with { MaxTrainIter = 3, CkptItr = 2, EvalItr = 2, FigItr = 100, LogItr = 1 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        new Trainer(c, dir, train, valid, CPU, marks: Marks).Run(CancellationToken.None);
        string[] Files() => [.. Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Order()];
        var (lines, files) = (File.ReadAllLines(Path.Combine(dir, RunFolder.MetricsFile)), Files());
        // the end of the run was measured (3 is off the cadence)
        Assert.Contains(lines, l => l.Contains("\"valid\"") && RunLog.IterationOf(l) == 3);
        for (int i = 0; i < 2; i++)
            Assert.Equal(TrainOutcome.Completed,
                         new Trainer(c, dir, train, valid, CPU, start: StartMode.Resume,
                                     marks: Marks).Run(CancellationToken.None));
        Assert.Equal(lines, File.ReadAllLines(Path.Combine(dir, RunFolder.MetricsFile)));
        Assert.Equal(files, Files()); // no second events file, figure or checkpoint
    }

    [Fact]
    public void A_resumed_run_logs_each_iteration_once()
    {
        var c = TinyTraining() with { MaxTrainIter = 8, CkptItr = 4, LogItr = 2, EvalItr = 100, FigItr = 100 };
        var (train, _) = Data(c);
        var dir = TestUtil.TempDir();
        new Trainer(c, dir, train, null, CPU, marks: Marks).Run(CancellationToken.None);
        // as if killed after logging iteration 8 but before its checkpoint was written
        File.Delete(Checkpoint.PathFor(dir, 8));
        var messages = new List<string>();
        new Trainer(c, dir, train, null, CPU, messages.Add, StartMode.Resume, marks: Marks).Run(CancellationToken.None);
        Assert.Contains(messages, m => m.Contains("dropped 2 line(s)"));
        var iterations = File.ReadAllLines(Path.Combine(dir, RunFolder.MetricsFile))
            .Select(l => RunLog.IterationOf(l)!.Value).ToArray();
        Assert.Equal([2, 4, 6, 8], iterations);
    }

    [Fact]
    public void Evaluation_and_checkpoint_that_fall_due_on_a_failed_step_still_happen()
    {
        var c = TinyTraining() with { MaxTrainIter = 30, CkptItr = 4, EvalItr = 4, FigItr = 100, EvalSize = 8 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        var messages = new List<string>();
        var trainer = new Trainer(c, dir, train, valid, CPU, messages.Add, marks: Marks);
        var poisoned = trainer.Model.named_parameters().First(p => p.name.Contains("output_scale")).parameter;
        trainer.Run(CancellationToken.None, p =>
        {
            if (p.Iteration == 3)
                using (no_grad()) poisoned.fill_(float.NaN);
        });
        // The step to iteration 4 failed; the evaluation and checkpoint due at 4 were still attempted (the
        // evaluation of the poisoned model reports NaN; the checkpoint is rightly refused).
        Assert.Contains(messages, m => m.StartsWith("iteration 3: non-finite", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("valid @ 4: iwae NaN", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("iteration 4: parameters are not finite, checkpoint not written",
                                                    StringComparison.Ordinal));
    }

    [Fact]
    public void The_time_left_counts_to_whichever_limit_comes_first()
    {
        Assert.Equal(TimeSpan.FromSeconds(100), Trainer.TimeLeft(200, 2, 0, TimeSpan.Zero));
        Assert.Equal(TimeSpan.FromMinutes(5), Trainer.TimeLeft(200_000, 2, 60, TimeSpan.FromMinutes(55)));
        Assert.Equal(TimeSpan.FromSeconds(100), Trainer.TimeLeft(200, 2, 60, TimeSpan.FromMinutes(55)));
        Assert.Equal(TimeSpan.Zero, Trainer.TimeLeft(200, 0, 0, TimeSpan.Zero));
    }

    [Fact]
    public void Repeated_non_finite_steps_are_skipped_then_the_last_good_checkpoint_is_restored()
    {
        var c = TinyTraining() with { MaxTrainIter = 30, CkptItr = 2, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        var messages = new List<string>();
        var trainer = new Trainer(c, dir, train, valid, CPU, messages.Add, marks: Marks);
        var poisoned = trainer.Model.named_parameters().First(p => p.name.Contains("output_scale")).parameter;
        var outcome = trainer.Run(CancellationToken.None, p =>
        {
            if (p.Iteration == 3)
                using (no_grad()) poisoned.fill_(float.NaN);
        });
        Assert.Equal(TrainOutcome.Diverged, outcome);
        Assert.Equal(Trainer.MaxBadSteps, messages.Count(m => m.Contains("non-finite") && m.Contains("skipped")));
        Assert.Contains("restored", trainer.StopMessage);
        Assert.Contains("step-000000002", trainer.StopMessage);
        Assert.Equal(2, trainer.Iteration);
        Assert.All(trainer.Model.parameters(), p => Assert.True(p.isfinite().all().item<bool>()));
        Assert.All(Checkpoint.InRun(dir), f => Checkpoint.Read(f));
    }

    [Fact]
    public void Parameters_left_infinite_by_the_last_steps_are_divergence_not_a_finished_run()
    {
        var c = TinyTraining() with { MaxTrainIter = 4, CkptItr = 2, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        var trainer = new Trainer(c, TestUtil.TempDir(), train, valid, CPU, marks: Marks);
        var poisoned = trainer.Model.named_parameters().First(p => p.name.Contains("output_scale")).parameter;
        // at the last iteration: no step follows to fail, so only the end of the run can notice
        var outcome = trainer.Run(CancellationToken.None, p =>
        {
            if (p.Iteration == 3)
                using (no_grad()) poisoned.fill_(float.PositiveInfinity);
        });
        Assert.Equal(TrainOutcome.Diverged, outcome);
        Assert.Contains("parameters are no longer finite; restored", trainer.StopMessage);
        Assert.Equal(2, trainer.Iteration);
    }

    [Fact]
    public void Checkpoints_round_trip_the_model_and_open_in_pytorch_readers()
    {
        manual_seed(3);
        var model = new SqairModel(TinyTraining());
        var path = Path.Combine(TestUtil.TempDir(), "m.safetensors");
        Checkpoint.Save(path, model, null, 17);
        var (loaded, iteration) = Checkpoint.LoadModel(path);
        Assert.Equal(17, iteration);
        Assert.Equal(model.Config, loaded.Config with { LrSchedule = model.Config.LrSchedule });
        var a = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in loaded.named_parameters()) Assert.True(p.allclose(a[name], rtol: 0, atol: 0));
        var py = TorchSharp.PyBridge.Safetensors.LoadStateDict(path);
        Assert.True(py["model/decoder.output_scale"].allclose(a["decoder.output_scale"]));
    }
}
