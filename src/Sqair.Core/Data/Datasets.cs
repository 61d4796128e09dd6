using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Sqair.Files;

namespace Sqair.Data;

/// <summary>
/// The standard datasets, kept in the cache folder under a name derived from their parameters, so
/// that a dataset is generated once and reused by every later run with the same parameters.
/// </summary>
public static class Datasets
{
    /// <summary>
    /// The original's sizes (the run config's train_size and valid_size defaults): 60 000 training
    /// sequences, 10 000 validation or test.
    /// </summary>
    public const long TrainCount = 60_000, EvalCount = 10_000;

    /// <summary>The original's size of a pool's dataset.</summary>
    public static long DefaultCount(Pool pool) => pool == Pool.Train ? TrainCount : EvalCount;

    /// <summary>Where the cache keeps the dataset of these parameters (a hash of them in the name).</summary>
    public static string CachePath(string cacheRoot, MovingMnistConfig config, Pool pool, long count, ulong seed)
    {
        var key = $"{JsonSerializer.Serialize(config)}|{pool}|{count}|{seed}|{SequenceFile.Format}";
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..12];
        return Path.Combine(cacheRoot, "datasets",
                            $"moving-mnist-{pool.ToString().ToLowerInvariant()}-{count}-{hash}.safetensors");
    }

    /// <summary>The generator for a pool of MNIST (from the verified MNIST folder).</summary>
    public static MovingMnist Generator(string mnistDir, MovingMnistConfig config, Pool pool, ulong seed)
    {
        var split = Mnist.LoadSplit(mnistDir, train: pool != Pool.Test);
        // Each pool gets its own stream of sequences, even from the same seed.
        ulong poolSalt = (ulong)(pool + 1) * 0xD1B54A32D192ED03UL;
        return new MovingMnist(config, MovingMnist.BuildPool(split, pool, config.DigitScale), seed ^ poolSalt);
    }

    /// <summary>
    /// Opens the cached dataset, generating it first if it is missing or damaged; only then is
    /// <paramref name="mnistDir"/> asked for (finding and checking MNIST reads 55 MB).
    /// </summary>
    public static SequenceFile Ensure(string cacheRoot, Func<string> mnistDir, MovingMnistConfig config, Pool pool,
                                      long count, ulong seed, Action<string>? log = null,
                                      Action<long, long>? progress = null, int? threads = null,
                                      CancellationToken stop = default)
    {
        var path = CachePath(cacheRoot, config, pool, count, seed);
        if (File.Exists(path))
        {
            try { return SequenceFile.Open(path); }
            catch (InvalidDataException e) { log?.Invoke($"regenerating {FileProblem.Of(path, e.Message)}"); }
        }
        log?.Invoke($"generating {count} {pool.ToString().ToLowerInvariant()} sequences into {path}");
        SequenceFile.Write(path, Generator(mnistDir(), config, pool, seed), count, pool,
                           done => progress?.Invoke(done, count), threads, stop);
        return SequenceFile.Open(path);
    }
}
