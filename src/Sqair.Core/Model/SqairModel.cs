using Sqair.Native;
using TorchSharp;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Sqair.Model;

/// <summary>
/// What one time step inferred, per particle row (R = B·K, particles of a sequence contiguous).
/// Canvas [R, C, H, W]; Glimpses [R, N, C, G, G] decoded; Where [R, N, 4] logits and Window [R, N, 4]
/// their transformer coordinates (sx, sy, tx, ty), docs/design.md §2.1; Presence,
/// PresenceProb [R, N]; Ids [R, N] (−1 absent); LogLikelihood, LogP, LogQ [R]; Propagated and
/// Discovered [R] object counts.
/// </summary>
public sealed record FrameOutput(Tensor Canvas, Tensor Glimpses,
                                 Tensor Where, Tensor Window, Tensor Presence, Tensor PresenceProb, Tensor Ids,
                                 Tensor LogLikelihood, Tensor LogP, Tensor LogQ, Tensor Propagated, Tensor Discovered)
{
    /// <summary>The same step with rows picked by <paramref name="rows"/> [B].</summary>
    public FrameOutput Select(Tensor rows) =>
        new(Canvas[rows], Glimpses[rows], Where[rows], Window[rows], Presence[rows], PresenceProb[rows], Ids[rows],
            LogLikelihood[rows], LogP[rows], LogQ[rows], Propagated[rows], Discovered[rows]);

    /// <summary>Every tensor of the step.</summary>
    public IEnumerable<Tensor> Tensors() => [Canvas, Glimpses, Where, Window, Presence, PresenceProb, Ids,
                                             LogLikelihood, LogP, LogQ, Propagated, Discovered];
}

/// <summary>
/// The result of running SQAIR on a batch of sequences. LogWeights [B, K] = Σ_t log w_t;
/// LogQDiscrete [B, K] = log q of every presence variable (for VIMCO); LogLikelihood and Kl
/// [B, K] summed over time; Counts [T, B, K] objects present per frame; Frames (detached) when
/// asked for.
/// </summary>
public sealed record SequenceOutput(Tensor LogWeights, Tensor LogQDiscrete, Tensor LogLikelihood, Tensor Kl,
                                    Tensor Counts, Tensor Propagated, Tensor Discovered,
                                    IReadOnlyList<FrameOutput>? Frames)
{
    /// <summary>Sequences.</summary>
    public long B => LogWeights.shape[0];
    /// <summary>Particles per sequence.</summary>
    public long K => LogWeights.shape[1];

    /// <summary>The outputs of consecutive shards of a batch as one output (without kept frames).</summary>
    public static SequenceOutput Concat(IReadOnlyList<SequenceOutput> parts)
    {
        Tensor Cat(Func<SequenceOutput, Tensor> field, int dim) => cat(parts.Select(field).ToArray(), dim);
        return new SequenceOutput(Cat(o => o.LogWeights, 0), Cat(o => o.LogQDiscrete, 0),
                                  Cat(o => o.LogLikelihood, 0), Cat(o => o.Kl, 0),
                                  Cat(o => o.Counts, 1), Cat(o => o.Propagated, 1), Cat(o => o.Discovered, 1), null);
    }

    /// <summary>The same outputs cut off from the autograd graph.</summary>
    public SequenceOutput Detached() =>
        new(LogWeights.detach(), LogQDiscrete.detach(), LogLikelihood.detach(), Kl.detach(),
            Counts.detach(), Propagated.detach(), Discovered.detach(), null);

    /// <summary>Every tensor this output holds (kept frames aside).</summary>
    public IEnumerable<Tensor> Tensors() =>
        [LogWeights, LogQDiscrete, LogLikelihood, Kl, Counts, Propagated, Discovered];

    /// <summary>
    /// Importance resampling: one particle per sequence drawn with probability ∝ w_k, as row
    /// indices [B] into the B·K rows.
    /// </summary>
    public Tensor ResampleRows(Generator? generator = null)
    {
        // Roots the temporaries against another thread's collection (see SqairModel.Infer).
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(ParticleFilter.Pick(LogWeights.detach(), new SharedNoise(generator)));
    }

    /// <summary>
    /// <see cref="ResampleRows"/> as an array: the row of each sequence's chosen particle, for drawing and tracking.
    /// </summary>
    public long[] PickParticles(Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        return ResampleRows(generator).cpu().data<long>().ToArray();
    }
}

/// <summary>
/// SQAIR (Kosiorek et al. 2018): at every frame, propagation of the objects present at t − 1,
/// then discovery of new ones, merging into N slots, and the decoder's likelihood. The AIR
/// baseline runs discovery only. Every part is named as in docs/design.md §2.
/// </summary>
public sealed class SqairModel : Module
{
    /// <summary>The config the model was built from.</summary>
    public SqairConfig Config { get; }
    // snake_case on purpose: RegisterComponents names each parameter after its field ("glimpse_encoder.…"), and
    // these are the names in checkpoints, as PyTorch would write them (docs/design.md §2).
    readonly Module<Tensor, Tensor> glimpse_encoder;
    readonly Propagation propagation;
    readonly Discovery discovery;
    readonly Decoder decoder;

    /// <summary>
    /// A freshly initialised model of <paramref name="config"/> (load trained parameters with
    /// Sqair.Runs.Checkpoint.LoadModel).
    /// </summary>
    public SqairModel(SqairConfig config) : base("sqair")
    {
        config.Validate();
        Config = config;
        PresenceTemperature = config.PresenceTemperature;
        glimpse_encoder = Networks.Glimpse(config);
        propagation = new Propagation(config);
        discovery = new Discovery(config);
        decoder = new Decoder(config);
        RegisterComponents();
        if (config.Model == ModelKind.Air)
            foreach (var p in propagation.parameters().Concat(discovery.PropagationOnlyParameters()))
                p.requires_grad = false;
    }

    internal Decoder Decoder => decoder;

    /// <summary>
    /// The binary Concrete temperature of presence while training with presence_estimator = concrete (the trainer
    /// anneals it, <see cref="Training.Schedules.PresenceTemperatureAt"/>); starts at presence_temperature.
    /// </summary>
    internal double PresenceTemperature { get; set; }

    /// <summary>
    /// The temperature when presence is relaxed (training with presence_estimator = concrete), else null: at
    /// inference presence is always hard, so evaluation is the discrete model's.
    /// </summary>
    double? RelaxedTemperature =>
        training && Config.PresenceEstimator == PresenceEstimator.Concrete ? PresenceTemperature : null;

    /// <summary>
    /// The N slots of every row, the last object id used in the row, and per slot the frames in a row its
    /// object has drawn nothing [R, N] (kept up to date only while <see cref="Model.Pruning"/> is on, zeros
    /// otherwise), carried from frame to frame.
    /// </summary>
    internal sealed record SequenceState(ObjectSlots Slots, Tensor LastId, Tensor EmptyRun)
    {
        /// <summary>The state of the rows <paramref name="rows"/> [R'].</summary>
        public SequenceState Select(Tensor rows) => new(Slots.Select(rows), LastId[rows], EmptyRun[rows]);

        /// <summary>
        /// Every tensor of the state (for streaming, which frees each frame's state when the next one replaces it).
        /// </summary>
        public IEnumerable<Tensor> Tensors() =>
            [Slots.What, Slots.Where, Slots.Presence, Slots.PresenceProb, Slots.Ids,
             Slots.Temporal, Slots.Prior, LastId, EmptyRun,
             .. Slots.Relaxed is { } relaxed ? [relaxed] : Array.Empty<Tensor>(),
             .. Slots.Ink is { } ink ? [ink] : Array.Empty<Tensor>()];
    }

    /// <summary>
    /// What holds for a whole run of frames: K particles, the filter's resampling, discovery's rejection IoU, where
    /// the noise comes from, and the pruning of objects after each frame (inference only).
    /// </summary>
    internal sealed record ParticleSettings(int K, Resampling Resampling, double RejectIoU, Noise Noise,
                                            Pruning? Pruning = null);

    /// <summary>
    /// The particles after one frame: their state and sums, the resampling that preceded the frame
    /// (null: none), the frame's outputs when kept, and per row the objects present, propagated and discovered [R].
    /// </summary>
    internal sealed record Advanced(SequenceState State, ParticleSums Sums, Resample? Ancestors, FrameOutput? Frame,
                                    Tensor Count, Tensor Propagated, Tensor Discovered)
    {
        /// <summary>Every tensor a later step or the caller reads.</summary>
        public IEnumerable<Tensor> Tensors() =>
            [.. State.Tensors(), .. Sums.Tensors(), .. Frame?.Tensors() ?? [], .. Ancestors?.Tensors() ?? [],
             Count, Propagated, Discovered];
    }

    internal SequenceState InitialState(long rows, Device device)
    {
        int n = Config.MaxObjects;
        var (temporal0, prior0) = propagation.InitialStates(rows, n);
        var slots = new ObjectSlots(zeros(rows, n, Config.NWhat, device: device), zeros(rows, n, 4, device: device),
                                    zeros(rows, n, device: device), zeros(rows, n, device: device),
                                    full(rows, n, Kept(-1L), device: device), temporal0, prior0);
        return new SequenceState(slots, full(rows, Kept(-1L), device: device), zeros(rows, n, device: device));
    }

    /// <summary>
    /// Nothing to propagate (t = 0, or the AIR baseline): every slot absent, prior presence logits gated to "absent".
    /// </summary>
    ObjectSlots NonePropagated(ObjectSlots state, out Tensor priorPresenceLogit)
    {
        long r = state.Presence.shape[0];
        priorPresenceLogit = full(r, Config.MaxObjects, Kept(Distributions.AbsentLogit), device: state.Presence.device);
        return state with
        {
            Presence = zeros_like(state.Presence),
            Ids = full_like(state.Ids, Kept(-1L)),
            Relaxed = null,
        };
    }

    /// <summary>
    /// Merges propagated and discovered slots into the next state (the empty runs carried as they were: pruning,
    /// the only reader, maps them to the new slots by id).
    /// </summary>
    SequenceState Merge(SequenceState state, ObjectSlots propagated, ObjectSlots discovered) =>
        new(ObjectSlots.Merge(propagated, discovered, Config.MaxObjects),
            state.LastId.Plus(discovered.Presence.sum(1).to(ScalarType.Int64)), state.EmptyRun);

    /// <summary>
    /// One frame of the model (docs/design.md §2; the paper's Algorithm 1): propagate the objects of
    /// the previous frame (none at t = 0 or in AIR), discover new ones, merge, decode. Inference and
    /// generation differ only in how they propagate (<paramref name="propagate"/>: from the frame, or
    /// from the prior) and discover (<paramref name="discover"/>, given the propagated objects, the
    /// prior's presence logits, whether t &gt; 0, and the last id used).
    /// </summary>
    (SequenceState State, ObjectSlots Propagated, ObjectSlots Discovered, Tensor Canvas, Tensor Glimpses) Step(
        SequenceState state, int step,
        Func<ObjectSlots, (ObjectSlots Objects, Tensor PriorPresenceLogit)> propagate,
        Func<ObjectSlots, Tensor, bool, Tensor, ObjectSlots> discover)
    {
        bool air = Config.Model == ModelKind.Air;
        ObjectSlots propagated;
        Tensor priorPresenceLogit;
        if (step == 0 || air) propagated = NonePropagated(state.Slots, out priorPresenceLogit);
        else (propagated, priorPresenceLogit) = propagate(state.Slots);
        var discovered = discover(propagated, priorPresenceLogit, step > 0 && !air, state.LastId);
        var next = Merge(state, propagated, discovered);
        var (canvas, glimpses) = decoder.Forward(next.Slots.What, next.Slots.Where, next.Slots.Weight);
        if (Config.PropPriorDrawnPixels > 0)
            next = next with { Slots = next.Slots with { Ink = decoder.Ink(glimpses, next.Slots.Where) } };
        return (next, propagated, discovered, canvas, glimpses);
    }

    /// <summary>
    /// Runs the model on frames [T, B, C, H, W] with <paramref name="k"/> particles per sequence.
    /// With <paramref name="keepFrames"/> every step's outputs are kept (detached) for evaluation and figures.
    /// Samples are drawn from <paramref name="generator"/> (null: libtorch's global generator).
    /// <paramref name="resampling"/> other than <see cref="Resampling.None"/> makes the K particles a
    /// particle filter (inference only; see <see cref="Resampling"/>). <paramref name="rejectIoU"/> overrides
    /// the config's <c>reject_iou</c> (discovery's rejection of duplicates).
    /// </summary>
    public SequenceOutput Forward(Tensor frames, int k, bool keepFrames = false, Generator? generator = null,
                                  Resampling resampling = Resampling.None, double? rejectIoU = null) =>
        Infer(frames, k, keepFrames, new SharedNoise(generator), resampling, rejectIoU).Output;

    /// <summary>
    /// <see cref="Forward"/> drawing from <paramref name="noise"/>, with the state after the last frame;
    /// <paramref name="stop"/> is heard before every frame.
    /// </summary>
    internal (SequenceOutput Output, SequenceState Final) Infer(
        Tensor frames, int k, bool keepFrames, Noise noise,
        Resampling resampling = Resampling.None, double? rejectIoU = null, Pruning? pruning = null,
        CancellationToken stop = default)
    {
        // TorchSharp reads a tensor's handle and calls libtorch without keeping the tensor alive: outside a dispose
        // scope nothing roots a temporary (frames[step], the traced counts), and a collection started by another
        // thread could finalize it, freeing its native tensor, while libtorch still reads it. This scope roots
        // them whether or not the caller has one; the results move to the caller's.
        using var scope = NewDisposeScope();
        long t = frames.shape[0], b = frames.shape[1], r = b * k;
        var settings = new ParticleSettings(k, resampling, rejectIoU ?? Config.RejectIoU, noise, pruning);
        var state = InitialState(r, frames.device);
        var sums = ParticleSums.Zeros(r, frames.device);
        var counts = new List<Tensor>();
        var propagatedCounts = new List<Tensor>();
        var discoveredCounts = new List<Tensor>();
        var kept = keepFrames ? new List<FrameOutput>() : null;
        var ancestors = new List<Resample?>();   // per step after the first: the row each row continues (null: itself)
        for (int step = 0; step < t; step++)
        {
            stop.ThrowIfCancellationRequested();
            var next = AdvanceFreeing(state, sums, step, frames[step], settings, keepFrames, disown: false);
            (state, sums) = (next.State, next.Sums);
            if (step > 0) ancestors.Add(next.Ancestors);
            counts.Add(next.Count);
            propagatedCounts.Add(next.Propagated);
            discoveredCounts.Add(next.Discovered);
            kept?.Add(next.Frame!);
        }
        var lineage = ParticleFilter.Lineages(ancestors);
        Tensor Traced(List<Tensor> perStep) =>
            stack(perStep.Select((v, i) => lineage[i] is { } rows ? v[rows] : v).ToArray()).view(t, b, k);
        var output = new SequenceOutput(sums.LogWeight.view(b, k), sums.LogQDiscrete.view(b, k),
                                        sums.LogLikelihood.view(b, k), sums.Kl.view(b, k),
                                        Traced(counts), Traced(propagatedCounts), Traced(discoveredCounts),
                                        kept?.Select((f, i) => lineage[i] is { } rows ? f.Select(rows) : f).ToList());
        scope.MoveToOuter([.. output.Tensors(), .. output.Frames?.SelectMany(f => f.Tensors()) ?? [],
                           .. state.Tensors()]);
        GC.KeepAlive(frames);   // not in the scope; the last frames[step] must not outlive it
        return (output, state);
    }

    /// <summary>
    /// <see cref="Advance"/>, then freeing at once everything the step made except its results, and
    /// the state and sums it replaced. In inference that keeps memory from growing with the number of
    /// frames (what a frame computes is ~30× what it keeps). In training, autograd holds its own
    /// references to what backward reads, so only the intermediates it does not need go, a frame
    /// earlier than the step's end (docs/performance.md, "Memory"). The results move to the
    /// caller's dispose scope, or with <paramref name="disown"/> to none (the caller frees them).
    /// </summary>
    internal Advanced AdvanceFreeing(SequenceState state, ParticleSums sums, int step, Tensor frame,
                                     ParticleSettings settings, bool keep, bool disown)
    {
        // On the thread that computes the frame (and later its backward pass): the flags are per thread.
        Denormals.FlushToZero();
        Advanced next;
        using (NewDisposeScope())
        {
            next = Advance(state, sums, step, frame, settings, keep);
            foreach (var t in next.Tensors())
                if (disown) t.DetachFromDisposeScope(); else t.MoveToOuterDisposeScope();
        }
        var results = next.Tensors().ToHashSet(ReferenceEqualityComparer.Instance);
        foreach (var t in state.Tensors().Concat(sums.Tensors()).Where(t => !results.Contains(t))) t.Dispose();
        return next;
    }

    /// <summary>
    /// One frame <paramref name="frame"/> [B, C, H, W] of inference for the B·K particle rows at step
    /// <paramref name="step"/>: at t &gt; 0 first the particle filter's resampling on the weights so far
    /// (docs/design.md §2.7), then the model's step (§2) and the weight update. With
    /// <paramref name="keep"/> the frame's outputs come back detached.
    /// </summary>
    Advanced Advance(SequenceState state, ParticleSums sums, int step, Tensor frame, ParticleSettings settings,
                     bool keep)
    {
        var c = Config;
        int k = settings.K;
        long b = frame.shape[0], r = b * k;
        var noise = settings.Noise;
        noise.BeginFrame(b, k, frame.device);
        Resample? resample = null;
        if (step > 0 && ParticleFilter.Ancestors(sums.LogWeight.detach().view(b, k), settings.Resampling, noise)
            is { } drawn)
        {
            resample = drawn;
            (state, sums) = (state.Select(drawn.Rows), ParticleFilter.Resampled(sums, drawn, b, k));
        }
        var x = frame.repeat_interleave(k, 0);
        var features = discovery.EncodeFrames(frame, k);
        var tau = RelaxedTemperature;
        StepTerms? propTerms = null, discTerms = null;
        var before = state;
        (state, var propagated, var discovered, var canvas, var glimpses) = Step(state, step,
            slots =>
            {
                var (objects, terms, priorPresenceLogit) = propagation.Forward(x, slots, glimpse_encoder, noise, tau);
                propTerms = terms;
                return (objects, priorPresenceLogit);
            },
            (objects, priorPresenceLogit, later, lastId) =>
            {
                (var found, discTerms) = discovery.Forward(x, features, objects, priorPresenceLogit, later,
                                                           glimpse_encoder, propagation.InitialStates(r, c.MaxObjects),
                                                           lastId, settings.RejectIoU, noise, tau);
                return found;
            });
        var ll = decoder.LogLikelihood(x, canvas);
        if (settings.Pruning is { Any: true } pruning)
        {
            var (pruned, emptyRun) = ObjectPruning.Apply(state.Slots, glimpses, before.Slots.Ids, before.EmptyRun,
                                                         pruning, c.ShiftRange, c.ImgSize);
            state = state with { Slots = pruned, EmptyRun = emptyRun };
        }
        var slots = state.Slots;
        var logq = propTerms is null ? discTerms!.LogQ : discTerms!.LogQ.Plus(propTerms.LogQ);
        var logp = propTerms is null ? discTerms.LogP : discTerms.LogP.Plus(propTerms.LogP);
        var logQDiscrete = propTerms is null
            ? discTerms.LogQDiscrete
            : discTerms.LogQDiscrete.Plus(propTerms.LogQDiscrete);
        sums = sums.Add(ll, logp, logq, logQDiscrete);
        var numPropagated = propagated.Presence.sum(1).detach();
        var numDiscovered = discovered.Presence.sum(1).detach();
        var kept = keep
            ? new FrameOutput(canvas.detach(), glimpses.detach(),
                              slots.Where.detach(), Boxes.Coords(slots.Where.detach(), c.ShiftRange),
                              slots.Presence.detach(), slots.PresenceProb.detach(), slots.Ids.detach(),
                              ll.detach(), logp.detach(), logq.detach(), numPropagated, numDiscovered)
            : null;
        return new Advanced(state, sums, resample, kept, slots.Presence.sum(1).detach(), numPropagated, numDiscovered);
    }

    /// <summary>
    /// Generates sequences from the model: with <paramref name="observed"/> frames [T_obs, B, C, H, W]
    /// the first T_obs steps are inferred from them (one particle, chosen by importance resampling
    /// among <paramref name="k"/>) and the rest continue from the prior; without, all
    /// <paramref name="length"/> steps are sampled from the prior for <paramref name="sequences"/>
    /// sequences. Returns every step's outputs (canvas = the mean of p(x | z)). <paramref name="stop"/> is heard
    /// before every frame.
    /// </summary>
    public IReadOnlyList<FrameOutput> Generate(int length, int sequences = 1, Tensor? observed = null, int k = 5,
                                               Device? device = null, CancellationToken stop = default)
    {
        using var _ = no_grad();
        // Dispose scopes root the temporaries, which a collection started by another thread could otherwise
        // finalize while libtorch reads them (see Infer); a scope per step frees each step's on its way.
        using var scope = NewDisposeScope();
        var steps = new List<FrameOutput>();
        SequenceState state;
        int start = 0;
        if (observed is not null)
        {
            var (output, final) = Infer(observed, k, keepFrames: true, new SharedNoise(null), stop: stop);
            var rows = output.ResampleRows();
            steps.AddRange(output.Frames!.Select(f => f.Select(rows)));
            state = final.Select(rows);
            start = (int)observed.shape[0];
        }
        else state = InitialState(sequences, device ?? CPU);

        for (int step = start; step < length; step++)
        {
            stop.ThrowIfCancellationRequested();
            using var stepScope = NewDisposeScope();
            long r = state.LastId.shape[0];
            (state, var propagated, var discovered, var canvas, var glimpses) = Step(state, step,
                propagation.SamplePrior,
                (objects, priorPresenceLogit, later, lastId) =>
                    discovery.SamplePrior(objects, priorPresenceLogit, later,
                                          propagation.InitialStates(r, Config.MaxObjects), lastId));
            var slots = state.Slots;
            var zero = zeros(r, device: canvas.device);
            var frame = new FrameOutput(canvas, glimpses, slots.Where, Boxes.Coords(slots.Where, Config.ShiftRange),
                                        slots.Presence, slots.PresenceProb, slots.Ids, zero, zero, zero,
                                        propagated.Presence.sum(1), discovered.Presence.sum(1));
            steps.Add(frame);
            stepScope.MoveToOuter([.. state.Tensors(), .. frame.Tensors()]);
        }
        scope.MoveToOuter(steps.SelectMany(f => f.Tensors()));
        GC.KeepAlive(observed);
        return steps;
    }
}
