using Sqair.Model;
using Sqair.Objective;
using Sqair.Tests.Model;
using Sqair.Training;
using static TorchSharp.torch;

namespace Sqair.Tests.Training;

public class GradientStepTests
{
    /// <summary>
    /// A batch split over threads gives the gradient of the whole batch's loss: the size-weighted
    /// sum of each shard's gradient, computed here one shard after another with the same generators.
    /// </summary>
    [Fact]
    public void Sharded_gradients_are_the_weighted_sum_of_the_shards_computed_in_turn()
    {
        int threads = get_num_threads();
        try
        {
            manual_seed(21);
            var c = SqairModelTests.Tiny(discBias: 0.5);
            var m = new SqairModel(c);
            var frames = SqairModelTests.Frames(3, 5);

            var (loss, output) = new GradientStep(m, shards: 2).Run(frames, c.KParticles, seed: 9, iteration: 4);
            var sharded = m.named_parameters().Where(p => p.parameter.grad is not null)
                .ToDictionary(p => p.name, p => p.parameter.grad!.clone());
            Assert.Equal(new long[] { 5, c.KParticles }, output.LogWeights.shape);
            Assert.Equal(new long[] { 3, 5, c.KParticles }, output.Counts.shape);

            m.zero_grad();
            double serialLoss = 0;
            var sizes = new long[] { 3, 2 };
            var parts = frames.split(sizes, 1);
            for (int i = 0; i < 2; i++)
            {
                using var g = new Generator(GradientStep.ShardSeed(9, 4, i));
                var o = m.Forward(parts[i], c.KParticles, generator: g);
                var (l, _) = Vimco.Surrogate(o.LogWeights, o.LogQDiscrete, 3);
                double weight = sizes[i] / 5.0;
                serialLoss += l.item<float>() * weight;
                (l * weight).backward();
            }
            Assert.Equal(serialLoss, loss, 4);
            foreach (var (name, p) in m.named_parameters())
            {
                if (p.grad is null) { Assert.False(sharded.ContainsKey(name), name); continue; }
                Assert.True(sharded[name].allclose(p.grad, rtol: 1e-5, atol: 1e-6),
                            $"{name}: sharded gradient differs");
            }
        }
        finally { set_num_threads(threads); }
    }

    [Fact]
    public void Shard_seeds_differ_by_iteration_and_shard()
    {
        var seeds = new HashSet<ulong>();
        for (long it = 0; it < 100; it++)
            for (int s = 0; s < 4; s++) Assert.True(seeds.Add(GradientStep.ShardSeed(0, it, s)));
        Assert.NotEqual(GradientStep.ShardSeed(0, 1, 0), GradientStep.ShardSeed(1, 1, 0));
    }
}
