using Sqair.Native;
using TorchSharp;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Model;

/// <summary>
/// The spatial transformer (Jaderberg et al. 2015) for SQAIR's axis-aligned windows: bilinear
/// glimpse extraction and writing with zero padding and the align-corners convention, the values
/// of <c>affine_grid</c> + <c>grid_sample</c>. Coordinates are (sx, sy, tx, ty) as in
/// <see cref="Boxes.Coords"/>: x_image = sx·x_glimpse + tx in normalised [−1, 1] coordinates.
/// Images are square (side L), glimpses G×G.
/// <para>
/// Costs, measured at R = 160 rows (docs/performance.md): extraction reads only G² points, so
/// <c>grid_sample</c> is cheap there; its grid is built by broadcasting the two axes (affine_grid
/// builds and multiplies a full [n, G, G, 3] grid). Writing is the expensive direction, L² points
/// per object, so it uses separability instead: bilinear weights of an axis-aligned window factor
/// into W_y [L, G] and W_x [L, G] (max(0, 1 − |position − pixel|)), the canvas is W_y · glimpse · W_xᵀ,
/// and the sum over objects happens inside one matrix product, so no [R, N, C, L, L] tensor is built.
/// </para>
/// </summary>
internal static class SpatialTransformer
{
    /// <summary>
    /// Glimpses of <paramref name="images"/> [n, C, L, L] at <paramref name="coords"/> [n, 4] → [n, C, G, G],
    /// or at [n, m, 4] (m windows in each image) → [n, m, C, G, G]; zeros outside the image.
    /// </summary>
    public static Tensor Extract(Tensor images, Tensor coords, int glimpseSize) =>
        Extract(images, Boxes.Window.Of(coords), glimpseSize);

    /// <summary>
    /// <see cref="Extract(Tensor, Tensor, int)"/> at windows given as scales and shifts [n, 2] or [n, m, 2].
    /// </summary>
    public static Tensor Extract(Tensor images, Boxes.Window window, int glimpseSize)
    {
        bool single = window.Scale.dim() == 2;
        long n = window.Scale.shape[0], m = single ? 1 : window.Scale.shape[1], ch = images.shape[1];
        // grid [n, G, m, G, 2] of (x, y) = (s_x·x_g + t_x, s_y·y_g + t_y): the m windows side by side
        // in one [n, G, m·G] sampling grid, so the image is not copied m times
        var scale = window.Scale.view(n, 1, m, 1, 2);
        var shift = window.Shift.view(n, 1, m, 1, 2);
        var grid = (BaseGrid(glimpseSize, images.device, images.dtype) * scale).Plus(shift)
            .view(n, glimpseSize, m * glimpseSize, 2);
        var sampled = nn.functional.grid_sample(images, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Zeros,
                                                align_corners: true);
        if (single) return sampled;
        return sampled.view(n, ch, glimpseSize, m, glimpseSize).permute(0, 3, 1, 2, 4);
    }

    /// <summary>
    /// Writes glimpses [n, C, G, G] into [n, C, L, L] canvases by the inverse map x_g = (x_image − t)/s.
    /// </summary>
    public static Tensor Write(Tensor glimpses, Tensor coords, int side)
    {
        var (wx, wy) = WriteWeights(Boxes.Window.Of(coords), glimpses.shape[^1], side, glimpses.dtype);
        return wy.unsqueeze(1).matmul(glimpses).matmul(wx.transpose(-1, -2).unsqueeze(1));
    }

    /// <summary>
    /// Writes the N glimpses [R, N, C, G, G] of every row, scaled by <paramref name="presence"/>
    /// [R, N], and sums them: canvas [R, C, L, L] = Σ_k p_k W_y,k G_k W_x,kᵀ, computed as one product
    /// [W_y,1 G_1 … W_y,N G_N] · [W_x,1 … W_x,N]ᵀ. Also returns the coverage [R, 1, L, L] =
    /// Σ_k p_k · write(ones)_k = Σ_k p_k (W_y,k 1)(W_x,k 1)ᵀ, the decoder's write mask before its sigmoid.
    /// </summary>
    public static (Tensor Canvas, Tensor Coverage) WriteSum(Tensor glimpses, Boxes.Window windows, Tensor presence,
                                                            int side)
    {
        long r = glimpses.shape[0], n = glimpses.shape[1], ch = glimpses.shape[2], g = glimpses.shape[^1];
        var (wx, wy) = WriteWeights(windows, g, side, glimpses.dtype);                // [R, N, L, G] each
        wy = wy * presence.view(r, n, 1, 1);
        var rows = wy.unsqueeze(2).matmul(glimpses);                                  // [R, N, C, L, G]
        var left = rows.permute(0, 2, 3, 1, 4).reshape(r, ch, side, n * g);          // [R, C, L, N·G]
        var right = wx.transpose(-1, -2).reshape(r, 1, n * g, side);                 // [R, 1, N·G, L]
        var canvas = left.matmul(right);
        var coverage = wy.sum(-1).transpose(1, 2).matmul(wx.sum(-1)).unsqueeze(1);  // [R, L, N] · [R, N, L]
        return (canvas, coverage);
    }

    /// <summary>
    /// Writing weights (W_x, W_y), each [..., L, G]: canvas pixel i reads glimpse position
    /// ((x_i − t)/s + 1)(G − 1)/2.
    /// </summary>
    static (Tensor Wx, Tensor Wy) WriteWeights(Boxes.Window windows, long glimpseSize, int side, ScalarType dtype)
    {
        var inverseScale = windows.Scale.reciprocal();
        var shift = windows.Shift * inverseScale;
        var w = Weights(inverseScale.unsqueeze(-1) * Grid(side, inverseScale.device, dtype) - shift.unsqueeze(-1),
                        glimpseSize);
        return (w.select(-3, 0), w.select(-3, 1));
    }

    /// <summary>
    /// Bilinear weights [..., P, L] = max(0, 1 − |p − q|) of source pixels q = 0..L − 1 for positions
    /// p = (x + 1)(L − 1)/2 given in normalised coordinates x [..., P] of a source of side L.
    /// </summary>
    static Tensor Weights(Tensor normalised, long sourceSide)
    {
        var position = normalised.Plus(Kept(1.0)).mul(Kept((sourceSide - 1) / 2.0));
        var distance = (position.unsqueeze(-1) - Pixels(sourceSide, normalised.device, normalised.dtype)).abs();
        return distance.OneMinus().relu_();
    }

    /// <summary>The align-corners sampling grid: L points from −1 to 1 (what affine_grid uses), kept.</summary>
    static Tensor Grid(long points, Device device, ScalarType dtype) =>
        KeptTensors.Get("grid", points, dtype, device, () => linspace(-1.0, 1.0, points, dtype: dtype).to(device));

    /// <summary>
    /// The glimpse's own grid [G, 1, G, 2]: (x_g, y_g) of pixel (row, column), as affine_grid builds it, kept.
    /// </summary>
    static Tensor BaseGrid(long points, Device device, ScalarType dtype) =>
        KeptTensors.Get("base grid", points, dtype, device, () =>
        {
            var axis = Grid(points, device, dtype);
            return stack([axis.view(1, points).expand(points, points), axis.view(points, 1).expand(points, points)], -1)
                .view(points, 1, points, 2);
        });

    /// <summary>Pixel indices 0..Q − 1, kept.</summary>
    static Tensor Pixels(long count, Device device, ScalarType dtype) =>
        KeptTensors.Get("pixels", count, dtype, device, () => linspace(0.0, count - 1, count, dtype: dtype).to(device));
}
