using System.Text.Json;
using Sqair.Model;
using Sqair.Objective;
using static TorchSharp.torch;

namespace Sqair.Tests.Objective;

/// <summary>
/// Pieces of the objective against values and gradients computed by a separate implementation of the same
/// mathematics: scripts/independent-reference.py (PyTorch's autograd, its distributions and grid_sample, VIMCO
/// written from Mnih &amp; Rezende 2016), whose output is committed in independent-reference.json. Unlike
/// <see cref="Sqair.Tests.Model.ReferenceGradientTests"/>, which guards against change, these catch an
/// implementation that has been wrong all along. Everything runs in float64 on both sides.
/// </summary>
public class IndependentReferenceTests
{
    const string File = "Objective/independent-reference.json";

    // float64 on both sides: the two computations differ only in the order of their operations (about 1e-15
    // relative), so 1e-10 leaves room for cancellation in sums yet catches any difference in the mathematics.
    const double Relative = 1e-10;
    const double Absolute = 1e-12;

    static readonly Lazy<JsonElement> Reference = new(() =>
        JsonDocument.Parse(System.IO.File.ReadAllText(Path.Combine(AppContext.BaseDirectory, File))).RootElement);

    static JsonElement Case(string name) => Reference.Value.GetProperty(name);

    /// <summary>A JSON number or nested array as its values (row-major) and shape.</summary>
    static (double[] Values, long[] Shape) Read(JsonElement e)
    {
        if (e.ValueKind == JsonValueKind.Number) return ([e.GetDouble()], []);
        var parts = e.EnumerateArray().Select(Read).ToList();
        return ([.. parts.SelectMany(p => p.Values)], [parts.Count, .. parts[0].Shape]);
    }

    /// <summary>A JSON array as a float64 tensor, a leaf that records gradients when asked.</summary>
    static Tensor Input(JsonElement e, bool grad = false)
    {
        var (values, shape) = Read(e);
        return tensor(values, dtype: ScalarType.Float64).view(shape).requires_grad_(grad);
    }

    static void Close(JsonElement expected, Tensor actual, string what)
    {
        var (values, shape) = Read(expected);
        Assert.Equal(shape, actual.shape);
        var got = actual.detach().contiguous().data<double>().ToArray();
        for (int i = 0; i < values.Length; i++)
            Assert.True(Math.Abs(got[i] - values[i]) <= Absolute + Relative * Math.Abs(values[i]),
                        $"{what}[{i}]: {got[i]:R}, PyTorch {values[i]:R}");
    }

    /// <summary>Σ weights·f: a scalar whose gradient is a vector–Jacobian product with a fixed pattern.</summary>
    static Tensor Weighted(Tensor f, JsonElement weights) => (f * Input(weights)).sum();

    [Fact]
    public void The_bound_leave_one_out_bounds_learning_signals_and_ESS_match_PyTorch()
    {
        var c = Case("vimco");
        var logW = Input(c.GetProperty("log_w"));
        Close(c.GetProperty("bound"), Iwae.LogMeanExp(logW), "bound");
        Close(c.GetProperty("leave_one_out"), Vimco.LeaveOneOut(logW), "leave-one-out");
        Close(c.GetProperty("paper").GetProperty("signal"), Vimco.LearningSignal(logW), "paper's signal");
        Close(c.GetProperty("original").GetProperty("signal"), Vimco.LearningSignal(logW, original: true),
              "original's signal");
        Close(c.GetProperty("ess"), Iwae.EffectiveSampleSize(logW), "ESS");
    }

    [Theory]
    [InlineData("paper")]
    [InlineData("original")]
    public void The_VIMCO_surrogate_and_its_gradients_match_PyTorch(string variant)
    {
        var c = Case("vimco");
        var (logW, logQ) = (Input(c.GetProperty("log_w"), grad: true), Input(c.GetProperty("log_q"), grad: true));
        var (loss, _) = Vimco.Surrogate(logW, logQ, c.GetProperty("seq_len").GetInt32(),
                                        original: variant == "original");
        loss.backward();
        var expected = c.GetProperty(variant);
        Close(expected.GetProperty("loss"), loss, "loss");
        Close(expected.GetProperty("grad_log_w"), logW.grad!, "∂loss/∂log w");
        Close(expected.GetProperty("grad_log_q"), logQ.grad!, "∂loss/∂log q");
    }

    [Fact]
    public void The_normal_log_density_and_its_gradients_match_PyTorch()
    {
        var c = Case("densities");
        var n = c.GetProperty("normal");
        var (x, loc, scale) = (Input(n.GetProperty("x"), true), Input(n.GetProperty("loc"), true),
                               Input(n.GetProperty("scale"), true));
        var logProb = Distributions.NormalLogProb(x, loc, scale);
        Weighted(logProb, c.GetProperty("weights")).backward();
        Close(n.GetProperty("log_prob"), logProb, "log N");
        Close(n.GetProperty("grad_x"), x.grad!, "∂/∂x");
        Close(n.GetProperty("grad_loc"), loc.grad!, "∂/∂loc");
        Close(n.GetProperty("grad_scale"), scale.grad!, "∂/∂scale");
    }

    [Fact]
    public void The_Bernoulli_log_probability_and_its_gradient_match_PyTorch_even_for_saturated_logits()
    {
        var c = Case("densities");
        var b = c.GetProperty("bernoulli");
        var logits = Input(b.GetProperty("logits"), true);
        var logProb = Distributions.BernoulliLogProb(Input(b.GetProperty("x")), logits);
        Weighted(logProb, c.GetProperty("weights")).backward();
        Close(b.GetProperty("log_prob"), logProb, "log Bernoulli");
        Close(b.GetProperty("grad_logits"), logits.grad!, "∂/∂logit");
    }

    [Fact]
    public void The_binary_Concrete_log_density_and_its_gradients_match_PyTorch()
    {
        var c = Case("densities");
        var k = c.GetProperty("concrete");
        var (x, logits) = (Input(k.GetProperty("x"), true), Input(k.GetProperty("logits"), true));
        var logProb = Distributions.ConcreteLogProb(x, logits, k.GetProperty("tau").GetDouble());
        Weighted(logProb, c.GetProperty("weights")).backward();
        Close(k.GetProperty("log_prob"), logProb, "log Concrete");
        Close(k.GetProperty("grad_x"), x.grad!, "∂/∂x");
        Close(k.GetProperty("grad_logits"), logits.grad!, "∂/∂logit");
    }

    [Fact]
    public void Stick_breaking_logits_and_their_gradient_match_PyTorch()
    {
        var s = Case("densities").GetProperty("stick_breaking");
        var logProbs = Input(s.GetProperty("log_probs"), true);
        var logits = Distributions.StickBreakingLogits(logProbs);
        Weighted(logits, s.GetProperty("weights")).backward();
        Close(s.GetProperty("logits"), logits, "stick-breaking logits");
        Close(s.GetProperty("grad_log_probs"), logProbs.grad!, "∂/∂log p");
    }

    /// <summary>
    /// Glimpse extraction against a bilinear read written out as tent weights, and writing (the C#'s separable
    /// products) against PyTorch's grid_sample on the inverse map; windows partly off the image included.
    /// </summary>
    [Fact]
    public void The_spatial_transformer_and_its_gradients_match_PyTorch()
    {
        var t = Case("transformer");
        int g = t.GetProperty("glimpse_size").GetInt32(), side = t.GetProperty("side").GetInt32();
        var (image, coords) = (Input(t.GetProperty("image"), true), Input(t.GetProperty("coords"), true));
        var extract = t.GetProperty("extract");
        var glimpses = SpatialTransformer.Extract(image, coords, g);
        Weighted(glimpses, extract.GetProperty("weights")).backward();
        Close(extract.GetProperty("value"), glimpses, "glimpses");
        Close(extract.GetProperty("grad_image"), image.grad!, "extract ∂/∂image");
        Close(extract.GetProperty("grad_coords"), coords.grad!, "extract ∂/∂coords");

        var (glimpse, writeCoords) = (Input(t.GetProperty("glimpse"), true), Input(t.GetProperty("coords"), true));
        var write = t.GetProperty("write");
        var canvas = SpatialTransformer.Write(glimpse, writeCoords, side);
        Weighted(canvas, write.GetProperty("weights")).backward();
        Close(write.GetProperty("value"), canvas, "canvas");
        Close(write.GetProperty("grad_glimpse"), glimpse.grad!, "write ∂/∂glimpse");
        Close(write.GetProperty("grad_coords"), writeCoords.grad!, "write ∂/∂coords");
    }

    /// <summary>
    /// A fixed network with fixed noise whose log weights have SQAIR's form (a presence and a Gaussian
    /// latent per particle, their priors, a Gaussian observation; the script's tiny_model_case), built from our
    /// densities as the model uses them (log q of the latent from its noise) and trained by our VIMCO: the
    /// loss and the gradient of every weight match PyTorch's.
    /// </summary>
    [Theory]
    [InlineData("paper")]
    [InlineData("original")]
    public void A_tiny_model_s_VIMCO_loss_and_weight_gradients_match_PyTorch(string variant)
    {
        var c = Case("tiny_model");
        Assert.Equal(Activations.MinScale, c.GetProperty("min_scale").GetDouble());
        var p = c.GetProperty("params").EnumerateObject().ToDictionary(e => e.Name, e => Input(e.Value, true));
        var (x, obs, eps, z) = (Input(c.GetProperty("x")), Input(c.GetProperty("obs")), Input(c.GetProperty("eps")),
                                Input(c.GetProperty("z")));
        long b = z.shape[0], k = z.shape[1];
        var h = (x.matmul(p["w1"].t()) + p["b1"]).tanh();
        var logit = (h.matmul(p["wp"]) + p["bp"]).unsqueeze(1).expand(b, k);
        var mu = h.matmul(p["wmu"].t()).unsqueeze(1);
        var sigma = Activations.PositiveScale(h.matmul(p["wsig"].t())).unsqueeze(1);
        var y = mu + sigma * eps;
        var logQY = Distributions.NoiseLogProb(eps, sigma).sum(-1);
        var logPY = Distributions.StandardNormalLogProb(y).sum(-1);
        var logQZ = Distributions.BernoulliLogProb(z, logit);
        var logPZ = Distributions.BernoulliLogProb(z, full_like(z, c.GetProperty("prior_logit").GetDouble()));
        var obsScale = full_like(y, c.GetProperty("obs_scale").GetDouble());
        var logLikelihood = Distributions.NormalLogProb(obs.unsqueeze(1), z.unsqueeze(-1) * y, obsScale).sum(-1);
        var logW = logLikelihood + logPY + logPZ - logQY - logQZ;
        var (loss, _) = Vimco.Surrogate(logW, logQZ, c.GetProperty("seq_len").GetInt32(),
                                        original: variant == "original");
        loss.backward();

        var expected = c.GetProperty(variant);
        Close(expected.GetProperty("log_w"), logW, "log w");
        Close(expected.GetProperty("log_q"), logQZ, "log q(z)");
        Close(expected.GetProperty("loss"), loss, "loss");
        foreach (var grad in expected.GetProperty("grads").EnumerateObject())
            Close(grad.Value, p[grad.Name].grad!, $"∂loss/∂{grad.Name}");
    }
}
