using TorchSharp;
using TorchSharp.Modules;
using static Sqair.KeptScalars;
using static Sqair.Model.Activations;
using static Sqair.Model.Distributions;
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
    // snake_case on purpose: RegisterComponents names each parameter after its field ("propagation.where_bias.…"), and
    // these are the names in checkpoints, as PyTorch would write them (docs/design.md §2).
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

    /// <summary>Learned initial temporal and prior RNN states for <paramref name="rows"/>×<paramref name="slots"/> new objects.</summary>
    public (Tensor Temporal, Tensor Prior) InitialStates(long rows, long slots) =>
        (temporal_init.expand(rows, slots, -1), prior_init.expand(rows, slots, -1));

    /// <summary>The propagation prior: per-object presence logits (gated), where/what Gaussians, next prior state.</summary>
    public (Tensor PresenceLogit, Tensor WhereLoc, Tensor WhereScale, Tensor WhatLoc, Tensor WhatScale, Tensor State) Prior(ObjectSlots prev)
    {
        long r = prev.What.shape[0], n = prev.What.shape[1];
        int h = c.NHidden, d = c.NWhat;
        var state = prior_rnn.call(cat([prev.What, prev.Where], -1).view(r * n, d + 4), prev.Prior.reshape(r * n, h));
        var stats = prior_stats.call(state).view(r, n, -1).split([1, 4, d, 4, d], -1);
        var logit = GateLogits(stats[0].squeeze(-1).Plus(Kept(c.PropPriorStepBias)), prev.Presence);
        return (logit, stats[1], PositiveScale(stats[3]), stats[2], PositiveScale(stats[4]), state.view(r, n, h));
    }

    /// <summary>Samples z_t ~ p(z_t | z_{t−1}) for every object: presence (only for objects present at t − 1), where and what.</summary>
    public (ObjectSlots Slots, Tensor PriorPresenceLogit) SamplePrior(ObjectSlots prev)
    {
        var prior = Prior(prev);
        var present = bernoulli(prior.PresenceLogit.sigmoid()) * prev.Presence;
        var sampledWhere = prior.WhereLoc.Plus(prior.WhereScale * randn_like(prior.WhereLoc));
        var what = prior.WhatLoc.Plus(prior.WhatScale * randn_like(prior.WhatLoc));
        var ids = prev.Ids.masked_fill(present.lt(Kept(0.5)), Kept(-1L));
        return (new ObjectSlots(what, sampledWhere, present, prior.PresenceLogit.sigmoid(), ids, prev.Temporal, prior.State), prior.PresenceLogit);
    }

    /// <summary>The posterior of every object present at t − 1, with noise from <paramref name="generator"/> (null: the global one).</summary>
    public (ObjectSlots Slots, StepTerms Terms, Tensor PriorPresenceLogit) Forward(Tensor x, ObjectSlots prev, Module<Tensor, Tensor> glimpseEncoder,
                                                                                 Generator? generator = null)
    {
        long r = x.shape[0];
        int n = c.MaxObjects, d = c.NWhat, g = c.GlimpseSize, h = c.NHidden;
        long ch = x.shape[1];
        var prior = Prior(prev);
        var tril = where_tril.tril(-1).t();

        // What depends only on the previous step is computed for all N objects at once: the
        // glimpse mask, the where bias, and the first glimpse (at where_{t−1} + bias) with its features.
        var hPrev = prev.Temporal.reshape(r * n, h);
        var masks = c.MaskedGlimpse ? glimpse_mask.call(hPrev).sigmoid().view(r, n, 1, g, g) : null;
        var bias = where_bias.call(hPrev).view(r, n, 4).mul(Kept(WhereBiasScale));
        var firstGlimpses = SpatialTransformer.Extract(x, Boxes.Windows(prev.Where.Plus(bias), c.ShiftRange), g);   // [R, N, C, G, G]
        if (masks is not null) firstGlimpses = firstGlimpses * masks;
        var features = glimpseEncoder.call(firstGlimpses.reshape(r * n, ch, g, g)).view(r, n, -1).narrow(-1, 0, d);

        var s = rnn.InitialState(r);
        Tensor whatK = zeros(r, d, device: x.device), whereK = zeros(r, 4, device: x.device), presK = zeros(r, 1, device: x.device);
        // Per slot: the samples, their noise and scales, and the presence logits. The log-densities
        // are computed once on all N slots after the loop (a third of the ops of doing it per slot).
        var what = new Tensor[n]; var wheres = new Tensor[n]; var pres = new Tensor[n]; var logits = new Tensor[n]; var temporalState = new Tensor[n];
        var whereNoise = new Tensor[n]; var whereScale = new Tensor[n]; var whatNoise = new Tensor[n]; var whatScales = new Tensor[n];
        for (int k = 0; k < n; k++)
        {
            var hk = prev.Temporal.select(1, k);
            var whatP = prev.What.select(1, k);
            var whereP = prev.Where.select(1, k);
            var presP = prev.Presence.narrow(1, k, 1);

            s = rnn.call(cat([features.select(1, k), whatK, whereK, presK, whatP, whereP, presP, hk], -1), s);

            // where ~ N(where_{t−1} + loc, L Lᵀ), L = diag(scale) + scale ⊙ strict-lower(M)
            var (locDelta, scaleLogit) = transform.call(cat([s, whereP, hk], -1));
            var loc = whereP.Plus(locDelta);
            var scale = PositiveScale(scaleLogit.sub(Kept(1.0)));
            var eps = StandardNormal(loc, generator);
            var whereK1 = loc.addcmul(scale, eps.Plus(eps.matmul(tril)), Kept(1.0));

            var glimpse = SpatialTransformer.Extract(x, Boxes.Windows(whereK1, c.ShiftRange), g);
            if (masks is not null) glimpse = glimpse * masks.select(1, k);
            var enc = glimpseEncoder.call(glimpse).split([d, d], -1);
            var encLoc = enc[0];
            var encScale = PositiveScale(enc[1]);

            var hNew = temporal.call(cat([s, whereK1, encLoc, encScale], -1), hk);
            var tStats = what_temporal.call(hNew).split([d, d], -1);
            var tScale = PositiveScale(tStats[1]);
            // forget, input and temporal gates, kept below 1 so that 1 − gate never vanishes
            var gate = gates.call(hNew).sigmoid().mul(Kept(GateCeiling)).split([d, d, d], -1);
            Tensor forget = gate[0], input = gate[1], temporalGate = gate[2];
            var oneMinusInput = input.OneMinus();
            var oneMinusTemporal = temporalGate.OneMinus();
            var whatLoc = (forget * whatP).addcmul(oneMinusInput, encLoc, Kept(1.0)).addcmul(oneMinusTemporal, tStats[0], Kept(1.0));
            var whatScale = (oneMinusInput * encScale).addcmul(oneMinusTemporal, tScale, Kept(1.0));
            var whatEps = StandardNormal(whatLoc, generator);
            var whatK1 = whatLoc.addcmul(whatScale, whatEps, Kept(1.0));

            var logit = GateLogits(presence.call(cat([s, hNew, whatK1], -1)), presP);
            Tensor z;
            using (no_grad()) z = bernoulli(logit.sigmoid(), generator);
            var presK1 = z * presP;

            what[k] = whatK = whatK1;
            wheres[k] = whereK = whereK1;
            presK = presK1;
            pres[k] = presK1;
            logits[k] = logit;
            temporalState[k] = hNew;
            (whereNoise[k], whereScale[k], whatNoise[k], whatScales[k]) = (eps, scale, whatEps, whatScale);
        }
        var present = cat(pres, 1);                             // [R, N]
        var presenceLogits = cat(logits, 1);
        var whatAll = stack(what, 1);
        var whereAll = stack(wheres, 1);
        // what and where count for objects present at t; presence for objects present at t − 1
        var logqPresence = BernoulliLogProb(present, presenceLogits) * prev.Presence;
        var logqCont = NoiseLogProb(stack(whereNoise, 1), stack(whereScale, 1)).sum(-1).Plus(NoiseLogProb(stack(whatNoise, 1), stack(whatScales, 1)).sum(-1));
        var logpCont = NormalLogProb(whereAll, prior.WhereLoc, prior.WhereScale).sum(-1).Plus(NormalLogProb(whatAll, prior.WhatLoc, prior.WhatScale).sum(-1));
        var logpPresence = BernoulliLogProb(present, prior.PresenceLogit) * prev.Presence;
        var logq = (present * logqCont).Plus(logqPresence).sum(1);
        var logp = (present * logpCont).Plus(logpPresence).sum(1);

        var ids = prev.Ids.masked_fill(present.lt(Kept(0.5)), Kept(-1L));
        var slots = new ObjectSlots(whatAll, whereAll, present, presenceLogits.sigmoid(), ids, stack(temporalState, 1), prior.State);
        return (slots, new StepTerms(logq, logp, logqPresence.sum(1)), prior.PresenceLogit);
    }

    /// <summary>The learned correction of where_{t−1} before the first glimpse is scaled down (the original's 0.1) so it starts small.</summary>
    const double WhereBiasScale = 0.1;

    /// <summary>The what gates are sigmoid · 0.9999 (the original's), so the posterior scale (1 − i)·σ stays positive.</summary>
    const double GateCeiling = 0.9999;
}
