using TorchSharp;
using TorchSharp.Modules;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Sqair.Model;

/// <summary>
/// The glimpse decoder and the likelihood p(x | z) (docs/design.md §2.6): decoded glimpses, times a learned
/// <c>output_scale</c>, written onto the canvas and summed over present objects; a learned mean
/// image is added under the soft write mask m = sigmoid(−10 + 20·Σ presence·write(ones)).
/// Shapes: what [R, N, D], where [R, N, 4], presence [R, N] → canvas [R, C, H, W], glimpses [R, N, C, G, G].
/// </summary>
internal sealed class Decoder : Module
{
    readonly IModelSettings c;
    // snake_case on purpose: RegisterComponents names each parameter after its field
    // ("decoder.glimpse_decoder.…"), and these are the names in checkpoints, as PyTorch would write them
    // (docs/design.md §2).
    readonly Module<Tensor, Tensor> glimpse_decoder;
    readonly Parameter output_scale, mean_img;

    public Decoder(IModelSettings c) : base("decoder")
    {
        this.c = c;
        glimpse_decoder = Networks.Decoder(c);
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
        var glimpses = (glimpse_decoder.call(what.reshape(r * n, c.NWhat)) * output_scale).view(r, n, ch, g, g);
        var (canvas, coverage) =
            SpatialTransformer.WriteSum(glimpses, Boxes.Windows(where, c.ShiftRange), presence, side);
        var mask = coverage.Affine(MaskSharpness, -MaskSharpness / 2).sigmoid();
        return (canvas.addcmul(mean_img, mask, Kept(1.0)), glimpses);
    }

    /// <summary>
    /// The ink each object puts on the canvas [R, N], in canvas pixels: its decoded glimpse (strongest channel, the
    /// positive part) summed over the glimpse pixels that land inside the canvas, each weighted by the canvas area
    /// it covers.
    /// glimpses [R, N, C, G, G] from <see cref="Forward"/>, where [R, N, 4] logits.
    /// </summary>
    public Tensor Ink(Tensor glimpses, Tensor where)
    {
        int g = c.GlimpseSize, side = c.ImgSize;
        var window = Boxes.Windows(where, c.ShiftRange);                           // (sx, sy), (tx, ty)
        // glimpse pixel j sits at u_j = −1 + 2j/(G − 1), on the canvas at s·u_j + t (inside when |·| ≤ 1)
        var u = Arange(g, ScalarType.Float32, where.device).Affine(2.0 / (g - 1), -1);
        var inside = window.Scale.unsqueeze(-1).mul(u).addcmul(window.Shift.unsqueeze(-1), ones_like(u),
                                                               Kept(1.0)).abs().le(Kept(1.0)).to(where.dtype);
        var rows = inside.select(-2, 1).unsqueeze(-1);                              // y [R, N, G, 1]
        var cols = inside.select(-2, 0).unsqueeze(-2);                              // x [R, N, 1, G]
        // Decoded values are unbounded: only what adds to the canvas counts as ink.
        var ink = (glimpses.amax(2).clamp_min(Kept(0.0)) * rows * cols).sum([-2, -1]);
        // canvas pixels per glimpse pixel, on each axis s·(L − 1)/(G − 1)
        return ink * window.Scale.prod(-1).mul(Kept(Math.Pow((side - 1.0) / (g - 1), 2)));
    }

    /// <summary>
    /// The write mask is sigmoid(20·coverage − 10) (the original's): about 0 where no object writes
    /// and 1 where one covers a pixel fully, so the mean image shows only under objects.
    /// </summary>
    const double MaskSharpness = 20;

    /// <summary>
    /// log p(x | z) = Σ_pixels log N(x; canvas, output_std), per row [R]: −Σ (x − canvas)² / (2σ²) − P·log(σ√(2π)),
    /// scaled after the sum, so only the difference and its square pass over the pixels.
    /// </summary>
    public Tensor LogLikelihood(Tensor x, Tensor canvas)
    {
        long pixels = x.shape[1] * x.shape[2] * x.shape[3];
        double std = c.OutputStd;
        return (x - canvas).Squared().sum([1, 2, 3])
            .Affine(-0.5 / (std * std), -pixels * (Math.Log(std) + Distributions.HalfLog2Pi));
    }
}
