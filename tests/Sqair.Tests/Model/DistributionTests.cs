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
        var b = Distributions.BernoulliLogProb(tensor(new float[] { 1, 0 }), tensor(new float[] { 0.3f, 0.3f })).data<float>().ToArray();
        double p = 1 / (1 + Math.Exp(-0.3));
        Assert.Equal(Math.Log(p), b[0], 5);
        Assert.Equal(Math.Log(1 - p), b[1], 5);
        // gated logits give ~zero probability, finite log-probabilities
        var gated = Distributions.GateLogits(tensor(50f), tensor(0f));
        Assert.Equal(0.0, Distributions.BernoulliLogProb(tensor(0f), gated).item<float>(), 6);
    }

    /// <summary>Enumerates all presence sequences with AIR's gating (a step needs the previous one and j &lt; A).</summary>
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
    public void Number_of_steps_posterior_equals_brute_force_and_has_no_mass_past_the_cap()
    {
        var rng = new Random(5);
        for (int trial = 0; trial < 50; trial++)
        {
            int n = rng.Next(1, 6);
            var logits = Enumerable.Range(0, n).Select(_ => rng.NextDouble() * 6 - 3).ToArray();
            int allowed = rng.Next(0, n + 1);
            var logq = Distributions.NumStepsLogProbs(tensor(logits, dtype: ScalarType.Float64).unsqueeze(0),
                                                      tensor(new double[] { allowed }, dtype: ScalarType.Float64));
            var q = logq.exp().squeeze(0).data<double>().ToArray();
            var expected = BruteForce(logits.Select(l => 1 / (1 + Math.Exp(-l))).ToArray(), allowed);
            Assert.Equal(1.0, q.Sum(), 10);
            for (int i = 0; i <= n; i++) Assert.Equal(expected[i], q[i], 10);
            for (int i = allowed + 1; i <= n; i++) Assert.Equal(0.0, q[i]);
        }
    }
}
