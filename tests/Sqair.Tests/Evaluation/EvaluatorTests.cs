using Sqair.Data;
using Sqair.Evaluation;
using Sqair.Model;
using Sqair.Tests.Model;
using static TorchSharp.torch;

namespace Sqair.Tests.Evaluation;

public class EvaluatorTests
{
    /// <summary>Every batch samples from a generator seeded by its position, so the number of workers changes no sample.</summary>
    [Fact]
    public void A_report_is_the_same_for_any_number_of_workers_and_after_other_sampling()
    {
        int threads = get_num_threads();
        try
        {
            manual_seed(3);
            var c = SqairModelTests.Tiny(discBias: 0.5) with { SeqLen = 4, ImgSize = 32 };
            var model = new SqairModel(c);
            var source = new GeneratedSource(new MovingMnist(c.DataConfig(), TestUtil.Templates(50, 4), 4));
            var one = Evaluator.Run(model, source, 7, 2, 3, CPU, workers: 1).Flat();
            randn(100);   // the global generator moves on; the report must not
            var two = Evaluator.Run(model, source, 7, 2, 3, CPU, workers: 2).Flat();
            Assert.Equal(7, one["sequences"]);
            // the same samples; only libtorch's reductions may add in another order at another thread count
            foreach (var (key, value) in one)
                Assert.True(value.Equals(two[key]) || Math.Abs(value - two[key]) <= 1e-9 * Math.Abs(value),
                            $"{key}: {value} with one worker, {two[key]} with two");
        }
        finally { set_num_threads(threads); }
    }
}
