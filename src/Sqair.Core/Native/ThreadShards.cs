using System.Runtime.ExceptionServices;
using static TorchSharp.torch;

namespace Sqair.Native;

/// <summary>
/// A batch cut into shards of sequences that run at once, each on its own thread with its own libtorch
/// intra-op thread count. Why: most of SQAIR's ops act on tensors too small for libtorch to split over
/// cores, so with two intra-op threads one core mostly waits (docs/performance.md); two shards with one
/// thread each keep both cores busy. Training's sharded gradient step and evaluation both cut this way.
/// </summary>
internal static class ThreadShards
{
    /// <summary>
    /// Sizes of <paramref name="n"/> near-equal shards of <paramref name="b"/> sequences, the larger first.
    /// </summary>
    public static int[] Sizes(long b, int n) =>
        [.. Enumerable.Range(0, n).Select(i => (int)(b / n + (i < b % n ? 1 : 0)))];

    /// <summary>
    /// <paramref name="work"/>(i) for every shard i of <paramref name="n"/>, on up to n threads with
    /// <paramref name="threadsEach"/> intra-op threads each (libtorch's count is per thread, OpenMP's). The
    /// calling thread usually runs a shard and then keeps <paramref name="threadsEach"/>: callers that want their
    /// own count back set it again. The first failure is rethrown as itself.
    /// </summary>
    public static T[] Run<T>(int n, int threadsEach, Func<int, T> work)
    {
        var results = new T[n];
        try
        {
            Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = n }, i =>
            {
                set_num_threads(threadsEach);
                results[i] = work(i);
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
            throw;
        }
        return results;
    }
}
