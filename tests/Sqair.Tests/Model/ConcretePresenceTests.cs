using System.Globalization;
using Sqair.Model;
using Sqair.Training;
using TorchSharp;
using static Sqair.Model.Distributions;
using static TorchSharp.torch;

namespace Sqair.Tests.Model;

/// <summary>
/// presence_estimator (docs/design.md §4): vimco leaves the model as it was; concrete relaxes presence in
/// training only, with gradients through it, and hardens to the discrete model as the temperature falls.
/// </summary>
public class ConcretePresenceTests
{
    internal static SqairConfig Config(PresenceEstimator estimator, double tau = 1.0) =>
        SqairModelTests.Tiny(discBias: 0.5) with
        {
            PresenceEstimator = estimator,
            PresenceTemperature = tau,
            PresenceTemperatureMin = tau,
        };

    static double[] Values(Tensor t) => t.to(ScalarType.Float64).flatten().data<double>().ToArray();

    static double[] Parse(string text) =>
        [.. text.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture))];

    [Fact]
    public void Vimco_gives_the_outputs_recorded_before_the_key_existed()
    {
        // Recorded from the model as it stood before presence_estimator (same seeds, shapes and generator).
        var logWeights = Parse("-2864.078857421875,-2835.3564453125,-2842.462890625,-2814.91943359375");
        var logQDiscrete = Parse("-2.358254909515381,-2.407710552215576,-2.501624584197998,-3.159698724746704");
        var counts = Parse("2,2,0,0,3,3,3,1,3,3,3,3");
        manual_seed(5);
        var m = new SqairModel(Config(PresenceEstimator.Vimco));
        using var g = new Generator(17);
        var o = m.Forward(SqairModelTests.Frames(3, 2, seed: 3), 2, generator: g);
        Assert.Equal(logWeights, Values(o.LogWeights));
        Assert.Equal(logQDiscrete, Values(o.LogQDiscrete));
        Assert.Equal(counts, Values(o.Counts));
    }

    [Fact]
    public void Concrete_inference_is_the_discrete_models()
    {
        var outputs = new[] { PresenceEstimator.Vimco, PresenceEstimator.Concrete }.Select(estimator =>
        {
            manual_seed(5);
            var m = new SqairModel(Config(estimator));
            m.eval();
            using var g = new Generator(17);
            return m.Forward(SqairModelTests.Frames(3, 2, seed: 3), 2, generator: g);
        }).ToArray();
        Assert.Equal(Values(outputs[0].LogWeights), Values(outputs[1].LogWeights));
        Assert.Equal(Values(outputs[0].Counts), Values(outputs[1].Counts));
    }

    [Fact]
    public void The_relaxed_sample_hardens_to_the_Bernoulli_sample_of_the_same_uniform()
    {
        var logits = tensor(new[] { -3.0f, -0.5f, 0.2f, 1.0f, 4.0f, 0.0f, -1.0f, 2.0f });
        var u = tensor(new[] { 0.01f, 0.3f, 0.6f, 0.9f, 0.5f, 0.49f, 0.1f, 0.95f });
        var bernoulli = Values(u.lt(logits.sigmoid()).to(ScalarType.Float32));
        var logistic = u.log() - (1 - u).log();
        foreach (var tau in new[] { 1.0, 0.1, 1e-3 })
        {
            var (hard, relaxed, _) = Relax(logits, logistic, tau);
            Assert.Equal(bernoulli, Values(hard));
            double worst = Values((relaxed - hard).abs()).Max();
            if (tau <= 1e-3) Assert.True(worst < 1e-6, $"τ = {tau}: relaxed differs from hard by {worst}");
        }
    }

    [Fact]
    public void The_stick_breaking_chain_scores_the_count_prior_exactly()
    {
        const int n = 4;
        var logProbs = nn.functional.log_softmax(
            tensor(new[] { 0.3, -1.0, 2.0, 0.1, -0.4 }, dtype: ScalarType.Float64).unsqueeze(0), 1);
        var pi = StickBreakingLogits(logProbs);
        for (int count = 0; count <= n; count++)
        {
            // n present steps, then one absent step scored (the chain stops there)
            var present = tensor(Enumerable.Range(0, n).Select(j => j < count ? 1.0 : 0.0).ToArray(),
                                 dtype: ScalarType.Float64).unsqueeze(0);
            var scored = tensor(Enumerable.Range(0, n).Select(j => j <= count ? 1.0 : 0.0).ToArray(),
                                dtype: ScalarType.Float64).unsqueeze(0);
            double chain = (BernoulliLogProb(present, pi) * scored).sum().item<double>();
            Assert.Equal(logProbs[0, count].item<double>(), chain, 10);
        }
    }

    [Fact]
    public void The_concrete_density_ratio_does_not_depend_on_the_temperature()
    {
        // log q(x) − log p(x) at x = (l_q − L)/τ is log f(−L) − log f(l_q − l_p − L), whatever τ: this is
        // the limit the relaxed weight's presence terms keep as τ → 0 (docs/design.md §4).
        var lq = tensor(new[] { 1.0, -2.0, 0.3 }, dtype: ScalarType.Float64);
        var lp = tensor(new[] { -1.0, 0.5, 0.3 }, dtype: ScalarType.Float64);
        var noise = tensor(new[] { 0.7, -1.2, 2.0 }, dtype: ScalarType.Float64);
        double[]? first = null;
        foreach (var tau in new[] { 2.0, 0.5, 1e-3 })
        {
            var (_, _, x) = Relax(lq, noise, tau);
            var ratio = Values(ConcreteLogProb(x, lq, tau) - ConcreteLogProb(x, lp, tau));
            first ??= ratio;
            for (int i = 0; i < ratio.Length; i++) Assert.Equal(first[i], ratio[i], 10);
        }
        Assert.Equal(0, first![2], 12);   // equal logits: equal densities
    }

    /// <summary>The model on the same per-sequence noise as another estimator: training mode, K = 2.</summary>
    static SequenceOutput TrainingOutput(SqairConfig config, ulong seed = 3)
    {
        manual_seed(5);
        var m = new SqairModel(config);
        var frames = SqairModelTests.Frames(3, 2, seed: 3);
        using var noise = new SequenceNoise(config, seed, 0, 2);
        return m.Infer(frames, 2, keepFrames: false, noise).Output;
    }

    [Fact]
    public void At_a_tiny_temperature_the_relaxed_model_draws_what_the_discrete_one_draws()
    {
        // The same uniforms give the same hard presences, so the same objects, counts and canvas; the
        // log weights then differ only by the presence terms, whose Concrete ratio does not depend on τ
        // (above), so the relaxed log weight converges as τ → 0 (to the discrete one plus that difference).
        var discrete = TrainingOutput(Config(PresenceEstimator.Vimco));
        var tiny = TrainingOutput(Config(PresenceEstimator.Concrete, 1e-4));
        var tinier = TrainingOutput(Config(PresenceEstimator.Concrete, 1e-6));
        Assert.Equal(Values(discrete.Counts), Values(tiny.Counts));
        var ll = Values(discrete.LogLikelihood);
        var llTiny = Values(tiny.LogLikelihood);
        for (int i = 0; i < ll.Length; i++) Assert.Equal(ll[i], llTiny[i], 1e-3 * Math.Abs(ll[i]) + 1e-2);
        var w = Values(tiny.LogWeights);
        var w2 = Values(tinier.LogWeights);
        for (int i = 0; i < w.Length; i++) Assert.Equal(w[i], w2[i], 1e-4 * Math.Abs(w[i]) + 1e-2);
        // at a usual temperature the relaxed canvas is not the hard one
        var warm = TrainingOutput(Config(PresenceEstimator.Concrete, 1.0));
        Assert.NotEqual(ll, Values(warm.LogLikelihood));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void The_training_loss_is_finite_and_reaches_every_parameter(int shards)
    {
        manual_seed(1);
        var m = new SqairModel(Config(PresenceEstimator.Concrete, 0.5));
        var (loss, output) = new GradientStep(m, shards).Run(SqairModelTests.Frames(3, 8), 2, seed: 0, iteration: 0);
        Assert.True(double.IsFinite(loss));
        // −IWAE alone: the loss is minus the mean bound over sequences, per frame
        double bound = Sqair.Objective.Iwae.LogMeanExp(output.LogWeights).mean().item<float>();
        Assert.Equal(-bound / 3, loss, 1e-3 * Math.Abs(loss));
        var missing = m.named_parameters()
            .Where(p => p.parameter.requires_grad &&
                        (p.parameter.grad is null || p.parameter.grad.abs().sum().item<float>() == 0))
            .Select(p => p.name).ToList();
        Assert.Empty(missing);
    }

    [Fact]
    public void The_temperature_falls_linearly_to_its_floor()
    {
        var c = new SqairConfig
        {
            PresenceTemperature = 1.0, PresenceTemperatureMin = 0.5, PresenceTemperatureItr = 100,
        };
        Assert.Equal(1.0, c.PresenceTemperatureAt(0));
        Assert.Equal(0.75, c.PresenceTemperatureAt(50), 12);
        Assert.Equal(0.5, c.PresenceTemperatureAt(100));
        Assert.Equal(0.5, c.PresenceTemperatureAt(10_000));
    }

    [Fact]
    public void The_keys_are_validated_by_name()
    {
        var e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["presence_estimator=gumbel"]));
        Assert.Contains("presence_estimator", e.Message);
        Assert.Contains("concrete", e.Message);
        e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["presence_temperature=0"]));
        Assert.Contains("presence_temperature", e.Message);
        e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["presence_temperature_min=2"]));
        Assert.Contains("presence_temperature_min", e.Message);
        e = Assert.Throws<ArgumentException>(() => new SqairConfig().With(["presence_temperature_itr=0"]));
        Assert.Contains("presence_temperature_itr", e.Message);
        Assert.Equal(PresenceEstimator.Concrete,
                     new SqairConfig().With(["presence_estimator=concrete"]).PresenceEstimator);
        Assert.Equal(PresenceEstimator.Vimco, new SqairConfig().PresenceEstimator);
    }
}

/// <summary>Tests that change libtorch's default type, which every thread shares, run alone.</summary>
[CollectionDefinition(nameof(DefaultTypeTests), DisableParallelization = true)]
public sealed class DefaultTypeTests;

/// <summary>
/// With presence_estimator = concrete, presence is reparameterised: the loss's gradient through a presence logit
/// is its derivative with the noise held fixed (float64, so finite differences resolve it).
/// </summary>
[Collection(nameof(DefaultTypeTests))]
public class ConcreteGradientTests
{
    [Theory]
    [InlineData("discovery.presence")]
    [InlineData("propagation.presence")]
    public void The_loss_gradient_through_a_presence_logit_matches_finite_differences(string module)
    {
        var before = get_default_dtype();
        set_default_dtype(ScalarType.Float64);   // the model builds its states in the default type
        try { Check(module); }
        finally { set_default_dtype(before); }
    }

    static void Check(string module)
    {
        manual_seed(5);
        var m = new SqairModel(ConcretePresenceTests.Config(PresenceEstimator.Concrete, 0.7));
        var frames = SqairModelTests.Frames(3, 2, seed: 3).to(ScalarType.Float64);
        // the presence MLP's output bias: every step's (or slot's) presence logit moves with it
        var bias = m.named_parameters()
            .Last(p => p.name.StartsWith(module, StringComparison.Ordinal) &&
                       p.name.EndsWith("bias", StringComparison.Ordinal))
            .parameter;
        Assert.Equal(1, bias.numel());
        Tensor Loss()
        {
            using var g = new Generator(21);   // the same noise every time
            var o = m.Forward(frames, 2, generator: g);
            return Sqair.Objective.Iwae.LogMeanExp(o.LogWeights).mean().neg().div(3.0);
        }
        var loss = Loss();
        loss.backward();
        double analytic = bias.grad!.item<double>();
        const double h = 1e-5;
        double At(double delta)
        {
            using (no_grad()) bias.add_(delta);
            double v;
            using (no_grad()) v = Loss().item<double>();
            using (no_grad()) bias.sub_(delta);
            return v;
        }
        double numeric = (At(h) - At(-h)) / (2 * h);
        Assert.True(Math.Abs(analytic) > 1e-6, $"no gradient reaches {module} ({analytic})");
        Assert.True(Math.Abs(analytic - numeric) <= 1e-4 * Math.Abs(numeric) + 1e-6,
                    $"{module}: analytic {analytic}, finite differences {numeric}");
    }
}
