using Sqair.Evaluation;
using Sqair.Inference;
using Sqair.Model;
using static TorchSharp.torch;

namespace Sqair.Tests.Model;

public class NoiseTests
{
    [Fact]
    public void Every_site_and_slot_reads_its_own_columns_and_together_they_fill_the_frame()
    {
        using var noise = new SequenceNoise(SqairModelTests.Tiny(), seed: 0, first: 0, count: 1);
        var owner = new Site?[noise.Width];
        foreach (var site in Enum.GetValues<Site>())
            for (int slot = 0; slot < noise.SlotsOf(site); slot++)
            {
                var (start, width) = noise.ColumnsOf(site, slot);
                for (int col = start; col < start + width; col++)
                {
                    Assert.Null(owner[col]);
                    owner[col] = site;
                }
            }
        Assert.All(owner, o => Assert.NotNull(o));
        // Tiny: N = 3, D = 4: 3 × (4 + 4 + 1) for each of propagation and discovery, dropout, resampling
        Assert.Equal(2 * 3 * 9 + 2, noise.Width);
        Assert.Throws<ArgumentOutOfRangeException>(() => noise.ColumnsOf(Site.Resampling, 1));
    }

    [Fact]
    public void Normals_from_uniforms_are_standard_normal_and_finite()
    {
        using var noise = new SequenceNoise(SqairModelTests.Tiny(), seed: 4, first: 0, count: 400);
        var draws = new List<float>();
        for (int frame = 0; frame < 3; frame++)
        {
            noise.BeginFrame(400, 5, CPU);
            draws.AddRange(noise.Normal(zeros(2000, 4), Site.DiscoveredWhat, 1).data<float>().ToArray());
        }
        Assert.All(draws, x => Assert.True(float.IsFinite(x)));
        double mean = draws.Average(), sd = Math.Sqrt(draws.Average(x => (x - mean) * (x - mean)));
        Assert.InRange(mean, -0.01, 0.01);   // 24 000 draws: the standard error is 0.0065
        Assert.InRange(sd, 0.985, 1.015);
        Assert.InRange(draws.Count(x => x < -1.96) / (double)draws.Count, 0.02, 0.03);
    }

    [Fact]
    public void A_sequence_draws_the_same_noise_in_any_batch_and_another_at_another_index()
    {
        manual_seed(5);
        var model = new SqairModel(SqairModelTests.Tiny(discBias: 0.5));
        var frames = SqairModelTests.Frames(5, 4);
        var options = new InferenceOptions(3, Resampling.Always);
        var whole = Infer.Run(model, frames, options, seed: 2, stop: TestContext.Current.CancellationToken);
        var parts = new[] { (0, 1), (1, 3) }.Select(p =>
            Infer.Run(model, frames.narrow(1, p.Item1, p.Item2), options, seed: 2, first: p.Item1)).ToArray();
        var wholeBoxes = whole.Boxes(BoxKind.Content);
        var partBoxes = parts.SelectMany(p => p.Boxes(BoxKind.Content)).ToArray();
        Assert.True(wholeBoxes.Sum(s => s.Sum(f => f.Count)) > 5, "enough objects to compare");
        // the same samples: the same objects and ids, boxes equal up to float rounding of batched products
        for (int b = 0; b < 4; b++)
            for (int t = 0; t < 5; t++)
            {
                Assert.Equal(wholeBoxes[b][t].Select(x => x.Id), partBoxes[b][t].Select(x => x.Id));
                foreach (var (w, p) in wholeBoxes[b][t].Zip(partBoxes[b][t]))
                    Assert.True(Math.Abs(w.Y - p.Y) + Math.Abs(w.X - p.X) + Math.Abs(w.H - p.H) + Math.Abs(w.W - p.W)
                                < 1e-3, $"sequence {b}, frame {t}: {w} in the whole batch, {p} in a part");
            }
        var partWeights = cat(parts.Select(p => p.Output.LogWeights).ToArray());
        Assert.True(allclose(whole.Output.LogWeights, partWeights, rtol: 1e-5, atol: 1e-3));
        // the same frames as other sequence numbers: other noise
        var moved = Infer.Run(model, frames, options, seed: 2, first: 1, stop: TestContext.Current.CancellationToken);
        Assert.False(allclose(whole.Output.LogWeights, moved.Output.LogWeights, rtol: 1e-5, atol: 1e-3));
    }
}
