using Sqair.Evaluation;
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
        long base800 = MemoryEstimate.InferenceBytes(c, 800, 10);
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
            MemoryEstimate.Check(c, batch: 5000, k: 5, keptFrames: 10, available, "--batch-size"));
        Assert.Contains("--batch-size 5000 with K = 5", e.Message);
        var suggested = long.Parse(
            System.Text.RegularExpressions.Regex.Match(e.Message, @"use --batch-size (\d+) or less").Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture);
        // the suggestion fits and one more sequence would not
        MemoryEstimate.Check(c, suggested, 5, 10, available, "--batch-size");
        Assert.Throws<ArgumentException>(() =>
            MemoryEstimate.Check(c, suggested + 1, 5, 10, available, "--batch-size"));
        // not even one sequence fits: lower K
        e = Assert.Throws<ArgumentException>(() => MemoryEstimate.Check(c, 1, 100_000, 10, available, "--batch-size"));
        Assert.Contains("lower --k", e.Message);
        // unknown available memory: no check
        MemoryEstimate.Check(c, 1_000_000, 5, 10, available: null, "--batch-size");
    }
}
