using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Inference;
using Sqair.Model;
using Sqair.Tests.Model;
using static TorchSharp.torch;

namespace Sqair.Tests.Evaluation;

public class EvaluatorTests
{
    /// <summary>
    /// Every sequence samples from a generator seeded by its position, so nothing sampled before changes a
    /// report, nor does cutting each batch into one shard per thread (two threads) or not (one).
    /// </summary>
    [Fact]
    public void A_report_does_not_depend_on_earlier_sampling_or_on_the_threads_that_shard_it()
    {
        int threads = get_num_threads();
        try
        {
            manual_seed(3);
            var c = SqairModelTests.Tiny(discBias: 0.5) with { SeqLen = 4, ImgSize = 32 };
            var model = new SqairModel(c);
            var source = new GeneratedSource(new MovingMnist(c.DataConfig(), TestUtil.Templates(50, 4), 4));
            set_num_threads(2);
            var one = Evaluator.Run(model, source, 7, new InferenceOptions(2), 3, CPU).Flat();
            Assert.Equal(2, get_num_threads()); // the caller gets its thread count back from the shards
            randn(100);   // the global generator moves on; the report must not
            set_num_threads(1);
            var two = Evaluator.Run(model, source, 7, new InferenceOptions(2), 3, CPU).Flat();
            Assert.Equal(7, one["sequences"]);
            // the same samples; only libtorch's float32 kernels may round differently for a row's place in a
            // smaller shard, and a mean near 0 (log p(x|z) of an untrained model) is a difference of two terms of
            // about 290 nats per row (1 024 pixels, σ = 0.3), whose float32 spacing is 3·10⁻⁵: hence an absolute
            // allowance of 10⁻⁴ beside the relative 10⁻⁵
            foreach (var (key, value) in one)
                Assert.True(value.Equals(two[key]) || Math.Abs(value - two[key]) <= 1e-4 + 1e-5 * Math.Abs(value),
                            $"{key}: {value} in two shards, {two[key]} after other sampling on one thread");
        }
        finally { set_num_threads(threads); }
    }

    /// <summary>Every sequence samples from its own generator, so batching changes memory, not the report.</summary>
    [Fact]
    public void A_report_does_not_depend_on_the_batch_size()
    {
        manual_seed(4);
        var c = SqairModelTests.Tiny(discBias: 0.5) with { SeqLen = 4, ImgSize = 32 };
        var model = new SqairModel(c);
        var source = new GeneratedSource(new MovingMnist(c.DataConfig(), TestUtil.Templates(50, 4), 4));
        var options = new InferenceOptions(3, Resampling.Ess);
        var reports = new[] { 7, 3, 2 }.Select(batch => Evaluator.Run(model, source, 7, options, batch, CPU).Flat())
            .ToArray();
        Assert.True(reports[0]["false_positives"] + reports[0]["gt_boxes"] - reports[0]["misses"] > 0,
                    "hypotheses to score");
        foreach (var other in reports[1..])
            foreach (var (key, value) in reports[0])
                Assert.True(value.Equals(other[key]) || Math.Abs(value - other[key]) <= 1e-5 * Math.Abs(value),
                            $"{key}: {value} in one batch of 7, {other[key]} in smaller batches");
    }
}
