using Sqair.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Tests.Model;

public class DistributionTests
{
    [Fact]
    public void Normal_and_Bernoulli_log_probs_match_closed_forms()
    {
        var lp = Distributions.NormalLogProb(tensor(1.5f), tensor(0.5f), tensor(2.0f)).item<float>();
        Assert.Equal(-0.5 * 0.25 - Math.Log(2) - 0.5 * Math.Log(2 * Math.PI), lp, 5);
        // the sample 0.5 + 2·0.5 = 1.5 scored from its noise 0.5 and scale 2
        Assert.Equal(lp, Distributions.NoiseLogProb(tensor(0.5f), tensor(2.0f)).item<float>(), 5);
        var b = Distributions.BernoulliLogProb(tensor(new float[] { 1, 0 }), tensor(new float[] { 0.3f, 0.3f }))
            .data<float>().ToArray();
        double p = 1 / (1 + Math.Exp(-0.3));
        Assert.Equal(Math.Log(p), b[0], 5);
        Assert.Equal(Math.Log(1 - p), b[1], 5);
        // gated logits give ~zero probability, finite log-probabilities
        var gated = Distributions.GateLogits(tensor(50f), tensor(0f));
        Assert.Equal(0.0, Distributions.BernoulliLogProb(tensor(0f), gated).item<float>(), 6);
    }

    /// <summary>
    /// Enumerates all presence sequences with AIR's gating (a step needs the previous one and j &lt; A).
    /// </summary>
    static double[] BruteForce(double[] p, int allowed)
    {
        int n = p.Length;
        var mass = new double[n + 1];
        for (int bits = 0; bits < 1 << n; bits++)
        {
            double prob = 1;
            bool gate = true;
            int count = 0;
            for (int j = 0; j < n; j++)
            {
                bool z = (bits >> j & 1) == 1;
                bool open = gate && j < allowed;
                double pj = open ? p[j] : 0;
                prob *= z ? pj : 1 - pj;
                gate = z;
                count += z ? 1 : 0;
            }
            mass[count] += prob;
        }
        return mass;
    }

    [Fact]
    public void Number_of_steps_posterior_from_the_gated_steps_equals_brute_force_and_sums_to_one()
    {
        var rng = new Random(5);
        for (int trial = 0; trial < 50; trial++)
        {
            int n = rng.Next(1, 6);
            var logits = Enumerable.Range(0, n).Select(_ => rng.NextDouble() * 6 - 3).ToArray();
            int allowed = rng.Next(0, n + 1);
            var expected = BruteForce(logits.Select(l => 1 / (1 + Math.Exp(-l))).ToArray(), allowed);
            double total = 0;
            for (int count = 0; count <= allowed; count++)
            {
                // the steps discovery samples for this count: present up to it, gates open for j ≤ count and j < A
                var present = Enumerable.Range(0, n).Select(j => j < count ? 1.0 : 0.0).ToArray();
                var gated = Enumerable.Range(0, n)
                    .Select(j => j <= count && j < allowed ? logits[j] : Distributions.AbsentLogit).ToArray();
                double q = Math.Exp(
                    Distributions.StepsLogProb(tensor(present, dtype: ScalarType.Float64),
                                               tensor(gated, dtype: ScalarType.Float64)).item<double>());
                Assert.Equal(expected[count], q, 10);
                total += q;
            }
            Assert.Equal(1.0, total, 10);
            for (int count = allowed + 1; count <= n; count++) Assert.Equal(0.0, expected[count]);
        }
    }
}
