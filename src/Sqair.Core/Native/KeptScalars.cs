using System.Collections.Concurrent;
using TorchSharp;

namespace Sqair.Native;

/// <summary>
/// Constant scalars that live as long as the process. TorchSharp 0.107 turns every implicit
/// <c>double → Scalar</c> conversion into a native scalar freed by a finalizer, and a garbage
/// collection started by another thread can run that finalizer while libtorch still reads the
/// scalar (TorchSharp pull requests #1434 and #1496): the op then fails ("Expected false to be
/// true", "Unknown scalar type") or silently uses a wrong value. Code that runs per step takes its
/// constants from here (<c>x * Kept(0.5)</c>, not <c>x * 0.5</c>), so no native scalar it passes
/// can be freed under libtorch. A value that changes per step (a learning rate) is a
/// <c>using var s = v.ToScalar()</c> instead, alive until the end of its block.
/// </summary>
internal static class KeptScalars
{
    static readonly ConcurrentDictionary<double, Scalar> Doubles = new();
    static readonly ConcurrentDictionary<long, Scalar> Longs = new();

    /// <summary>A floating-point scalar that is never freed.</summary>
    public static Scalar Kept(double value) => Doubles.GetOrAdd(value, v => v.ToScalar());

    /// <summary>An integer scalar that is never freed (fills of index and id tensors).</summary>
    public static Scalar Kept(long value) => Longs.GetOrAdd(value, v => v.ToScalar());

    /// <summary>
    /// a + b. TorchSharp's <c>+</c> and <c>add(b)</c> pass a temporary alpha = 1 scalar; this passes a kept one.
    /// </summary>
    public static torch.Tensor Plus(this torch.Tensor a, torch.Tensor b) => a.add(b, Kept(1L));

    /// <summary>a + s, with a kept alpha (see <see cref="Plus(torch.Tensor, torch.Tensor)"/>).</summary>
    public static torch.Tensor Plus(this torch.Tensor a, Scalar s) => a.add(s, Kept(1L));

    /// <summary>
    /// a², as libtorch's <c>pow(a, 2)</c>: TorchSharp's own <c>square()</c> is <c>pow(2)</c> with a temporary scalar
    /// made inside TorchSharp, where the banned-API analyser cannot see it (it crashed a training step once).
    /// </summary>
    public static torch.Tensor Squared(this torch.Tensor a) => a.pow(Kept(2L));

    /// <summary>
    /// The value of a one-element tensor. TorchSharp's <c>ToDouble()</c> reads it through a temporary native
    /// scalar that a collection on another thread can free during the read; this one is disposed after it.
    /// </summary>
    public static double ValueOf(torch.Tensor a)
    {
        using var s = a.ToScalar();
        return s.ToDouble();
    }

    /// <summary>1 − a, which TorchSharp's <c>1 - a</c> computes with two temporary scalars.</summary>
    public static torch.Tensor OneMinus(this torch.Tensor a) => a.Affine(-1, 1);

    /// <summary>
    /// scale·a + shift in one op: libtorch's add with alpha = scale onto a kept 0-d tensor holding shift, where
    /// a multiply and an add pass over a twice (on canvas-sized tensors that second pass is what costs).
    /// </summary>
    public static torch.Tensor Affine(this torch.Tensor a, double scale, double shift) =>
        KeptTensors.Get("constant", BitConverter.DoubleToInt64Bits(shift), a.dtype, a.device,
                        () => torch.tensor(shift, a.dtype, a.device))
            .add(a, Kept(scale));

    /// <summary>
    /// 0, 1, …, n − 1, like <c>torch.arange(n)</c>, whose own overloads convert their bounds implicitly.
    /// </summary>
    public static torch.Tensor Arange(long n, torch.ScalarType dtype, torch.Device device) =>
        torch.arange(Kept(0L), Kept(n), Kept(1L), dtype: dtype, device: device);
}
