using TorchSharp;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Model;

/// <summary>The places where a frame draws noise (docs/design.md §2.8).</summary>
internal enum Site
{
    /// <summary>A propagated object's where noise [R, 4], per slot.</summary>
    PropagatedWhere,
    /// <summary>A propagated object's what noise [R, D], per slot.</summary>
    PropagatedWhat,
    /// <summary>A propagated object's presence [R, 1], per slot.</summary>
    PropagatedPresence,
    /// <summary>A discovery step's where noise [R, 4], per step.</summary>
    DiscoveredWhere,
    /// <summary>A discovery step's what noise [R, D], per step.</summary>
    DiscoveredWhat,
    /// <summary>A discovery step's presence [R, 1], per step.</summary>
    DiscoveredPresence,
    /// <summary>Whether discovery is switched off for a row [R] (training's disc_dropout).</summary>
    DiscoveryDropout,
    /// <summary>The particle filter's uniform [B, 1], one per sequence.</summary>
    Resampling,
}

/// <summary>
/// Where a run of frames draws its random numbers, site by site (docs/design.md §2.8). Rows are
/// the B·K particle rows, the particles of a sequence contiguous.
/// </summary>
internal abstract class Noise
{
    /// <summary>Called before each frame of <paramref name="sequences"/> × <paramref name="k"/> rows.</summary>
    public virtual void BeginFrame(long sequences, int k, Device device) { }

    /// <summary>Standard normal noise shaped like <paramref name="like"/>, for one slot of a site.</summary>
    public abstract Tensor Normal(Tensor like, Site site, int slot);

    /// <summary>0/1 samples (as <paramref name="probs"/>' type) of Bernoulli(<paramref name="probs"/>).</summary>
    public abstract Tensor Bernoulli(Tensor probs, Site site, int slot);

    /// <summary>Uniforms in [0, 1) shaped like <paramref name="like"/>, for one slot of a site.</summary>
    public abstract Tensor Uniform(Tensor like, Site site, int slot);

    /// <summary>
    /// Standard logistic noise log u − log(1 − u) shaped like <paramref name="like"/>, from the uniforms u that
    /// <see cref="Bernoulli"/> compares with its probabilities at the same site: a logit l has l &gt; L exactly
    /// when u &lt; sigmoid(l), so the binary Concrete sample built on L hardens to the Bernoulli sample (up to u
    /// moved half a float32 step into (0, 1), which keeps both logarithms finite).
    /// </summary>
    public Tensor Logistic(Tensor like, Site site, int slot)
    {
        var u = Uniform(like, site, slot).Plus(Kept(HalfUniformStep));
        return u.log().sub(u.neg().log1p());
    }

    /// <summary>Half the spacing of float32 uniforms in [0, 1) (multiples of 2⁻²⁴).</summary>
    const double HalfUniformStep = 1.0 / (1 << 25);

    /// <summary>One uniform in [0, 1) per sequence [B, 1], for the particle filter.</summary>
    public abstract Tensor Uniform(long sequences, Device device);

    /// <summary>One particle per sequence drawn ∝ <paramref name="weights"/> [B, K] (normalised): indices [B]</summary>
    public abstract Tensor Choose(Tensor weights);
}

/// <summary>
/// Every site draws from one generator (null: libtorch's global one) in the order the sites are
/// reached: training's noise, where the batch is the unit (and the random numbers of every earlier release).
/// </summary>
internal sealed class SharedNoise(Generator? generator) : Noise
{
    /// <inheritdoc/>
    public override Tensor Normal(Tensor like, Site site, int slot) =>
        randn(like.shape, dtype: like.dtype, device: like.device, generator: generator);

    /// <inheritdoc/>
    public override Tensor Bernoulli(Tensor probs, Site site, int slot) => bernoulli(probs, generator);

    /// <inheritdoc/>
    public override Tensor Uniform(Tensor like, Site site, int slot) =>
        rand(like.shape, dtype: like.dtype, device: like.device, generator: generator);

    /// <inheritdoc/>
    public override Tensor Uniform(long sequences, Device device) =>
        rand(sequences, 1, generator: generator, device: device);

    /// <inheritdoc/>
    public override Tensor Choose(Tensor weights) => multinomial(weights, 1, generator: generator).squeeze(1);
}

/// <summary>
/// Every sequence draws from its own generator, seeded by (seed, the sequence's index), so what a
/// sequence samples does not depend on the other sequences of its batch, nor on the batch size:
/// evaluation's and tracking's noise (docs/design.md §2.8). Per frame each sequence draws one
/// block of K × <see cref="Width"/> uniforms (a draw per sequence and frame, not per site) and
/// every site reads its own columns of it, at the same place whatever the batch holds.
/// </summary>
internal sealed class SequenceNoise : Noise, IDisposable
{
    readonly Generator[] generators;
    readonly int[] starts;       // per site, its first column
    readonly int[] widths;       // per site, the columns of one slot
    readonly int slots;
    Tensor? uniforms, normals;  // this frame's [R, Width] (freed with the frame's dispose scope)
    int k;

    /// <summary>
    /// Noise for the <paramref name="count"/> sequences numbered <paramref name="first"/>, … of a
    /// run seeded <paramref name="seed"/>, for a model of <paramref name="config"/>.
    /// </summary>
    public SequenceNoise(SqairConfig config, ulong seed, long first, long count)
    {
        generators = [.. Enumerable.Range(0, (int)count).Select(i => new Generator(Seed(seed, first + i)))];
        slots = config.MaxObjects;
        var sites = Enum.GetValues<Site>();
        (starts, widths) = (new int[sites.Length], new int[sites.Length]);
        foreach (var site in sites)
        {
            widths[(int)site] = site switch
            {
                Site.PropagatedWhere or Site.DiscoveredWhere => 4,
                Site.PropagatedWhat or Site.DiscoveredWhat => config.NWhat,
                _ => 1,
            };
            starts[(int)site] = Width;
            Width += widths[(int)site] * (PerSlot(site) ? slots : 1);
        }
    }

    /// <summary>Uniforms one particle row draws per frame.</summary>
    public int Width { get; }

    /// <summary>
    /// The generator seed of sequence <paramref name="index"/>: seed 0 gives the index itself; other
    /// seeds move every sequence to a far-away stream (an odd multiplier keeps distinct seeds distinct).
    /// </summary>
    public static ulong Seed(ulong seed, long index) => unchecked(seed * 0x9E3779B97F4A7C15UL + (ulong)index);

    static bool PerSlot(Site site) => site is not (Site.DiscoveryDropout or Site.Resampling);

    /// <inheritdoc/>
    public override void BeginFrame(long sequences, int k, Device device)
    {
        if (sequences != generators.Length)
            throw new InvalidOperationException($"noise for {generators.Length} sequences, asked for {sequences}");
        this.k = k;
        // Drawn on the CPU, where the generators live, and moved once.
        uniforms = cat([.. generators.Select(g => rand(k, Width, generator: g))]).to(device);
        normals = null;
    }

    /// <inheritdoc/>
    public override Tensor Normal(Tensor like, Site site, int slot)
    {
        // Φ⁻¹(u) = √2 erfinv(2u − 1), with 2u − 1 moved half a step into (−1, 1) so that u = 0 stays finite.
        normals ??= Frame().mul(Kept(2.0)).sub(Kept(1.0 - UniformStep)).erfinv().mul(Kept(Math.Sqrt(2)));
        return Columns(normals, site, slot).reshape(like.shape);
    }

    /// <inheritdoc/>
    public override Tensor Bernoulli(Tensor probs, Site site, int slot) =>
        Columns(Frame(), site, slot).reshape(probs.shape).lt(probs).to(probs.dtype);

    /// <inheritdoc/>
    public override Tensor Uniform(Tensor like, Site site, int slot) =>
        Columns(Frame(), site, slot).reshape(like.shape).to(like.dtype);

    /// <inheritdoc/>
    public override Tensor Uniform(long sequences, Device device) =>
        Columns(Frame(), Site.Resampling, 0).view(sequences, k).narrow(1, 0, 1);

    /// <inheritdoc/>
    public override Tensor Choose(Tensor weights)
    {
        var u = cat([.. generators.Select(g => rand(1, generator: g))]).to(weights.device).unsqueeze(1);
        return searchsorted(weights.cumsum(1).contiguous(), u, right: true).squeeze(1)
            .clamp_max(Kept(weights.shape[1] - 1));
    }

    Tensor Frame() => uniforms ?? throw new InvalidOperationException("noise read before BeginFrame");

    Tensor Columns(Tensor frame, Site site, int slot)
    {
        var (start, width) = ColumnsOf(site, slot);
        return frame.narrow(1, start, width);
    }

    /// <summary>The first column and the number of columns that a site's slot reads.</summary>
    internal (int Start, int Width) ColumnsOf(Site site, int slot)
    {
        if (slot < 0 || slot >= SlotsOf(site))
            throw new ArgumentOutOfRangeException(nameof(slot), slot, $"{site} has no such slot");
        return (starts[(int)site] + slot * widths[(int)site], widths[(int)site]);
    }

    /// <summary>The slots of <paramref name="site"/>: N for an object's site, 1 for a row's or a sequence's.</summary>
    internal int SlotsOf(Site site) => PerSlot(site) ? slots : 1;

    /// <summary>The spacing of float32 uniforms in [0, 1): rand's values are multiples of 2⁻²⁴.</summary>
    const double UniformStep = 1.0 / (1 << 24);

    /// <summary>Frees the generators.</summary>
    public void Dispose()
    {
        foreach (var g in generators) g.Dispose();
    }
}
