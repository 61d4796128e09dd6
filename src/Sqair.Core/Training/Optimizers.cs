using Sqair.Model;
using Sqair.Runs;
using TorchSharp;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Training;

/// <summary>
/// The optimisers, written out so that their whole state is a set of named tensors that go into
/// the safetensors checkpoint next to the parameters (and can be inspected from Python).
/// </summary>
internal abstract class ParameterOptimizer(IReadOnlyList<(string Name, Tensor Param)> parameters) : IOptimizerState
{
    protected IReadOnlyList<(string Name, Tensor Param)> Parameters { get; } = parameters;
    public long Steps { get; protected set; }

    public static ParameterOptimizer Create(OptimizerKind kind, IEnumerable<(string, Tensor)> parameters)
    {
        var list = parameters.ToList();
        return kind switch
        {
            OptimizerKind.Rmsprop => new TfRmsProp(list),
            OptimizerKind.Adam => new AdamOptimizer(list),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "no such optimiser"),
        };
    }

    public void Step(double learningRate)
    {
        using var _ = no_grad();
        Steps++;
        foreach (var (name, p) in Parameters)
            if (p.grad is { } g) Update(name, p, g, learningRate);
    }

    protected abstract void Update(string name, Tensor param, Tensor grad, double lr);

    /// <summary>Every state tensor under "optimizer/&lt;slot&gt;/&lt;parameter&gt;".</summary>
    public abstract IEnumerable<(string Key, Tensor Value)> State();

    /// <summary>Restores the state written by <see cref="State"/>.</summary>
    public void Load(IReadOnlyDictionary<string, Tensor> tensors, long steps)
    {
        Steps = steps;
        using var _ = no_grad();
        foreach (var (key, value) in State())
        {
            if (!tensors.TryGetValue(key, out var saved))
                throw new InvalidDataException($"checkpoint lacks optimizer state '{key}'");
            if (!saved.shape.SequenceEqual(value.shape))
                throw new InvalidDataException(
                    $"optimizer state '{key}' has shape [{string.Join(", ", saved.shape)}], " +
                    $"expected [{string.Join(", ", value.shape)}]");
            if (saved.dtype != value.dtype)
                throw new InvalidDataException($"optimizer state '{key}' is {saved.dtype}, expected {value.dtype}");
            value.copy_(saved);
        }
    }

    protected Dictionary<string, Tensor> Slot() =>
        Parameters.ToDictionary(p => p.Name, p => zeros_like(p.Param).DetachFromDisposeScope());
}

/// <summary>
/// RMSProp with momentum as in TensorFlow 1.x (the original's optimiser): ms ← ρ·ms + (1 − ρ)g²,
/// mom ← μ·mom + lr·g/√(ms + ε), θ ← θ − mom; ρ = 0.9, μ = 0.9, ε = 1e−10. TensorFlow starts ms
/// at 1.
/// </summary>
internal sealed class TfRmsProp : ParameterOptimizer
{
    const double Decay = 0.9, Momentum = 0.9, Epsilon = 1e-10;
    readonly Dictionary<string, Tensor> ms, mom;

    public TfRmsProp(IReadOnlyList<(string, Tensor)> parameters) : base(parameters)
    {
        ms = Slot();
        foreach (var t in ms.Values) t.fill_(Kept(1.0));
        mom = Slot();
    }

    protected override void Update(string name, Tensor p, Tensor g, double lr)
    {
        using var rate = lr.ToScalar();
        var m = ms[name].mul_(Kept(Decay)).addcmul_(g, g, value: Kept(1 - Decay));
        var v = mom[name].mul_(Kept(Momentum)).addcdiv_(g, m.Plus(Kept(Epsilon)).sqrt_(), value: rate);
        p.sub_(v);
    }

    public override IEnumerable<(string, Tensor)> State() =>
        ms.Select(kv => ($"optimizer/ms/{kv.Key}", kv.Value))
            .Concat(mom.Select(kv => ($"optimizer/mom/{kv.Key}", kv.Value)));
}

/// <summary>Adam (Kingma &amp; Ba) with β = (0.9, 0.999), ε = 1e−8.</summary>
internal sealed class AdamOptimizer : ParameterOptimizer
{
    const double Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8;
    readonly Dictionary<string, Tensor> m, v;

    public AdamOptimizer(IReadOnlyList<(string, Tensor)> parameters) : base(parameters)
    {
        m = Slot();
        v = Slot();
    }

    protected override void Update(string name, Tensor p, Tensor g, double lr)
    {
        var mt = m[name].mul_(Kept(Beta1)).add_(g, alpha: Kept(1 - Beta1));
        var vt = v[name].mul_(Kept(Beta2)).addcmul_(g, g, value: Kept(1 - Beta2));
        // bias corrections change every step, so these scalars live only for this call
        using var c2 = (1 - Math.Pow(Beta2, Steps)).ToScalar();
        using var step = (-lr / (1 - Math.Pow(Beta1, Steps))).ToScalar();
        p.addcdiv_(mt, vt.div(c2).sqrt_().add_(Kept(Epsilon), Kept(1L)), value: step);
    }

    public override IEnumerable<(string, Tensor)> State() =>
        m.Select(kv => ($"optimizer/m/{kv.Key}", kv.Value)).Concat(v.Select(kv => ($"optimizer/v/{kv.Key}", kv.Value)));
}
