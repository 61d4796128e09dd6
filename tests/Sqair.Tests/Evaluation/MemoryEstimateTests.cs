using Sqair.Evaluation;
using Sqair.Jobs;
using Sqair.Model;
using Sqair.Training;

namespace Sqair.Tests.Evaluation;

public class MemoryEstimateTests
{
    const long Gb = 1L << 30;

    [Fact]
    public void The_paper_config_estimate_is_near_the_measured_peak()
    {
        // measured peak RSS of `sqair eval --count 160 --batch-size 160` (K = 5: 800 rows, 10 frames): 1.23 GB
        double gb = MemoryEstimate.InferenceBytes(Presets.Get("paper"), rows: 800, keptFrames: 10) / (double)Gb;
        Assert.InRange(gb, 1.0, 1.5);
        // more objects, rows or frames need more
        var c = Presets.Get("paper");
        double base800 = MemoryEstimate.InferenceBytes(c, 800, 10);
        Assert.True(MemoryEstimate.InferenceBytes(c with { MaxObjects = 6 }, 800, 10) > base800);
        Assert.True(MemoryEstimate.InferenceBytes(c, 1600, 10) > base800);
        Assert.True(MemoryEstimate.InferenceBytes(c, 800, 100) > base800);
    }

    [Fact]
    public void A_batch_that_cannot_fit_is_refused_with_the_largest_that_does()
    {
        var c = Presets.Get("paper");
        long available = 4 * Gb;
        var e = Assert.Throws<ArgumentException>(() =>
            MemoryEstimate.Check(c, batch: 5000, k: 5, keptFrames: 10, available, MemoryEstimate.Inference));
        Assert.Contains("--batch-size 5000 with --k 5", e.Message);
        var suggested = long.Parse(
            System.Text.RegularExpressions.Regex.Match(e.Message, @"use --batch-size (\d+) or less").Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture);
        // the suggestion fits and one more sequence would not
        MemoryEstimate.Check(c, suggested, 5, 10, available, MemoryEstimate.Inference);
        Assert.Throws<ArgumentException>(() =>
            MemoryEstimate.Check(c, suggested + 1, 5, 10, available, MemoryEstimate.Inference));
        // not even one sequence fits: lower K
        e = Assert.Throws<ArgumentException>(() =>
            MemoryEstimate.Check(c, 1, 100_000, 10, available, MemoryEstimate.Inference));
        Assert.Contains("lower --k", e.Message);
        // a held frame count past what counts in an int is refused and blamed on its option, not on --k
        var lag = MemoryEstimate.Inference with { Frames = "--lag" };
        e = Assert.Throws<ArgumentException>(() => MemoryEstimate.Check(c, 1, 1, int.MaxValue + 1L, available, lag,
                                                                       shownFrames: int.MaxValue));
        Assert.Contains("--lag 2147483647", e.Message);
        var most = long.Parse(
            System.Text.RegularExpressions.Regex.Match(e.Message, @"lower --lag to (\d+) or less").Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture);
        MemoryEstimate.Check(c, 1, 1, most + 1, available, lag, shownFrames: most);
        Assert.Throws<ArgumentException>(() => MemoryEstimate.Check(c, 1, 1, most + 2, available, lag, most + 1));
        // unknown available memory: no check
        MemoryEstimate.Check(c, 1_000_000, 5, 10, available: null, MemoryEstimate.Inference);
    }

    [Fact]
    public void A_training_step_that_cannot_fit_names_the_key_to_lower()
    {
        var c = Presets.Get("paper");
        long available = 8 * Gb;
        var keys = new MemoryEstimate.Options("batch_size", "k_particles", "seq_len");
        // the default config fits (training may use up to 2 GB by design)
        MemoryEstimate.CheckTraining(c, 32, 5, 10, available, keys);
        Assert.InRange(MemoryEstimate.TrainingBytes(c, 160, 10) / Gb, 0.95, 2.0);
        var e = Assert.Throws<ArgumentException>(() => MemoryEstimate.CheckTraining(c, 64, 1000, 10, available, keys));
        Assert.Contains("batch_size 64 with k_particles 1000, seq_len 10", e.Message);
        Assert.Contains("or less", e.Message);
        e = Assert.Throws<ArgumentException>(() =>
            MemoryEstimate.CheckTraining(c with { ImgSize = 100_000 }, 32, 5, 10, available, keys));
        Assert.Contains("not even one frame with k_particles 1 fits at img_size 100000", e.Message);
    }
}
