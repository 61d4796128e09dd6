using System.Text.Json.Nodes;
using Sqair.Model;
using Sqair.Training;

namespace Sqair.Tests.Model;

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
        // absurd sizes stop before they allocate; the bounds themselves are allowed
        e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["max_objects=1000000"]));
        Assert.Contains("max_objects", e.Message);
        e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["k_particles=100000"]));
        Assert.Contains("k_particles", e.Message);
        Assert.Equal(64, new SqairConfig().With(["max_objects=64"]).MaxObjects);
    }

    [Fact]
    public void The_data_keys_follow_the_data_rules_stated_once()
    {
        // the run config reports the data config's rule under its own key names
        var e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["digit_scale=5"]));
        Assert.Contains("config key 'digit_scale' = 5: must be in [1/28, 4]", e.Message);
        e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["min_digits=3", "max_digits=2"]));
        Assert.Contains("'max_digits'", e.Message);
        e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["digit_scale_min=1.2"]));
        Assert.Contains("config key 'digit_scale_min' = 1.2: must be in [1/28, digit_scale = 1]", e.Message);
        Assert.Equal(0.7, new SqairConfig().With(["digit_scale_min=0.7"]).DataConfig().DigitScaleMin);
        e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["channels=2"]));
        Assert.Contains("'channels'", e.Message);
        // a model of frames smaller than a digit is fine; generating such frames is not
        var small = new SqairConfig().With(["img_size=16", "glimpse_size=8"]);
        Assert.Equal(16, small.ImgSize);
        e = Assert.Throws<ArgumentException>(() => small.DataConfig().Validate());
        Assert.Contains("'canvas_size' = 16", e.Message);
    }

    [Fact]
    public void Json_files_and_overrides_apply_and_errors_name_the_file()
    {
        var dir = TestUtil.TempDir();
        var good = Path.Combine(dir, "good.json");
        File.WriteAllText(good, """{ "output_std": 0.2, "disc_step_bias": 2.5, "model": "conv" }""");
        var c = SqairConfig.FromJsonFile(good).With(["learning_rate=3e-4"]);
        Assert.Equal((0.2, 2.5, ModelKind.Conv, 3e-4), (c.OutputStd, c.DiscStepBias, c.Model, c.LearningRate));

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
        Assert.Equal((OptimizerKind.Rmsprop, 32, 5), (c.Optimizer, c.BatchSize, c.KParticles));
    }

    [Fact]
    public void Every_key_is_described_by_the_first_sentence_of_its_doc_comment()
    {
        Assert.All(SqairConfig.Keys.Keys, k => Assert.NotEqual($"config key {k}", SqairConfig.Describe(k)));
        // <see cref="…"/> becomes its last name; "e.g." and "1.5" do not end the sentence.
        Assert.Equal("Iterations that lr_schedule's stages span; 0: max_train_iter",
                     SqairConfig.Describe("lr_schedule_itr"));
        Assert.Equal("config key no_such_key", SqairConfig.Describe("no_such_key"));
        // a reference to another key's property is that key, as the user types it
        Assert.EndsWith("or data when that is given)", SqairConfig.Describe("valid_data"));
    }

    [Fact]
    public void An_absent_path_is_null_and_configs_written_with_empty_strings_still_read()
    {
        var fresh = Presets.Get("cpu");
        Assert.Null(fresh.Data);
        Assert.Contains("\"data\": null", fresh.ToJson());
        // configs and checkpoints written before these keys were null hold ""
        var old = fresh.With(new JsonObject
        {
            ["data"] = "", ["valid_data"] = "", ["data_checksum"] = "", ["valid_data_checksum"] = "", ["init"] = "",
        }, "old config");
        Assert.Equal((null, null, null, null, null),
                     (old.Data, old.ValidData, old.DataChecksum, old.ValidDataChecksum, old.Init));
        Assert.Empty(fresh.DifferingKeys(old));
    }
}
