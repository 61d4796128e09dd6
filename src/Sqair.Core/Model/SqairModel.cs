using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Sqair.Model;

/// <summary>
/// What one time step inferred, per particle row (R = B·K, particles of a sequence contiguous).
/// Canvas [R, C, H, W]; Glimpses [R, N, C, G, G] decoded; Where [R, N, 4] logits; Presence,
/// PresenceProb [R, N]; Ids [R, N] (−1 absent); LogLikelihood, LogP, LogQ [R]; Propagated and
/// Discovered [R] object counts.
/// </summary>
public sealed record FrameOutput(Tensor Canvas, Tensor Glimpses, Tensor Where, Tensor Presence, Tensor PresenceProb, Tensor Ids,
                                 Tensor LogLikelihood, Tensor LogP, Tensor LogQ, Tensor Propagated, Tensor Discovered)
{
    /// <summary>The same step with rows picked by <paramref name="rows"/> [B].</summary>
    public FrameOutput Select(Tensor rows) => new(Canvas[rows], Glimpses[rows], Where[rows], Presence[rows], PresenceProb[rows], Ids[rows],
        LogLikelihood[rows], LogP[rows], LogQ[rows], Propagated[rows], Discovered[rows]);
}

/// <summary>
/// The result of running SQAIR on a batch of sequences. LogWeights [B, K] = Σ_t log w_t;
/// LogQDiscrete [B, K] = log q of every presence variable (for VIMCO); LogLikelihood and Kl
/// [B, K] summed over time; Counts [T, B, K] objects present per frame; Frames (detached) when
/// asked for.
/// </summary>
public sealed record SequenceOutput(Tensor LogWeights, Tensor LogQDiscrete, Tensor LogLikelihood, Tensor Kl, Tensor Counts,
                                    Tensor Propagated, Tensor Discovered, IReadOnlyList<FrameOutput>? Frames)
{
    public long B => LogWeights.shape[0];
    public long K => LogWeights.shape[1];

    /// <summary>
    /// Importance resampling: one particle per sequence drawn with probability ∝ w_k, as row
    /// indices [B] into the B·K rows.
    /// </summary>
    public Tensor ResampleRows(Generator? generator = null)
    {
        var probs = nn.functional.softmax(LogWeights.detach(), 1);
        var k = multinomial(probs, 1, generator: generator).squeeze(1);
        return arange(B, device: k.device) * K + k;
    }
}

/// <summary>
/// SQAIR (Kosiorek et al. 2018): at every frame, propagation of the objects present at t − 1,
/// then discovery of new ones, merging into N slots, and the decoder's likelihood. The AIR
/// baseline runs discovery only. Every part is named as in SPEC §2.
/// </summary>
public sealed class SqairModel : Module
{
    public SqairConfig Config { get; }
    readonly Module<Tensor, Tensor> glimpse_encoder;
    readonly Propagation propagation;
    readonly Discovery discovery;
    readonly Decoder decoder;

    public SqairModel(SqairConfig config) : base("sqair")
    {
        config.Validate();
        Config = config;
        glimpse_encoder = Encoders.Glimpse(config);
        propagation = new Propagation(config);
        discovery = new Discovery(config);
        decoder = new Decoder(config);
        RegisterComponents();
        if (config.Kind == ModelKind.Air)
            foreach (var p in propagation.parameters().Concat(discovery.PropagationOnlyParameters())) p.requires_grad = false;
    }

    public Decoder Decoder => decoder;

    /// <summary>
    /// Runs the model on frames [T, B, C, H, W] with <paramref name="k"/> particles per sequence.
    /// With <paramref name="keepFrames"/> every step's outputs are kept (detached) for evaluation and figures.
    /// </summary>
    public SequenceOutput Forward(Tensor frames, int k, bool keepFrames = false)
    {
        var c = Config;
        long t = frames.shape[0], b = frames.shape[1], r = b * k;
        int n = c.MaxObjects, d = c.NWhat, h = c.NHidden;
        var device = frames.device;
        bool air = c.Kind == ModelKind.Air;

        var (temporal0, prior0) = propagation.InitialStates(r, n);
        var state = new ObjectSlots(zeros(r, n, d, device: device), zeros(r, n, 4, device: device), zeros(r, n, device: device),
                                    zeros(r, n, device: device), full(r, n, -1L, device: device), temporal0, prior0);
        var lastId = full(r, -1L, device: device);
        var logW = zeros(r, device: device);
        var logQDisc = zeros(r, device: device);
        var logLik = zeros(r, device: device);
        var kl = zeros(r, device: device);
        var counts = new List<Tensor>();
        var propagatedCounts = new List<Tensor>();
        var discoveredCounts = new List<Tensor>();
        var kept = keepFrames ? new List<FrameOutput>() : null;

        for (int step = 0; step < t; step++)
        {
            var x = frames[step].repeat_interleave(k, 0);
            ObjectSlots propagated;
            StepTerms? propTerms = null;
            Tensor priorPresenceLogit;
            if (step == 0 || air)
            {
                // Nothing to propagate: every slot absent, and the prior's presence logits gated to "absent".
                propagated = state with { Presence = zeros(r, n, device: device), Ids = full(r, n, -1L, device: device) };
                priorPresenceLogit = full(r, n, -88.0, device: device);
            }
            else
            {
                (propagated, var terms, priorPresenceLogit) = propagation.Forward(x, state, glimpse_encoder);
                propTerms = terms;
            }
            var (discovered, discTerms) = discovery.Forward(x, propagated, priorPresenceLogit, later: step > 0 && !air, glimpse_encoder,
                                                            propagation.InitialStates(r, n), lastId);
            var numDiscovered = discovered.Presence.sum(1);
            lastId = lastId + numDiscovered.to(ScalarType.Int64);
            state = ObjectSlots.Cat(propagated, discovered).CompactFirst(n);

            var (canvas, glimpses) = decoder.Forward(state.What, state.Where, state.Presence);
            var ll = decoder.LogLikelihood(x, canvas);
            var logq = discTerms.LogQ + (propTerms?.LogQ ?? zeros_like(ll));
            var logp = discTerms.LogP + (propTerms?.LogP ?? zeros_like(ll));
            logW = logW + ll + logp - logq;
            logQDisc = logQDisc + discTerms.LogQDiscrete + (propTerms?.LogQDiscrete ?? zeros_like(ll));
            logLik = logLik + ll.detach();
            kl = kl + (logq - logp).detach();
            var count = state.Presence.sum(1).detach();
            var numPropagated = propagated.Presence.sum(1).detach();
            counts.Add(count);
            propagatedCounts.Add(numPropagated);
            discoveredCounts.Add(numDiscovered.detach());
            kept?.Add(new FrameOutput(canvas.detach(), glimpses.detach(), state.Where.detach(), state.Presence.detach(), state.PresenceProb.detach(),
                                      state.Ids, ll.detach(), logp.detach(), logq.detach(), numPropagated, numDiscovered.detach()));
        }
        return new SequenceOutput(logW.view(b, k), logQDisc.view(b, k), logLik.view(b, k), kl.view(b, k),
                                  stack(counts).view(t, b, k), stack(propagatedCounts).view(t, b, k), stack(discoveredCounts).view(t, b, k), kept);
    }
}
