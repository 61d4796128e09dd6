using TorchSharp;
using TorchSharp.Modules;
using static Sqair.Model.Activations;
using static Sqair.Model.Distributions;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Sqair.Model;

/// <summary>
/// Discovery (docs/design.md §2.4): AIR-style sequential inference of up to A = N − (propagated objects
/// present) new objects, conditioned on a DeepSet summary of the propagated ones, with its priors:
/// a categorical number of steps, N(0, 1) for what and an autoregressive Gaussian for where.
/// Shapes: x [R, C, H, W]; propagated slots [R, N, ·]; outputs [R, N, ·].
/// </summary>
internal sealed class Discovery : Module
{
    readonly IModelSettings c;
    // snake_case on purpose: RegisterComponents names each parameter after its field
    // ("discovery.input_encoder.…"), and these are the names in checkpoints, as PyTorch would write them
    // (docs/design.md §2).
    readonly Module<Tensor, Tensor> input_encoder;
    readonly Mlp conditioning, presence;
    readonly VanillaRnn rnn;
    readonly TransformEstimator transform;
    // priors
    readonly Parameter steps_bias, steps_time_bias;
    readonly Mlp steps_mlp;
    readonly Linear where_prior_cond, where_prior_readout;
    readonly VanillaRnn where_prior_rnn;
    readonly Mlp where_prior_cond_hidden;
    readonly Parameter where_prior_init_sample;

    public Discovery(IModelSettings c) : base("discovery")
    {
        this.c = c;
        int h = c.NHidden, d = c.NWhat, n = c.MaxObjects;
        input_encoder = Networks.Input(c);
        conditioning = new Mlp("conditioning", d + 4, [h, h]);
        rnn = new VanillaRnn("rnn", h + h + d + 5, h);
        transform = new TransformEstimator("transform", h, h, c.TransformVarBias);
        presence = new Mlp("presence", h + d, [128], 1).WithOutputBias(c.DiscStepBias);

        steps_bias = Parameter(zeros(n + 1));
        var timeBias = zeros(n + 1);
        timeBias[0] = NothingNewAfterFirstFrameBias;
        steps_time_bias = Parameter(timeBias);
        steps_mlp = new Mlp("steps_mlp", 1, [10], n + 1);

        where_prior_cond_hidden = new Mlp("where_prior_cond", h + 1, [128]);
        where_prior_cond = Linear(128, 4);
        where_prior_rnn = new VanillaRnn("where_prior_rnn", 4, 4);
        where_prior_readout = Linear(4, 8);
        using (no_grad())
            where_prior_readout.bias!.copy_(
                tensor(new float[] { (float)c.ScalePrior, (float)c.ScalePrior, 0, 0, 1, 1, 1, 1 }));
        where_prior_init_sample = Parameter(zeros(4));
        RegisterComponents();
    }

    /// <summary>
    /// Initial bias of "no new object" after the first frame (the original's 10): objects present
    /// at t − 1 are propagated, so discovery starts out expecting to find nothing new.
    /// </summary>
    const float NothingNewAfterFirstFrameBias = 10f;

    /// <summary>Parameters that only matter when objects are propagated (frozen in the AIR baseline).</summary>
    public IEnumerable<Parameter> PropagationOnlyParameters() => conditioning.parameters().Append(steps_time_bias);

    /// <summary>
    /// Features [B·K, hidden] of frames [B, C, H, W] for K particles each, already multiplied by the discovery
    /// RNN's weight of their columns (with its bias): every step reads them the same, so the product is taken
    /// once per frame. The encoder runs once per frame, not once per identical particle row (a K-fold saving on
    /// the largest layer).
    /// </summary>
    public Tensor EncodeFrames(Tensor frames, int k) =>
        rnn.Project(input_encoder.call(frames)).repeat_interleave(k, 0);

    /// <summary>
    /// Discovers new objects in x [R, C, H, W], whose <see cref="EncodeFrames"/> features are
    /// <paramref name="features"/>. <paramref name="priorPresenceLogit"/> [R, N] are the propagation
    /// prior's gated presence logits (e in docs/design.md §2.4); <paramref name="later"/> is t &gt; 0. Noise comes
    /// from <paramref name="noise"/>. At t &gt; 0, discovery stops at a proposal
    /// whose window overlaps a present propagated object's with IoU above <paramref name="rejectIoU"/>
    /// (0: never), and in training it is switched off for a row with probability <c>disc_dropout</c>.
    /// Both lower the cap A on the number of new objects, so q(n) stays the proposal that was sampled.
    /// With a temperature <paramref name="tau"/> the presences are binary Concrete samples and the chain of steps a
    /// running product of them (docs/design.md §4).
    /// </summary>
    public (ObjectSlots Slots, StepTerms Terms) Forward(Tensor x, Tensor features, ObjectSlots propagated,
                                                        Tensor priorPresenceLogit, bool later,
                                                        Module<Tensor, Tensor> glimpseEncoder,
                                                        (Tensor Temporal, Tensor Prior) initialStates, Tensor lastId,
                                                        double rejectIoU, Noise noise, double? tau = null)
    {
        var (cond, allowed) = Conditioning(propagated);
        if (later && training && c.DiscDropout > 0)
            allowed = allowed * noise.Bernoulli(full_like(allowed, Kept(1 - c.DiscDropout)), Site.DiscoveryDropout, 0);
        // [R, N, 4] windows of the propagated objects, to reject proposals that duplicate one
        var followed = later && rejectIoU > 0 ? Boxes.Coords(propagated.Where, c.ShiftRange) : null;
        var steps = Recur(x, features, cond, allowed, glimpseEncoder, (followed, propagated.Presence, rejectIoU),
                          noise, tau);
        return Score(steps, cond, priorPresenceLogit, later, initialStates, lastId, tau);
    }

    /// <summary>One discovery step: its samples, the noise and scales they were drawn with, and its presence.</summary>
    readonly record struct Step(Tensor What, Tensor Where, Tensor WhatNoise, Tensor WhatScale, Tensor WhereNoise,
                                Tensor WhereScale, PresenceStep Presence);

    /// <summary>
    /// A step's presence: the 0/1 chain <paramref name="Present"/>, the chain <paramref name="Weight"/> that weighs
    /// the step (the relaxed one with a temperature, else the same), its gated logit and, with a temperature, its
    /// Concrete sample's logit <paramref name="X"/> and its gate.
    /// </summary>
    readonly record struct PresenceStep(Tensor Present, Tensor Weight, Tensor GatedLogit, Tensor? X, Tensor? Gate);

    /// <summary>
    /// The N steps of discovery's recurrence on x [R, C, H, W], each proposing where, then what, then whether an
    /// object is present. <paramref name="allowed"/> [R] is the cap A; a proposal that duplicates a present
    /// propagated object (<paramref name="rejection"/>'s windows, none when null) lowers it to the step's index.
    /// </summary>
    Step[] Recur(Tensor x, Tensor features, Tensor cond, Tensor allowed, Module<Tensor, Tensor> glimpseEncoder,
                 (Tensor? Followed, Tensor Presence, double IoU) rejection, Noise noise, double? tau)
    {
        long r = x.shape[0];
        int d = c.NWhat, h = c.NHidden;
        var s = rnn.InitialState(r);
        // The RNN's input columns [features, cond] are the same at every step: their share is computed once.
        var fixedPart = features.addmm(cond, rnn.WeightT(h, h));
        var restT = rnn.WeightT(2 * h, d + 5 + h);
        Tensor whatJ = zeros(r, d, device: x.device), whereJ = zeros(r, 4, device: x.device),
            presJ = ones(r, 1, device: x.device);
        var weightJ = presJ;   // the relaxed chain (the 0/1 one when discrete)
        var steps = new Step[c.MaxObjects];
        for (int j = 0; j < steps.Length; j++)
        {
            s = VanillaRnn.Step(fixedPart, cat([whatJ, whereJ, weightJ, s], -1), restT);
            var (loc, scaleLogit) = transform.call(s);
            var (whereScale, whereNoise) = (PositiveScale(scaleLogit), noise.Normal(loc, Site.DiscoveredWhere, j));
            var whereK = loc.addcmul(whereScale, whereNoise, Kept(1.0));
            var window = Boxes.Windows(whereK, c.ShiftRange);
            if (rejection.Followed is { } followed)
                allowed = RejectDuplicates(window, followed, rejection.Presence, allowed, rejection.IoU, j);
            var enc = glimpseEncoder.call(SpatialTransformer.Extract(x, window, c.GlimpseSize)).split([d, d], -1);
            var (whatScale, whatNoise) = (PositiveScale(enc[1]), noise.Normal(enc[0], Site.DiscoveredWhat, j));
            var whatK = enc[0].addcmul(whatScale, whatNoise, Kept(1.0));
            var step = Presence(s, whatK, presJ, weightJ, allowed, j, noise, tau);
            steps[j] = new(whatK, whereK, whatNoise, whatScale, whereNoise, whereScale, step);
            (whatJ, whereJ, presJ, weightJ) = (whatK, whereK, step.Present, step.Weight);
        }
        return steps;
    }

    /// <summary>
    /// The cap A [R] lowered to step <paramref name="j"/> in the rows whose proposal's window overlaps a present
    /// propagated object's (<paramref name="followed"/> [R, N, 4]) with IoU above <paramref name="rejectIoU"/>.
    /// </summary>
    static Tensor RejectDuplicates(Boxes.Window window, Tensor followed, Tensor presence, Tensor allowed,
                                   double rejectIoU, int j)
    {
        var duplicate = Boxes.WindowIoU(window.Coords().unsqueeze(1), followed).mul(presence)
            .gt(Kept(rejectIoU)).any(1);
        return allowed.masked_fill(duplicate.logical_and(allowed.gt(Kept((long)j))), Kept((long)j));
    }

    /// <summary>
    /// Step <paramref name="j"/>'s presence given the RNN state <paramref name="s"/> and its what: a Bernoulli
    /// sample, or with a temperature <paramref name="tau"/> a binary Concrete one, gated by the 0/1 chain
    /// <paramref name="present"/> and the cap <paramref name="allowed"/>; <paramref name="weight"/> is the relaxed
    /// chain so far.
    /// </summary>
    PresenceStep Presence(Tensor s, Tensor what, Tensor present, Tensor weight, Tensor allowed, int j, Noise noise,
                          double? tau)
    {
        var logit = presence.call(cat([s, what], -1));
        // Steps past the cap are forced absent, so q(n) has no mass beyond A.
        var gate = present * allowed.gt(Kept((long)j)).unsqueeze(-1);   // float × bool is float
        var gated = GateLogits(logit, gate);
        if (tau is { } t)
        {
            var (hard, relaxed, xj) = Relax(gated, noise.Logistic(gated, Site.DiscoveredPresence, j), t);
            // The cap is a hard stop for the relaxed chain too.
            var relaxedWeight = relaxed * weight * allowed.gt(Kept((long)j)).unsqueeze(-1);
            return new(hard * gate, relaxedWeight, gated, xj, gate);
        }
        Tensor z;
        using (no_grad()) z = noise.Bernoulli(gated.sigmoid(), Site.DiscoveredPresence, j);
        var presentJ = z * gate;
        return new(presentJ, presentJ, gated, null, null);
    }

    /// <summary>
    /// The discovered objects of <paramref name="steps"/> and their terms: log q of the samples (the number of
    /// steps, where and what), log p under the priors, and log q of the number alone.
    /// </summary>
    (ObjectSlots Slots, StepTerms Terms) Score(Step[] steps, Tensor cond, Tensor priorPresenceLogit, bool later,
                                               (Tensor Temporal, Tensor Prior) initialStates, Tensor lastId,
                                               double? tau)
    {
        var present = cat(Each(steps, s => s.Presence.Present), 1);                 // [R, N]
        var weight = tau is null ? present : cat(Each(steps, s => s.Presence.Weight), 1);
        var presenceLogits = cat(Each(steps, s => s.Presence.GatedLogit), 1);
        var whatAll = Stacked(steps, s => s.What);
        var whereAll = Stacked(steps, s => s.Where);
        var count = present.sum(1).to(ScalarType.Int64);
        var open = tau is null ? null : cat(Each(steps, s => s.Presence.Gate!), 1);
        var logitX = tau is null ? null : cat(Each(steps, s => s.Presence.X!), 1);
        var logqN = tau is null
            ? StepsLogProb(present, presenceLogits)
            : (ConcreteLogProb(logitX!, presenceLogits, tau.Value) * open!).sum(1);
        var logqCont = NoiseLogProb(Stacked(steps, s => s.WhereNoise), Stacked(steps, s => s.WhereScale)).sum(-1)
            .Plus(NoiseLogProb(Stacked(steps, s => s.WhatNoise), Stacked(steps, s => s.WhatScale)).sum(-1));

        // priors
        var (stepLogits, e) = StepsPrior(priorPresenceLogit, later);
        var logpSteps = nn.functional.log_softmax(stepLogits, 1);
        var logpN = tau is null
            ? logpSteps.gather(1, count.unsqueeze(1)).squeeze(1)
            : RelaxedStepsLogProb(logpSteps, logitX!, present, open!, tau.Value);
        var (_, logpWhere) = WherePrior(cat([cond, e], -1), weight, (j, _, _) => whereAll.select(1, j));
        var logpWhat = (weight * StandardNormalLogProb(whatAll).sum(-1)).sum(1);

        var slots = new ObjectSlots(whatAll, whereAll, present, presenceLogits.sigmoid(), NewIds(lastId, present),
                                    initialStates.Temporal, initialStates.Prior, tau is null ? null : weight);
        var logq = (weight * logqCont).sum(1).Plus(logqN);
        return (slots, new StepTerms(logq, logpWhat.Plus(logpWhere).Plus(logpN), logqN));
    }

    /// <summary>One tensor of each step, in step order.</summary>
    static Tensor[] Each(Step[] steps, Func<Step, Tensor> pick) => Array.ConvertAll(steps, s => pick(s));

    /// <summary>One tensor of each step, stacked on a new axis 1 (the steps).</summary>
    static Tensor Stacked(Step[] steps, Func<Step, Tensor> pick) => stack(Each(steps, pick), 1);

    /// <summary>
    /// The prior's log-density of the relaxed presences [R]. The categorical prior p(n) on the number of steps is
    /// the chain of conditional Bernoullis "step j is present given steps before it were", with logits
    /// π_j = log P(n ≥ j) − log p(n = j − 1) (stick breaking; their Bernoulli log-probabilities along a hard
    /// chain sum to log p(n) exactly). An open step (its gate <paramref name="open"/> is 1) is scored by the binary
    /// Concrete density of its sample <paramref name="x"/> under π_j; the step where the cap A forced the chain
    /// to stop, the posterior's certain absence, by its discrete prior probability log(1 − sigmoid(π_j)).
    /// </summary>
    static Tensor RelaxedStepsLogProb(Tensor logpSteps, Tensor x, Tensor present, Tensor open, double tau)
    {
        long r = logpSteps.shape[0], n = x.shape[1];
        var pi = StickBreakingLogits(logpSteps);
        // the hard chain before each step (1 before the first)
        var before = cat([ones(r, 1, dtype: present.dtype, device: present.device), present.narrow(1, 0, n - 1)], 1);
        var forced = before.sub(open);
        return (ConcreteLogProb(x, pi, tau) * open).sum(1)
            .Plus((Softplus(pi).neg() * forced).sum(1));
    }

    /// <summary>
    /// Logits [R, N + 1] of the categorical prior on the number of new objects,
    /// elu(b + (t &gt; 0)·b_t + MLP(e)), with e = Σ_k (sigmoid(prior presence logit_k) − 0.5)/N [R, 1].
    /// </summary>
    (Tensor Logits, Tensor E) StepsPrior(Tensor priorPresenceLogit, bool later)
    {
        var e = (priorPresenceLogit.sigmoid() - Kept(0.5)).sum(1, keepdim: true).div(Kept((long)c.MaxObjects));
        var logits = Elu((later ? steps_bias.Plus(steps_time_bias) : steps_bias).Plus(steps_mlp.call(e)));
        return (logits, e);
    }

    /// <summary>
    /// The where prior over discovered objects, step by step: <paramref name="pick"/> gives step j's
    /// value from its prior (loc, scale), either the posterior sample being scored or a new prior
    /// sample. Returns the values [R, N, 4] and log p of the present ones [R], computed once on all
    /// N steps after the recurrence.
    /// </summary>
    (Tensor Where, Tensor LogProb) WherePrior(Tensor cond, Tensor present, Func<int, Tensor, Tensor, Tensor> pick)
    {
        long r = present.shape[0];
        var values = new Tensor[c.MaxObjects];
        var locs = new Tensor[c.MaxObjects];
        var scales = new Tensor[c.MaxObjects];
        Tensor? state = null, input = null;
        if (c.RecWherePrior)
        {
            state = where_prior_rnn.InitialState(r).Plus(where_prior_cond.call(where_prior_cond_hidden.call(cond)));
            input = where_prior_init_sample.expand(r, 4);
        }
        for (int j = 0; j < c.MaxObjects; j++)
        {
            Tensor loc, scale;
            if (c.RecWherePrior)
            {
                state = where_prior_rnn.call(input!, state!);
                var stats = where_prior_readout.call(state).split([4, 4], -1);
                (loc, scale) = (stats[0], PositiveScale(stats[1]));
            }
            else
            {
                // Fixed prior at the readout's initial bias: loc (scale_prior, scale_prior, 0, 0), scale
                // softplus(1) + 0.01.
                var bias = where_prior_readout.bias!.detach().split([4, 4]);
                (loc, scale) = (bias[0].expand(r, 4), PositiveScale(bias[1]).expand(r, 4));
            }
            var w = pick(j, loc, scale);
            (values[j], locs[j], scales[j]) = (w, loc, scale);
            input = w;
        }
        var where = stack(values, 1);
        return (where, (NormalLogProb(where, stack(locs, 1), stack(scales, 1)).sum(-1) * present).sum(1));
    }

    /// <summary>Samples new objects from the discovery priors, at most N − (propagated objects present).</summary>
    public ObjectSlots SamplePrior(ObjectSlots propagated, Tensor priorPresenceLogit, bool later,
                                   (Tensor Temporal, Tensor Prior) initialStates, Tensor lastId)
    {
        long r = propagated.Presence.shape[0];
        int n = c.MaxObjects;
        var (cond, allowed) = Conditioning(propagated);
        var (logits, e) = StepsPrior(priorPresenceLogit, later);
        var counts = Arange(n + 1, logits.dtype, logits.device);
        var capped = logits.masked_fill(counts.gt(allowed.unsqueeze(1)), Kept(double.NegativeInfinity));
        var count = multinomial(nn.functional.softmax(capped, 1), 1);
        var present = Arange(n, ScalarType.Int64, logits.device).lt(count).to(logits.dtype);
        var (sampledWhere, _) = WherePrior(cat([cond, e], -1), present,
                                           (_, loc, scale) => loc.Plus(scale * randn_like(loc)));
        var what = randn(r, n, c.NWhat, device: logits.device);
        return new ObjectSlots(what, sampledWhere, present, present, NewIds(lastId, present), initialStates.Temporal,
                               initialStates.Prior);
    }

    /// <summary>
    /// The DeepSet summary Σ_k presence_k · MLP(what_k, where_k) [R, hidden] of the propagated
    /// objects, and how many new ones fit beside them, A = N − Σ_k presence_k [R].
    /// </summary>
    (Tensor Summary, Tensor Allowed) Conditioning(ObjectSlots propagated)
    {
        var summary = (conditioning.call(cat([propagated.What, propagated.Where], -1))
                       * propagated.Weight.unsqueeze(-1)).sum(1);
        return (summary, propagated.Presence.sum(1).neg().Plus(Kept((long)c.MaxObjects)));
    }

    /// <summary>Discovered objects get ids last_used + 1, 2, … in slot order; absent slots −1.</summary>
    static Tensor NewIds(Tensor lastId, Tensor present) =>
        lastId.unsqueeze(1).Plus(present.cumsum(1).to(ScalarType.Int64)).masked_fill(present.lt(Kept(0.5)), Kept(-1L));
}
