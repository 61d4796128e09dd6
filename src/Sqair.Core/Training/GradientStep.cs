using Sqair.Data;
using Sqair.Model;
using Sqair.Native;
using Sqair.Objective;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Training;

/// <summary>
/// The loss and gradients of one training batch (docs/design.md §4), computed whole or in shards on parallel
/// threads (<see cref="ThreadShards"/> says why). The gradient is the same estimator: the batch loss is the
/// size-weighted mean of the shard losses, and each shard's backward pass adds its share into the
/// parameters' gradients (libtorch serialises that accumulation, and the two-term sum is exact in
/// either order). Each shard samples from its own generator, seeded from (seed, iteration, shard),
/// so a sharded run is deterministic and resumes exactly; it draws other samples than an unsharded
/// run, which uses libtorch's global generator. Measured on two cores (docs/performance.md), two
/// shards were not clearly faster than one whole batch on two libtorch threads, and held more
/// memory (each thread's heap keeps its own peak), so one shard is the default. The loss is VIMCO's
/// surrogate (<see cref="Vimco.Surrogate"/>), with the original release's signal when <c>originalVimco</c>;
/// with presence_estimator = concrete, whose presences are reparameterised, it is −IWAE alone (docs/design.md §4).
/// </summary>
internal sealed class GradientStep(SqairModel model, int shards = 1, bool originalVimco = false,
                                   ShardProcesses? processes = null) : IDisposable
{
    public int Shards { get; } =
        shards >= 1 ? shards : throw new ArgumentOutOfRangeException(nameof(shards), "shards must be at least 1");

    /// <summary>
    /// Whether shards after the first run in worker processes (<see cref="ShardWorker"/>), not threads.
    /// </summary>
    public bool InProcesses => processes is not null;

    /// <summary>
    /// The loss and gradients of <paramref name="batch"/>, and, when <paramref name="measure"/>, its measures: as
    /// <see cref="Run(Tensor, int, ulong, long, Action?)"/> on threads, or with the shards after the first in worker
    /// processes.
    /// </summary>
    public (double Loss, BatchMetrics? Metrics) Run(SequenceBatch batch, int k, ulong seed, long iteration,
                                                    bool measure = true)
    {
        if (processes is null)
        {
            var (loss, output) = Run(batch.Frames, k, seed, iteration);
            return (loss, measure ? BatchMetrics.Of(output, batch) : null);
        }
        return RunInProcesses(batch, k, seed, iteration, measure);
    }

    (double Loss, BatchMetrics? Metrics) RunInProcesses(SequenceBatch batch, int k, ulong seed, long iteration,
                                                       bool measure)
    {
        var sizes = ThreadShards.Sizes(batch.B, processes!.Count + 1);
        var parts = batch.Split(sizes);
        var weights = sizes.Select(s => (double)s / batch.B).ToArray();
        var seeds = Enumerable.Range(0, sizes.Length).Select(i => ShardSeed(seed, iteration, i)).ToArray();
        double loss = double.NaN;
        BatchMetrics? metrics = null;
        var failures = new List<string>();
        int threads = get_num_threads();
        Exception? own = null;
        try
        {
            processes.Send(parts[1..], weights[1..], seeds[1..], k, model.PresenceTemperature, measure);
            // This process's shard gets its share of the threads, as each worker has; evaluation gets them all back.
            set_num_threads(Math.Max(1, threads / sizes.Length));
            using var scope = NewDisposeScope();
            (loss, var output) = Shard(parts[0].Frames, k, parts[0].T, weights[0], seeds[0]);
            if (measure) metrics = BatchMetrics.Of(output, parts[0]);
        }
        catch (Exception e)
        {
            own = e;
            throw;
        }
        finally
        {
            try
            {
                // Always collected, so a failure here leaves the workers in step with this process.
                foreach (var done in processes.Receive())
                {
                    loss += done.Loss;
                    if (metrics is not null && done.Metrics is not null) metrics += done.Metrics;
                    if (done.Failure is { } failure) failures.Add(failure);
                }
            }
            // This process's own failure (libtorch out of memory, say) is the one to report, not a worker's
            // that followed from it.
            catch (IOException) when (own is not null) { }
            finally
            {
                foreach (var part in parts) part.Dispose();
                set_num_threads(threads);
            }
        }
        // A worker's libtorch failure is this step's, as if its shard had run here: the trainer skips the step and
        // logs why.
        if (failures.Count > 0) throw new ShardWorkerException($"in a shard worker: {string.Join("; ", failures)}");
        return (loss, metrics);
    }

    /// <summary>
    /// Runs the model on <paramref name="frames"/> [T, B, C, H, W] with K particles and, where the
    /// loss is finite, accumulates its gradient. Returns the loss and the outputs (detached when sharded).
    /// An unsharded step calls <paramref name="afterForward"/> between its forward and backward passes
    /// (the bench times them apart); sharded, they overlap and it is not called.
    /// </summary>
    public (double Loss, SequenceOutput Output) Run(Tensor frames, int k, ulong seed, long iteration,
                                                    Action? afterForward = null)
    {
        int seqLen = (int)frames.shape[0];
        long b = frames.shape[1];
        int n = (int)Math.Min(Shards, b);
        if (n == 1)
        {
            var output = model.Forward(frames, k);
            var loss = Loss(output, seqLen);
            double value = KeptScalars.ValueOf(loss);
            afterForward?.Invoke();
            if (double.IsFinite(value)) loss.backward();
            return (value, output);
        }

        var sizes = ThreadShards.Sizes(b, n);
        var parts = frames.split(sizes.Select(s => (long)s).ToArray(), 1);
        // The calling thread keeps the shards' count afterwards too: a team of OpenMP threads left from a
        // wider setting spins for a while after each parallel region and would steal the shards' cores.
        int perShard = Math.Max(1, get_num_threads() / n);
        set_num_threads(perShard);
        var results = ThreadShards.Run(n, perShard, i =>
            Shard(parts[i], k, seqLen, (double)sizes[i] / b, ShardSeed(seed, iteration, i)));
        var combined = SequenceOutput.Concat(results.Select(r => r.Output).ToList());
        foreach (var t in results.SelectMany(r => r.Output.Tensors())) t.Dispose();
        return (results.Sum(r => r.Loss), combined);
    }

    /// <summary>
    /// One shard's forward and backward pass (its loss times <paramref name="weight"/> into the gradients, from
    /// its own generator): its weighted loss and detached outputs. A worker process runs this too.
    /// </summary>
    internal (double Loss, SequenceOutput Output) Shard(Tensor frames, int k, int seqLen, double weight, ulong seed)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(seed);
        var output = model.Forward(frames, k, generator: generator);
        var loss = Loss(output, seqLen);
        double value = KeptScalars.ValueOf(loss);
        if (double.IsFinite(value))
            using (var share = weight.ToScalar())
                loss.mul(share).backward();
        var kept = output.Detached();
        scope.Detach(kept.Tensors());
        return (value * weight, kept);
    }

    /// <summary>
    /// The loss of one output divided by T: VIMCO's surrogate, or −IWAE when presence is relaxed (no score-function
    /// term: every latent is reparameterised).
    /// </summary>
    Tensor Loss(SequenceOutput output, int seqLen) =>
        model.Config.PresenceEstimator == PresenceEstimator.Concrete
            ? Iwae.LogMeanExp(output.LogWeights).mean().neg().div(KeptScalars.Kept((long)seqLen))
            : Vimco.Surrogate(output.LogWeights, output.LogQDiscrete, seqLen, originalVimco).Loss;

    /// <summary>A generator seed for one shard of one iteration (SplitMix64 of the three).</summary>
    public static ulong ShardSeed(ulong seed, long iteration, int shard)
    {
        ulong z = seed ^ (ulong)iteration * 0x9E3779B97F4A7C15UL ^ (ulong)(shard + 1) * 0xC2B2AE3D27D4EB4FUL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Stops the worker processes, if any.</summary>
    public void Dispose() => processes?.Dispose();
}
