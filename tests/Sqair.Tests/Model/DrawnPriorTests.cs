using Sqair.Model;
using Sqair.Objective;
using static TorchSharp.torch;

namespace Sqair.Tests.Model;

/// <summary>
/// prop_prior_drawn_pixels: the ink an object puts on the canvas, and the propagation prior that reads it.
/// </summary>
public class DrawnPriorTests
{
    static SqairConfig Config(double drawnPixels = 0) => SqairModelTests.Tiny() with
    {
        PropPriorDrawnPixels = drawnPixels,
    };

    /// <summary>where logits of a window with scale <paramref name="s"/> and shift (tx, ty) on both axes.</summary>
    static Tensor Where(double s, double tx, double ty) =>
        tensor(new[] { Logit(s), Logit(s), Atanh(tx), Atanh(ty) }.Select(v => (float)v).ToArray()).view(1, 1, 4);

    static double Logit(double p) => Math.Log(p / (1 - p));
    static double Atanh(double x) => 0.5 * Math.Log((1 + x) / (1 - x));

    [Fact]
    public void A_glimpse_of_ones_inside_the_canvas_inks_its_window_area()
    {
        var c = Config();
        var decoder = new Decoder(c);
        int g = c.GlimpseSize, side = c.ImgSize;
        var glimpse = ones([1, 1, 1, g, g]);
        double s = 0.5;
        // G² glimpse pixels, each covering (s·(L − 1)/(G − 1))² canvas pixels
        double expected = g * g * Math.Pow(s * (side - 1.0) / (g - 1), 2);
        Assert.Equal(expected, decoder.Ink(glimpse, Where(s, 0, 0)).item<float>(), 2);
        // twice the values, twice the ink
        Assert.Equal(2 * expected, decoder.Ink(glimpse * 2, Where(s, 0, 0)).item<float>(), 2);
    }

    [Fact]
    public void Only_the_glimpse_pixels_inside_the_canvas_count()
    {
        var c = Config();
        var decoder = new Decoder(c);
        int g = c.GlimpseSize, side = c.ImgSize;
        double s = 0.5, tx = 0.8;
        // on x, glimpse column j lands at s·(−1 + 2j/(G − 1)) + tx: inside while ≤ 1
        int columns = Enumerable.Range(0, g).Count(j => Math.Abs(s * (-1 + 2.0 * j / (g - 1)) + tx) <= 1);
        Assert.InRange(columns, 1, g - 1);
        double perPixel = Math.Pow(s * (side - 1.0) / (g - 1), 2);
        Assert.Equal(g * columns * perPixel, decoder.Ink(ones([1, 1, 1, g, g]), Where(s, tx, 0)).item<float>(), 2);
    }

    [Fact]
    public void The_prior_expects_an_empty_object_to_end_and_a_drawn_one_to_stay()
    {
        manual_seed(3);
        var c = Config(drawnPixels: 10);
        var tied = new Propagation(c);
        var paper = new Propagation(Config());
        using var _ = no_grad();
        foreach (var ((_, a), (_, b)) in paper.named_parameters().Zip(tied.named_parameters())) b.copy_(a);
        int n = c.MaxObjects;
        var prev = new ObjectSlots(randn(1, n, c.NWhat), randn(1, n, 4), ones(1, n), ones(1, n),
                                   tensor(new long[] { 0, 1, 2 }).view(1, n),
                                   randn(1, n, c.NHidden), randn(1, n, c.NHidden),
                                   Ink: tensor(new float[] { 0, 5, 40 }).view(1, n));
        var without = paper.Prior(prev).PresenceLogit;
        var with = tied.Prior(prev).PresenceLogit;
        double bias = c.PropPriorStepBias;
        // ink 0 → −bias, ink 5 of 10 → 0, ink ≥ 10 → +bias (the paper's prior)
        var shift = (with - without).squeeze(0);
        Assert.Equal(-2 * bias, shift[0].item<float>(), 3);
        Assert.Equal(-bias, shift[1].item<float>(), 3);
        Assert.Equal(0, shift[2].item<float>(), 3);
    }

    [Fact]
    public void Negative_decoded_values_are_not_ink()
    {
        var c = Config();
        int g = c.GlimpseSize;
        var decoder = new Decoder(c);
        var half = cat([ones([1, 1, 1, g / 2, g]), full([1, 1, 1, g - g / 2, g], -1f)], 3);
        double perPixel = Math.Pow(0.5 * (c.ImgSize - 1.0) / (g - 1), 2);
        Assert.Equal(g / 2 * g * perPixel, decoder.Ink(half, Where(0.5, 0, 0)).item<float>(), 2);
    }

    [Fact]
    public void With_the_drawn_prior_every_parameter_still_learns()
    {
        manual_seed(4);
        var m = new SqairModel(Config(drawnPixels: 50) with { DiscStepBias = 0.5 });
        var output = m.Forward(SqairModelTests.Frames(3, 8), 2);
        Vimco.Surrogate(output.LogWeights, output.LogQDiscrete, 3).Loss.backward();
        var missing = m.named_parameters()
            .Where(p => p.parameter.requires_grad &&
                        (p.parameter.grad is null || p.parameter.grad.abs().sum().item<float>() == 0))
            .Select(p => p.name).ToList();
        Assert.Empty(missing);
    }
}
