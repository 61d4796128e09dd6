using Sqair.Native;
using TorchSharp;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Model;

/// <summary>
/// The nonlinearities of the model, written so that they create no temporary native scalars:
/// TorchSharp's own <c>elu(double)</c> and <c>softplus(double, double)</c> convert their arguments
/// into scalars that a finalizer may free mid-call (see <see cref="KeptScalars"/>).
/// </summary>
internal static class Activations
{
    /// <summary>
    /// The floor added to every softplus scale (the original's 1e−2): keeps standard deviations away from 0.
    /// </summary>
    public const double MinScale = 0.01;

    /// <summary>ELU with α = 1.</summary>
    public static Tensor Elu(Tensor x) => x.elu(Kept(1.0), Kept(1.0), Kept(1.0));

    /// <summary>
    /// softplus(x) = log(1 + eˣ) = logaddexp(x, 0): one op where −logsigmoid(−x) takes three, stable
    /// for large |x| (TorchSharp's own softplus passes temporary scalars).
    /// </summary>
    public static Tensor Softplus(Tensor x) => x.logaddexp(Zero(x.dtype, x.device));

    /// <summary>A 0-dimensional zero of <paramref name="dtype"/> on <paramref name="device"/>, kept.</summary>
    static Tensor Zero(ScalarType dtype, Device device) =>
        KeptTensors.Get("zero", 0, dtype, device, () => zeros([], dtype: dtype, device: device));

    /// <summary>A standard deviation from an unconstrained value: softplus(x) + 0.01.</summary>
    public static Tensor PositiveScale(Tensor x) => Softplus(x).Plus(Kept(MinScale));
}

/// <summary>ELU as a layer, for <see cref="Mlp"/> and the convolutional stacks.</summary>
internal sealed class Elu() : nn.Module<Tensor, Tensor>("elu")
{
    public override Tensor forward(Tensor x) => Activations.Elu(x);
}
