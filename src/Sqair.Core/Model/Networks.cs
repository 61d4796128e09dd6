using TorchSharp;
using TorchSharp.Modules;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Sqair.Model;

// The networks the model is built of: the MLP, the RNN cell, the encoders and decoders (MLP or
// CONV, chosen by `Networks` from the config) and the transform estimator.

/// <summary>"MLP[a,b]→n": hidden layers each followed by ELU, then an optional linear output layer.</summary>
internal sealed class Mlp : Module<Tensor, Tensor>
{
    readonly Sequential layers;
    public Linear? Output { get; }

    public Mlp(string name, long input, int[] hidden, long? output = null) : base(name)
    {
        var modules = new List<(string, Module<Tensor, Tensor>)>();
        long width = input;
        for (int i = 0; i < hidden.Length; i++)
        {
            modules.Add(($"linear{i}", Linear(width, hidden[i])));
            modules.Add(($"elu{i}", new Elu()));
            width = hidden[i];
        }
        if (output is long o)
        {
            Output = Linear(width, o);
            modules.Add(("output", Output));
        }
        layers = Sequential(modules);
        RegisterComponents();
    }

    /// <summary>Sets the output bias to a constant (presence biases, gate and mask initialisation).</summary>
    public Mlp WithOutputBias(double value)
    {
        using (no_grad()) Output!.bias!.fill_(Kept(value));
        return this;
    }

    public override Tensor forward(Tensor x) => layers.call(x);
}

/// <summary>Vanilla tanh RNN cell with a learned initial state: s' = tanh(W [x, s] + b).</summary>
internal sealed class VanillaRnn : Module<Tensor, Tensor, Tensor>
{
    readonly Linear linear;
    readonly Parameter init;

    public VanillaRnn(string name, long input, long hidden) : base(name)
    {
        linear = Linear(input + hidden, hidden);
        init = Parameter(zeros(hidden));
        RegisterComponents();
    }

    public Tensor InitialState(long rows) => init.unsqueeze(0).expand(rows, -1);

    public override Tensor forward(Tensor input, Tensor state) => linear.call(cat([input, state], -1)).tanh();

    /// <summary>
    /// W[:, :F]·input + b for input [n, F], the first F input columns: the share of the pre-activation of an input
    /// part that every step of a loop shares, computed once (docs/notes/performance-history.md, "Discovery's shared
    /// RNN input projected once per frame").
    /// </summary>
    public Tensor Project(Tensor input) =>
        nn.functional.linear(input, linear.weight!.narrow(1, 0, input.shape[^1]), linear.bias);

    /// <summary>The transposed weight of input columns [from, from + count): [count, H].</summary>
    public Tensor WeightT(long from, long count) => linear.weight!.narrow(1, from, count).t();

    /// <summary>
    /// s' = tanh(fixed + rest·weightT): one step from the shared part <paramref name="fixedPart"/> [n, H] and the
    /// remaining columns <paramref name="rest"/> [n, V] (the state last), whose weight is <see cref="WeightT"/>.
    /// </summary>
    public static Tensor Step(Tensor fixedPart, Tensor rest, Tensor weightT) => fixedPart.addmm(rest, weightT).tanh();
}

/// <summary>Encodes a frame [n, C, H, W] into features [n, hidden] (discovery's input encoder).</summary>
internal static class Networks
{
    public static Module<Tensor, Tensor> Input(IModelSettings c) => c.Model == ModelKind.Conv
        ? new ConvEncoder("input_encoder", c.Channels, c.ImgSize, c.NHidden)
        : new FlattenThen("input_encoder",
                          new Mlp("mlp", (long)c.Channels * c.ImgSize * c.ImgSize, [c.NHidden, c.NHidden]));

    /// <summary>Glimpse [n, C, G, G] → [n, 2·D_what] (loc, raw scale).</summary>
    public static Module<Tensor, Tensor> Glimpse(IModelSettings c) => c.Model == ModelKind.Conv
        ? Sequential(("conv", new ConvEncoder("conv", c.Channels, c.GlimpseSize, c.NHidden)), ("elu", new Elu()),
                     ("output", Linear(c.NHidden, 2 * c.NWhat)))
        : new FlattenThen("glimpse_encoder", new Mlp("mlp", (long)c.Channels * c.GlimpseSize * c.GlimpseSize,
                                                     [c.NHidden, c.NHidden], 2 * c.NWhat));

    /// <summary>what [n, D_what] → glimpse [n, C, G, G] (before output_scale).</summary>
    public static Module<Tensor, Tensor> Decoder(IModelSettings c) => c.Model == ModelKind.Conv
        ? new ConvDecoder("glimpse_decoder", c.NWhat, c.NHidden, c.Channels, c.GlimpseSize)
        : new UnflattenAfter("glimpse_decoder", new Mlp("mlp", c.NWhat, [c.NHidden, c.NHidden],
                                                        (long)c.Channels * c.GlimpseSize * c.GlimpseSize),
                             c.Channels, c.GlimpseSize);
}

sealed class FlattenThen : Module<Tensor, Tensor>
{
    readonly Module<Tensor, Tensor> inner;
    public FlattenThen(string name, Module<Tensor, Tensor> inner) : base(name)
    {
        this.inner = inner;
        RegisterComponents();
    }
    public override Tensor forward(Tensor x) => inner.call(x.flatten(1));
}

sealed class UnflattenAfter : Module<Tensor, Tensor>
{
    readonly Module<Tensor, Tensor> inner;
    readonly int channels, side;
    public UnflattenAfter(string name, Module<Tensor, Tensor> inner, int channels, int side) : base(name)
    {
        this.inner = inner; this.channels = channels; this.side = side;
        RegisterComponents();
    }
    public override Tensor forward(Tensor x) => inner.call(x).view(-1, channels, side, side);
}

/// <summary>
/// CONV-SQAIR encoder: three stride-2 3×3 convolutions (ELU) and a linear layer to <c>output</c> features.
/// </summary>
sealed class ConvEncoder : Module<Tensor, Tensor>
{
    readonly Sequential convs;
    readonly Linear linear;

    public ConvEncoder(string name, int channels, int side, int output) : base(name)
    {
        convs = Sequential(
            Conv2d(channels, 16, 3, stride: 2, padding: 1), new Elu(),
            Conv2d(16, 32, 3, stride: 2, padding: 1), new Elu(),
            Conv2d(32, 32, 3, stride: 2, padding: 1), new Elu());
        int s = side;
        for (int i = 0; i < 3; i++) s = (s + 1) / 2;
        linear = Linear(32L * s * s, output);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => linear.call(convs.call(x).flatten(1));
}

/// <summary>
/// CONV-SQAIR glimpse decoder: linear layers to a 32×(G/4)² map, then two stride-2 transposed convolutions.
/// </summary>
sealed class ConvDecoder : Module<Tensor, Tensor>
{
    readonly Sequential dense, deconvs;
    readonly int quarter;

    public ConvDecoder(string name, int nWhat, int hidden, int channels, int glimpse) : base(name)
    {
        quarter = glimpse / 4;
        dense = Sequential(Linear(nWhat, hidden), new Elu(), Linear(hidden, 32L * quarter * quarter), new Elu());
        deconvs = Sequential(
            ConvTranspose2d(32, 16, 4, stride: 2, padding: 1), new Elu(),
            ConvTranspose2d(16, channels, 4, stride: 2, padding: 1));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => deconvs.call(dense.call(x).view(-1, 32, quarter, quarter));
}

/// <summary>
/// Transform estimator: input → MLP[hidden, hidden] → 8; loc = first 4, scale logit = last 4 plus a
/// learned scalar offset initialised to <c>transform_var_bias</c>.
/// </summary>
internal sealed class TransformEstimator : Module<Tensor, (Tensor Loc, Tensor ScaleLogit)>
{
    readonly Mlp mlp;
    readonly Parameter offset;

    public TransformEstimator(string name, long input, int hidden, double varBias) : base(name)
    {
        mlp = new Mlp("mlp", input, [hidden, hidden], 8);
        offset = Parameter(tensor((float)varBias));
        RegisterComponents();
    }

    public override (Tensor Loc, Tensor ScaleLogit) forward(Tensor x)
    {
        var parts = mlp.call(x).split([4, 4], -1);
        return (parts[0], parts[1].Plus(offset));
    }
}
