using System.Text.Json.Nodes;
using Sqair.Data;
using Sqair.Model;
using Sqair.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Tests.Training;

public class TrainingTests
{
    static SqairConfig TinyTraining(string optimizer = "adam") => new()
    {
        ImgSize = 32, GlimpseSize = 8, NWhat = 8, NUnits = 2, MaxObjects = 2, KParticles = 3, BatchSize = 8,
        SeqLen = 3, CurriculumStart = 2, StageItr = 4, Optimizer = optimizer, LearningRate = 1e-3, LrSchedule = [1],
        MaxTrainIter = 40, LogItr = 5, EvalItr = 20, FigItr = 20, CkptItr = 20, EvalSize = 16, TrainSize = 64, ValidSize = 16,
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
        var trainer = new Trainer(c, dir, train, valid, CPU);
        Assert.Equal(TrainOutcome.Completed, trainer.Run(CancellationToken.None));
        var losses = LoggedLosses(dir);
        Assert.Equal(8, losses.Length);
        Assert.True(losses[^2..].Average() < losses[..2].Average() - 20, $"losses: {string.Join(", ", losses)}");
        Assert.True(File.Exists(Path.Combine(dir, "config.json")));
        Assert.Equal(2, Checkpoint.InRun(dir).Count());
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(dir, "figures"), "sequence-*.png"));
        Assert.NotEmpty(Directory.GetFiles(dir, "events.out.tfevents.*"));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Interrupted_and_resumed_training_equals_uninterrupted_training(int shards)
    {
        var c = TinyTraining("rmsprop") with { MaxTrainIter = 8, CkptItr = 100, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        int threads = get_num_threads();

        var straightDir = TestUtil.TempDir();
        var straight = new Trainer(c, straightDir, train, valid, CPU, shards: shards);
        straight.Run(CancellationToken.None);

        var resumedDir = TestUtil.TempDir();
        using var cts = new CancellationTokenSource();
        var first = new Trainer(c, resumedDir, train, valid, CPU, shards: shards);
        Assert.Equal(TrainOutcome.Interrupted, first.Run(cts.Token, p => { if (p.Iteration == 3) cts.Cancel(); }));
        Assert.Equal(3, first.Iteration);
        manual_seed(12345); // whatever happens in between must not matter
        set_num_threads(threads);
        var second = new Trainer(c, resumedDir, train, valid, CPU, resume: true, shards: shards);
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
        new Trainer(c, dir, train, valid, CPU).Run(CancellationToken.None);
        var longer = new Trainer(c with { MaxTrainIter = 4, TimeLimitMin = 5 }, dir, train, valid, CPU, resume: true);
        Assert.Equal(TrainOutcome.Completed, longer.Run(CancellationToken.None));
        Assert.Equal(4, longer.Iteration);
        var e = Assert.Throws<ArgumentException>(() => new Trainer(c with { MaxTrainIter = 6, OutputStd = 0.2 }, dir, train, valid, CPU, resume: true));
        Assert.Contains("output_std", e.Message);
    }

    [Fact]
    public void A_run_out_of_time_still_saves_measures_and_draws_its_final_model()
    {
        var c = TinyTraining() with { TimeLimitMin = 0.0005, MaxTrainIter = 1000, CkptItr = 100, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        var trainer = new Trainer(c, dir, train, valid, CPU);
        // sleeping past the 30 ms limit after the first step makes the run stop at iteration 1
        Assert.Equal(TrainOutcome.TimeLimit, trainer.Run(CancellationToken.None, _ => Thread.Sleep(50)));
        Assert.Equal(1, trainer.Iteration);
        Assert.EndsWith("step-000000001.safetensors", Checkpoint.InRun(dir).Single());
        var valids = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(n => (string)n["split"]! == "valid");
        Assert.Equal(1, (long)Assert.Single(valids)["iteration"]!);
        Assert.Single(Directory.GetFiles(Path.Combine(dir, "figures"), "sequence-*.png"));
    }

    [Fact]
    public void A_corrupt_checkpoint_gives_a_clear_error_and_overwrites_nothing()
    {
        var c = TinyTraining() with { MaxTrainIter = 2, CkptItr = 1, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        new Trainer(c, dir, train, valid, CPU).Run(CancellationToken.None);
        var newest = Checkpoint.InRun(dir).First();
        var bytes = File.ReadAllBytes(newest);
        File.WriteAllBytes(newest, bytes[..(bytes.Length / 2)]);
        var before = Directory.GetFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);

        var e = Assert.Throws<InvalidDataException>(() => new Trainer(c, dir, train, valid, CPU, resume: true));
        Assert.Contains(newest, e.Message);
        Assert.Contains("truncated", e.Message);
        var after = Directory.GetFiles(dir, "*", SearchOption.AllDirectories);
        Assert.Equal(before.Keys.Order(), after.Order());
        foreach (var f in after) Assert.Equal(before[f], File.ReadAllBytes(f));

        var garbage = Path.Combine(dir, "junk.safetensors");
        File.WriteAllBytes(garbage, new byte[100]);
        Assert.Throws<InvalidDataException>(() => Checkpoint.Read(garbage));
    }

    [Fact]
    public void Repeated_non_finite_steps_are_skipped_then_the_last_good_checkpoint_is_restored()
    {
        var c = TinyTraining() with { MaxTrainIter = 30, CkptItr = 2, EvalItr = 100, FigItr = 100 };
        var (train, valid) = Data(c);
        var dir = TestUtil.TempDir();
        var messages = new List<string>();
        var trainer = new Trainer(c, dir, train, valid, CPU, messages.Add);
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

public class ConfigTests
{
    [Fact]
    public void Unknown_keys_are_named_with_a_suggestion()
    {
        var e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["output_sdt=0.2"]));
        Assert.Contains("'output_sdt'", e.Message);
        Assert.Contains("output_std", e.Message);
    }

    [Fact]
    public void Bad_values_are_named()
    {
        var e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["batch_size=many"]));
        Assert.Contains("batch_size", e.Message);
        e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["output_std=-1"]));
        Assert.Contains("output_std", e.Message);
        e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["model=cnn"]));
        Assert.Contains("model", e.Message);
    }

    [Fact]
    public void Json_files_and_overrides_apply_and_errors_name_the_file()
    {
        var dir = TestUtil.TempDir();
        var good = Path.Combine(dir, "good.json");
        File.WriteAllText(good, """{ "output_std": 0.2, "disc_step_bias": 2.5, "model": "conv" }""");
        var c = SqairConfig.FromJsonFile(good).With(["learning_rate=3e-4"]);
        Assert.Equal((0.2, 2.5, ModelKind.Conv, 3e-4), (c.OutputStd, c.DiscStepBias, c.Kind, c.LearningRate));

        var bad = Path.Combine(dir, "bad.json");
        File.WriteAllText(bad, """{ "prop_step_bias": 5, "scale_priorr": -2 }""");
        var e = Assert.Throws<ArgumentException>(() => SqairConfig.FromJsonFile(bad));
        Assert.Contains(bad, e.Message);
        Assert.Contains("scale_priorr", e.Message);

        File.WriteAllText(bad, "{ not json");
        e = Assert.Throws<ArgumentException>(() => SqairConfig.FromJsonFile(bad));
        Assert.Contains(bad, e.Message);
    }

    [Fact]
    public void Config_round_trips_through_json()
    {
        var c = Presets.Get("cpu");
        var back = new SqairConfig().With(JsonNode.Parse(c.ToJson())!.AsObject(), "test");
        Assert.Equal(c.ToJson(), back.ToJson());
    }

    [Fact]
    public void Paper_schedule_divides_the_rate_by_3_at_the_4_6_10_splits_and_grows_the_curriculum()
    {
        var c = Presets.Get("paper");
        Assert.Equal(1e-5, c.LearningRateAt(0), 15);
        Assert.Equal(1e-5, c.LearningRateAt(399_999), 15);
        Assert.Equal(1e-5 / 3, c.LearningRateAt(400_000), 15);
        Assert.Equal(1e-5 / 3, c.LearningRateAt(999_999), 15);
        Assert.Equal(1e-5 / 9, c.LearningRateAt(1_000_000), 15);
        Assert.Equal(3, c.SeqLenAt(0));
        Assert.Equal(3, c.SeqLenAt(99_999));
        Assert.Equal(4, c.SeqLenAt(100_000));
        Assert.Equal(10, c.SeqLenAt(700_000));
        Assert.Equal(10, c.SeqLenAt(1_900_000));
        Assert.Equal((0.9, "rmsprop", 32, 5), (0.9, c.Optimizer, c.BatchSize, c.KParticles));
    }
}
