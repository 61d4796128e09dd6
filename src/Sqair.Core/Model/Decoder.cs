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
