using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Model;
using Sqair.Tests.Model;
using static TorchSharp.torch;

namespace Sqair.Tests.Evaluation;

public class EvaluatorTests
{
    /// <summary>
    /// Every batch samples from a generator seeded by its position, so nothing sampled before changes a report.
    /// </summary>
    [Fact]
    public void A_report_does_not_depend_on_earlier_sampling_or_the_thread_count()
    {
        int threads = get_num_threads();
        try
        {
            manual_seed(3);
            var c = SqairModelTests.Tiny(discBias: 0.5) with { SeqLen = 4, ImgSize = 32 };
            var model = new SqairModel(c);
            var source = new GeneratedSource(new MovingMnist(c.DataConfig(), TestUtil.Templates(50, 4), 4));
            var one = Evaluator.Run(model, source, 7, new InferenceOptions(2), 3, CPU).Flat();
            randn(100);   // the global generator moves on; the report must not
            set_num_threads(1);
            var two = Evaluator.Run(model, source, 7, new InferenceOptions(2), 3, CPU).Flat();
            Assert.Equal(7, one["sequences"]);
            // the same samples; only float32 sums in libtorch may add in another order at another thread count
            foreach (var (key, value) in one)
                Assert.True(value.Equals(two[key]) || Math.Abs(value - two[key]) <= 1e-6 * Math.Abs(value),
                            $"{key}: {value} first, {two[key]} after other sampling on one thread");
        }
        finally { set_num_threads(threads); }
    }
}
