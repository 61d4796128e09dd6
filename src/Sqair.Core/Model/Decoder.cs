using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Sqair.Model;

/// <summary>
/// The glimpse decoder and the likelihood p(x | z) (SPEC §2): decoded glimpses, times a learned
/// <c>output_scale</c>, written onto the canvas and summed over present objects; a learned mean
/// image is added under the soft write mask m = sigmoid(−10 + 20·Σ presence·write(ones)).
/// Shapes: what [R, N, D], where [R, N, 4], presence [R, N] → canvas [R, C, H, W], glimpses [R, N, C, G, G].
/// </summary>
public sealed class Decoder : Module
{
    readonly SqairConfig c;
    readonly Module<Tensor, Tensor> glimpse_decoder;
    readonly Parameter output_scale, mean_img;

    public Decoder(SqairConfig c) : base("decoder")
    {
        this.c = c;
        glimpse_decoder = Encoders.Decoder(c);
        output_scale = Parameter(tensor((float)c.OutputScale));
        mean_img = Parameter(zeros(c.Channels, c.ImgSize, c.ImgSize));
        RegisterComponents();
    }

    /// <summary>Initialises the learned mean image (to the mean training frame).</summary>
    public void SetMeanImage(Tensor mean)
    {
        using (no_grad()) mean_img.copy_(mean.reshape(mean_img.shape));
    }

    public (Tensor Canvas, Tensor Glimpses) Forward(Tensor what, Tensor where, Tensor presence)
    {
        long r = what.shape[0], n = what.shape[1];
        int ch = c.Channels, g = c.GlimpseSize, side = c.ImgSize;
        var glimpses = glimpse_decoder.forward(what.reshape(r * n, c.NWhat)) * output_scale;
        // One grid_sample writes the glimpses and the ones of the write mask together.
        var both = cat([glimpses, ones(r * n, 1, g, g, device: what.device)], 1);
        var written = SpatialTransformer.Write(both, Boxes.Coords(where.reshape(r * n, 4)), side, side)
            .view(r, n, ch + 1, side, side) * presence.view(r, n, 1, 1, 1);
        var summed = written.sum(1);
        var canvas = summed.narrow(1, 0, ch);
        var mask = (summed.narrow(1, ch, 1) * 20 - 10).sigmoid();
        return (canvas + mean_img * mask, glimpses.view(r, n, ch, g, g));
    }

    /// <summary>log p(x | z) = Σ_pixels log N(x; canvas, output_std), per row [R].</summary>
    public Tensor LogLikelihood(Tensor x, Tensor canvas)
    {
        var z = (x - canvas) / c.OutputStd;
        return (-0.5 * z * z).sum([1, 2, 3]) - x[0].numel() * (Math.Log(c.OutputStd) + Distributions.HalfLog2Pi);
    }
}
