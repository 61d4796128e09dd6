using Sqair.Objective;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Tests.Objective;

public class VimcoTests
{
    [Fact]
    public void Leave_one_out_replaces_each_weight_by_the_mean_of_the_others()
    {
        var logW = tensor(new[] { 1.0, 2.0, 4.0 }, dtype: ScalarType.Float64).unsqueeze(0);
        var loo = Vimco.LeaveOneOut(logW).data<double>().ToArray();
        static double Lme(params double[] x) => Math.Log(x.Select(Math.Exp).Average());
        Assert.Equal(Lme(3, 2, 4), loo[0], 10);
        Assert.Equal(Lme(1, 2.5, 4), loo[1], 10);
        Assert.Equal(Lme(1, 2, 1.5), loo[2], 10);
        Assert.Equal(Lme(1, 2, 4), Iwae.LogMeanExp(logW).item<double>(), 10);
    }

    [Fact]
    public void The_original_signal_is_each_log_weight_minus_its_leave_one_out_bound()
    {
        var logW = tensor(new[] { 1.0, 2.0, 4.0 }, dtype: ScalarType.Float64).unsqueeze(0);
        var loo = Vimco.LeaveOneOut(logW).data<double>().ToArray();
        var paper = Vimco.LearningSignal(logW).data<double>().ToArray();
        var original = Vimco.LearningSignal(logW, original: true).data<double>().ToArray();
        double bound = Iwae.LogMeanExp(logW).item<double>();
        for (int k = 0; k < 3; k++)
        {
            Assert.Equal(bound - loo[k], paper[k], 10);
            Assert.Equal(new[] { 1.0, 2.0, 4.0 }[k] - loo[k], original[k], 10);
        }
        // the original averages its score-function term over the particles, the paper's sums it
        var logQ = tensor(new[] { -0.5, -1.0, -2.0 }, dtype: ScalarType.Float64).unsqueeze(0);
        double score = Enumerable.Range(0, 3).Sum(k => original[k] * logQ[0, k].item<double>());
        Assert.Equal(-bound - score / 3,
                     Vimco.Surrogate(logW, logQ, seqLen: 1, original: true).Loss.item<double>(), 10);
        double paperScore = Enumerable.Range(0, 3).Sum(k => paper[k] * logQ[0, k].item<double>());
        Assert.Equal((-bound - paperScore) / 2, Vimco.Surrogate(logW, logQ, seqLen: 2).Loss.item<double>(), 10);
    }

    /// <summary>
    /// A tiny model with one Bernoulli variable per particle, q(z) = Bernoulli(sigmoid(φ)), and
    /// log w = a·z − log q(z). Enumerating all 2^K particle configurations gives the exact gradient
    /// of E[L] and the exact expectation of the VIMCO surrogate's gradient; they must agree.
    /// </summary>
    [Fact]
    public void Expected_surrogate_gradient_equals_the_exact_gradient_of_the_expected_bound()
    {
        const int K = 3;
        const double a = 1.7;
        var phi = tensor(0.4, dtype: ScalarType.Float64, requires_grad: true);
        Tensor LogQ(Tensor z) => z * nn.functional.logsigmoid(phi) + (1 - z) * nn.functional.logsigmoid(-phi);

        var exact = zeros(1, dtype: ScalarType.Float64);
        var surrogateGrad = 0.0;
        for (int bits = 0; bits < 1 << K; bits++)
        {
            var z = tensor(Enumerable.Range(0, K).Select(k => (double)(bits >> k & 1)).ToArray(),
                           dtype: ScalarType.Float64).unsqueeze(0);
            var logq = LogQ(z);
            var logW = a * z - logq;
            var prob = logq.sum().exp();
            exact = exact + prob * Iwae.LogMeanExp(logW).sum();

            var (loss, _) = Vimco.Surrogate(logW, logq, seqLen: 1);
            var g = autograd.grad([loss], [phi], retain_graph: true)[0];
            surrogateGrad += prob.item<double>() * -g.item<double>();
        }
        var exactGrad = autograd.grad([exact.sum()], [phi])[0].item<double>();
        Assert.Equal(exactGrad, surrogateGrad, 10);
        Assert.True(Math.Abs(exactGrad) > 1e-3);
    }

    [Fact]
    public void Effective_sample_size_is_K_for_equal_weights_and_1_for_one_dominant()
    {
        var ess = Iwae.EffectiveSampleSize(tensor(new[] { 0.0, 0.0, 0.0, 0.0, -500.0, 0.0, 0.0, 0.0 },
                                                  dtype: ScalarType.Float64).view(2, 4))
            .data<double>().ToArray();
        Assert.Equal(4, ess[0], 9);
        Assert.Equal(3, ess[1], 9);
        var one = Iwae.EffectiveSampleSize(tensor(new[] { 0.0, -800.0 }, dtype: ScalarType.Float64).view(1, 2))
            .item<double>();
        Assert.Equal(1, one, 9);
    }
}
