using TorchSharp;
using TorchSharp.Modules;
using static Sqair.Model.Activations;
using static Sqair.Model.Distributions;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Sqair.Model;

/// <summary>Log-density terms of one time step, per particle row [R].</summary>
internal sealed record StepTerms(Tensor LogQ, Tensor LogP, Tensor LogQDiscrete);

/// <summary>
/// Propagation (docs/design.md §2.3): the posterior q(z_t | x_t, z_{t−1}) of every object present at t − 1,
/// slot by slot so that each object sees what the previous slots explained, and the prior
/// p(z_t | z_{t−1}) that treats objects independently.
/// Shapes: x [R, C, H, W]; previous slots [R, N, ·]; outputs [R, N, ·].
/// </summary>
internal sealed class Propagation : Module
{
    readonly IModelSettings c;
    // snake_case on purpose: RegisterComponents names each parameter after its field
    // ("propagation.where_bias.…"), and these are the names in checkpoints, as PyTorch would write them
    // (docs/design.md §2).
    readonly Mlp where_bias, glimpse_mask, presence;
    readonly VanillaRnn rnn;
    readonly TransformEstimator transform;
    /// <summary>Strictly lower-triangular part gives the correlation of the where posterior.</summary>
    readonly Parameter where_tril;
    readonly GRUCell temporal;
    readonly Linear what_temporal, gates;
    // prior
    readonly GRUCell prior_rnn;
    readonly Linear prior_stats;
    readonly Parameter temporal_init, prior_init;

    public Propagation(IModelSettings c) : base("propagation")
    {
        this.c = c;
        int h = c.NHidden, d = c.NWhat, g = c.GlimpseSize;
        where_bias = new Mlp("where_bias", h, [128], 4);
        glimpse_mask = new Mlp("glimpse_mask", h, [128], (long)g * g).WithOutputBias(1.0);
        rnn = new VanillaRnn("rnn", d + (d + 5) + (d + 5) + h, h);
        transform = new TransformEstimator("transform", h + 4 + h, h, c.TransformVarBias);
        where_tril = Parameter(zeros(4, 4));
        temporal = GRUCell(h + 4 + 2 * d, h);
        what_temporal = Linear(h, 2 * d);
        gates = Linear(h, 3 * d);
        using (no_grad()) gates.bias!.fill_(Kept(1.0));
        presence = new Mlp("presence", 2 * h + d, [128], 1).WithOutputBias(c.PropStepBias);
        prior_rnn = GRUCell(d + 4, h);
        prior_stats = Linear(h, 1 + 2 * (4 + d));
        temporal_init = Parameter(zeros(h));
        prior_init = Parameter(zeros(h));
        RegisterComponents();
    }

    /// <summary>
    /// Learned initial temporal and prior RNN states for <paramref name="rows"/>×<paramref name="slots"/> new objects.
    /// </summary>
    public (Tensor Temporal, Tensor Prior) InitialStates(long rows, long slots) =>
        (temporal_init.expand(rows, slots, -1), prior_init.expand(rows, slots, -1));

    /// <summary>
    /// The propagation prior: per-object presence logits (gated), where/what Gaussians, next prior state.
    /// </summary>
    public (Tensor PresenceLogit, Tensor WhereLoc, Tensor WhereScale, Tensor WhatLoc, Tensor WhatScale, Tensor State)
        Prior(ObjectSlots prev)
    {
        long r = prev.What.shape[0], n = prev.What.shape[1];
        int h = c.NHidden, d = c.NWhat;
        var state = prior_rnn.call(cat([prev.What, prev.Where], -1).view(r * n, d + 4), prev.Prior.reshape(r * n, h));
        var stats = prior_stats.call(state).view(r, n, -1).split([1, 4, d, 4, d], -1);
        var logit = GateLogits(WithStepBias(stats[0].squeeze(-1), prev), prev.Presence);
        return (logit, stats[1], PositiveScale(stats[3]), stats[2], PositiveScale(stats[4]), state.view(r, n, h));
    }

    /// <summary>
    /// The prior's presence logits [R, N] plus its bias: prop_prior_step_bias, or with prop_prior_drawn_pixels that
    /// bias times 2·min(1, ink / pixels) − 1 from what each object drew at t − 1 (+bias for a drawn object, −bias
    /// for an empty one; docs/design.md §2.3).
    /// </summary>
    Tensor WithStepBias(Tensor logit, ObjectSlots prev)
    {
        double bias = c.PropPriorStepBias;
        if (c.PropPriorDrawnPixels <= 0 || prev.Ink is null) return logit.Plus(Kept(bias));
        return logit.Plus(prev.Ink.div(Kept(c.PropPriorDrawnPixels)).clamp_max(Kept(1.0)).Affine(2 * bias, -bias));
    }

    /// <summary>
    /// Samples z_t ~ p(z_t | z_{t−1}) for every object: presence (only for objects present at t − 1), where and
    /// what.
    /// </summary>
    public (ObjectSlots Slots, Tensor PriorPresenceLogit) SamplePrior(ObjectSlots prev)
    {
        var prior = Prior(prev);
        var present = bernoulli(prior.PresenceLogit.sigmoid()) * prev.Presence;
        var sampledWhere = prior.WhereLoc.Plus(prior.WhereScale * randn_like(prior.WhereLoc));
        var what = prior.WhatLoc.Plus(prior.WhatScale * randn_like(prior.WhatLoc));
        var ids = prev.Ids.masked_fill(present.lt(Kept(0.5)), Kept(-1L));
        return (new ObjectSlots(what, sampledWhere, present, prior.PresenceLogit.sigmoid(), ids, prev.Temporal,
                                prior.State), prior.PresenceLogit);
    }

    /// <summary>
    /// The posterior of every object present at t − 1, with noise from <paramref name="noise"/>. With a
    /// temperature <paramref name="tau"/> presence is a binary Concrete sample (docs/design.md §4), else Bernoulli.
    /// </summary>
    public (ObjectSlots Slots, StepTerms Terms, Tensor PriorPresenceLogit) Forward(Tensor x, ObjectSlots prev,
                                                                                 Module<Tensor, Tensor> glimpseEncoder,
                                                                                 Noise noise, double? tau = null)
    {
        long r = x.shape[0];
        int n = c.MaxObjects, d = c.NWhat;
        var (masks, features) = FirstGlimpses(x, prev, glimpseEncoder);
        var frame = new FrameInputs(x, prev, where_tril.tril(-1).t(), glimpseEncoder, noise, tau);
        var s = rnn.InitialState(r);
        var before = (What: zeros(r, d, device: x.device), Where: zeros(r, 4, device: x.device),
                      Presence: zeros(r, 1, device: x.device));
        // Slot by slot (§2.3 steps 2–5); the log-densities follow on all N slots at once (a third of the ops of
        // doing it per slot).
        var slots = new SlotSample[n];
        for (int k = 0; k < n; k++)
        {
            (slots[k], s) = Slot(frame, k, features.select(1, k), masks?.select(1, k), before, s);
            before = (slots[k].What, slots[k].Where, slots[k].Weight);
        }
        return Densities(prev, slots, tau);
    }

    /// <summary>
    /// §2.3 step 1, for all N objects at once (it depends only on t − 1): the glimpse masks [R, N, 1, G, G]
    /// (null when not <c>masked_glimpse</c>) and the what-locs [R, N, D] of the first glimpses, at
    /// where_{t−1} + where-bias.
    /// </summary>
    (Tensor? Masks, Tensor Features) FirstGlimpses(Tensor x, ObjectSlots prev, Module<Tensor, Tensor> glimpseEncoder)
    {
        long r = x.shape[0], ch = x.shape[1];
        int n = c.MaxObjects, g = c.GlimpseSize;
        var hPrev = prev.Temporal.reshape(r * n, c.NHidden);
        var masks = c.MaskedGlimpse ? glimpse_mask.call(hPrev).sigmoid().view(r, n, 1, g, g) : null;
        var bias = where_bias.call(hPrev).view(r, n, 4).mul(Kept(WhereBiasScale));
        // [R, N, C, G, G]
        var glimpses = SpatialTransformer.Extract(x, Boxes.Windows(prev.Where.Plus(bias), c.ShiftRange), g);
        if (masks is not null) glimpses = glimpses * masks;
        return (masks, glimpseEncoder.call(glimpses.reshape(r * n, ch, g, g)).view(r, n, -1).narrow(-1, 0, c.NWhat));
    }

    /// <summary>
    /// One slot's samples [R, ·]: what, where, presence (a column [R, 1]), its presence logit, new temporal
    /// state, and the noise and scales the log-densities need; when relaxed, the relaxed presence
    /// <paramref name="Weight"/> and its logit-space sample <paramref name="X"/> (else Weight is Presence).
    /// </summary>
    sealed record SlotSample(Tensor What, Tensor Where, Tensor Presence, Tensor Logit, Tensor Temporal,
                             Tensor WhereNoise, Tensor WhereScale, Tensor WhatNoise, Tensor WhatScale,
                             Tensor Weight, Tensor? X);

    /// <summary>
    /// What every slot of a frame reads: the frame x [R, C, H, W], the slots of t − 1, the strictly
    /// lower part of the where correlation (transposed), the glimpse encoder, the noise source and the
    /// presence temperature (null: discrete presence).
    /// </summary>
    sealed record FrameInputs(Tensor X, ObjectSlots Prev, Tensor Tril, Module<Tensor, Tensor> GlimpseEncoder,
                              Noise Noise, double? Tau);

    /// <summary>
    /// §2.3 steps 2–5 for slot <paramref name="k"/>, after the slot <paramref name="before"/> (zeros for the first):
    /// the RNN carried across slots, where, what, presence. Returns the slot and the RNN's new state.
    /// </summary>
    (SlotSample Slot, Tensor Rnn) Slot(FrameInputs frame, int k, Tensor feature, Tensor? mask,
                                       (Tensor What, Tensor Where, Tensor Presence) before, Tensor s)
    {
        var (x, prev, tril, glimpseEncoder, noise, tau) = frame;
        int d = c.NWhat;
        var hk = prev.Temporal.select(1, k);
        var whatP = prev.What.select(1, k);
        var whereP = prev.Where.select(1, k);
        var presP = prev.Presence.narrow(1, k, 1);
        // The networks read the relaxed presences (the 0/1 ones when discrete), so gradients reach them.
        var weightP = prev.Relaxed is null ? presP : prev.Relaxed.narrow(1, k, 1);

        s = rnn.call(cat([feature, before.What, before.Where, before.Presence, whatP, whereP, weightP, hk], -1), s);

        // where ~ N(where_{t−1} + loc, L Lᵀ), L = diag(scale) + scale ⊙ strict-lower(M)
        var (locDelta, scaleLogit) = transform.call(cat([s, whereP, hk], -1));
        var loc = whereP.Plus(locDelta);
        var scale = PositiveScale(scaleLogit.sub(Kept(1.0)));
        var eps = noise.Normal(loc, Site.PropagatedWhere, k);
        var where = loc.addcmul(scale, eps.Plus(eps.matmul(tril)), Kept(1.0));

        var glimpse = SpatialTransformer.Extract(x, Boxes.Windows(where, c.ShiftRange), c.GlimpseSize);
        if (mask is not null) glimpse = glimpse * mask;
        var enc = glimpseEncoder.call(glimpse).split([d, d], -1);
        var encLoc = enc[0];
        var encScale = PositiveScale(enc[1]);

        var hNew = temporal.call(cat([s, where, encLoc, encScale], -1), hk);
        var tStats = what_temporal.call(hNew).split([d, d], -1);
        var tScale = PositiveScale(tStats[1]);
        // forget, input and temporal gates, kept below 1 so that 1 − gate never vanishes
        var gate = gates.call(hNew).sigmoid().mul(Kept(GateCeiling)).split([d, d, d], -1);
        Tensor forget = gate[0], oneMinusInput = gate[1].OneMinus(), oneMinusTemporal = gate[2].OneMinus();
        var whatLoc = (forget * whatP).addcmul(oneMinusInput, encLoc, Kept(1.0))
            .addcmul(oneMinusTemporal, tStats[0], Kept(1.0));
        var whatScale = (oneMinusInput * encScale).addcmul(oneMinusTemporal, tScale, Kept(1.0));
        var whatEps = noise.Normal(whatLoc, Site.PropagatedWhat, k);
        var what = whatLoc.addcmul(whatScale, whatEps, Kept(1.0));

        var logit = GateLogits(presence.call(cat([s, hNew, what], -1)), presP);
        if (tau is { } t)
        {
            var (hard, relaxed, xs) = Relax(logit, noise.Logistic(logit, Site.PropagatedPresence, k), t);
            return (new SlotSample(what, where, hard * presP, logit, hNew, eps, scale, whatEps, whatScale,
                                   relaxed * weightP, xs), s);
        }
        Tensor z;
        using (no_grad()) z = noise.Bernoulli(logit.sigmoid(), Site.PropagatedPresence, k);
        var present = z * presP;
        return (new SlotSample(what, where, present, logit, hNew, eps, scale, whatEps, whatScale, present, null), s);
    }

    /// <summary>
    /// The slots of t, and log q, log p and log q of the presences summed over slots [R]: what and
    /// where count for objects present at t, presence for objects present at t − 1. Relaxed (a temperature
    /// <paramref name="tau"/>), what and where are weighted by the relaxed presences and presence is scored by
    /// its binary Concrete densities (docs/design.md §4).
    /// </summary>
    (ObjectSlots Slots, StepTerms Terms, Tensor PriorPresenceLogit) Densities(ObjectSlots prev, SlotSample[] slots,
                                                                             double? tau)
    {
        Tensor All(Func<SlotSample, Tensor> field) => stack(slots.Select(field).ToArray(), 1);
        var prior = Prior(prev);
        var present = cat(slots.Select(v => v.Presence).ToArray(), 1);                   // [R, N]
        var presenceLogits = cat(slots.Select(v => v.Logit).ToArray(), 1);
        var whatAll = All(v => v.What);
        var whereAll = All(v => v.Where);
        var weight = tau is null ? present : cat(slots.Select(v => v.Weight).ToArray(), 1);
        var xs = tau is null ? null : cat(slots.Select(v => v.X!).ToArray(), 1);
        var logqPresence = (xs is null
            ? BernoulliLogProb(present, presenceLogits)
            : ConcreteLogProb(xs, presenceLogits, tau!.Value)) * prev.Presence;
        var logqCont = NoiseLogProb(All(v => v.WhereNoise), All(v => v.WhereScale)).sum(-1)
            .Plus(NoiseLogProb(All(v => v.WhatNoise), All(v => v.WhatScale)).sum(-1));
        var logpCont = NormalLogProb(whereAll, prior.WhereLoc, prior.WhereScale).sum(-1)
            .Plus(NormalLogProb(whatAll, prior.WhatLoc, prior.WhatScale).sum(-1));
        var logpPresence = (xs is null
            ? BernoulliLogProb(present, prior.PresenceLogit)
            : ConcreteLogProb(xs, prior.PresenceLogit, tau!.Value)) * prev.Presence;
        var logq = (weight * logqCont).Plus(logqPresence).sum(1);
        var logp = (weight * logpCont).Plus(logpPresence).sum(1);

        var ids = prev.Ids.masked_fill(present.lt(Kept(0.5)), Kept(-1L));
        var next = new ObjectSlots(whatAll, whereAll, present, presenceLogits.sigmoid(), ids, All(v => v.Temporal),
                                   prior.State, tau is null ? null : weight);
        return (next, new StepTerms(logq, logp, logqPresence.sum(1)), prior.PresenceLogit);
    }

    /// <summary>
    /// The learned correction of where_{t−1} before the first glimpse is scaled down (the original's 0.1) so it
    /// starts small.
    /// </summary>
    const double WhereBiasScale = 0.1;

    /// <summary>
    /// The what gates are sigmoid · 0.9999 (the original's), so the posterior scale (1 − i)·σ stays positive.
    /// </summary>
    const double GateCeiling = 0.9999;
}
