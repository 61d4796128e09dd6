using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Data;

/// <summary>
/// A batch of sequences, time-major as the model consumes them.
/// Frames [T, B, C, H, W] float in [0, 1]; Boxes [T, B, M, 4] (y, x, h, w) pixels;
/// Present and Visible [T, B, M] float 0/1; Labels and Ids [B, M] int64 (−1 absent).
/// </summary>
public sealed class SequenceBatch(Tensor frames, Tensor boxes, Tensor present, Tensor visible,
                                  Tensor labels, Tensor ids) : IDisposable
{
    /// <summary>[T, B, C, H, W] float frames in [0, 1].</summary>
    public Tensor Frames { get; } = frames;
    /// <summary>[T, B, M, 4] ground-truth boxes (y, x, h, w) in pixels.</summary>
    public Tensor Boxes { get; } = boxes;
    /// <summary>[T, B, M] 1 where slot m holds an object of the sequence.</summary>
    public Tensor Present { get; } = present;
    /// <summary>[T, B, M] 1 where that object has a pixel on the canvas.</summary>
    public Tensor Visible { get; } = visible;
    /// <summary>[B, M] digit classes (−1: absent or unknown).</summary>
    public Tensor Labels { get; } = labels;
    /// <summary>[B, M] object ids, stable over a sequence (−1: absent).</summary>
    public Tensor Ids { get; } = ids;

    /// <summary>Frames per sequence.</summary>
    public int T => (int)Frames.shape[0];
    /// <summary>Sequences in the batch.</summary>
    public int B => (int)Frames.shape[1];

    /// <summary>
    /// Builds a batch from sequences, keeping <paramref name="seqLen"/> frames of each: the first
    /// ones, or those from frame <paramref name="starts"/>[i] of sequence i.
    /// </summary>
    public static SequenceBatch From(IReadOnlyList<Sequence> seqs, MovingMnistConfig c, int seqLen,
                                     Device? device = null, IReadOnlyList<int>? starts = null)
    {
        int b = seqs.Count, side = c.CanvasSize, m = c.MaxDigits, ch = c.Channels, hw = ch * side * side;
        if (seqLen < 1 || seqLen > c.SeqLen)
            throw new ArgumentOutOfRangeException(nameof(seqLen), $"sequence length {seqLen} outside 1..{c.SeqLen}");
        int t = seqLen;
        var frames = new float[t * b * hw];
        var boxes = new float[t * b * m * 4];
        var present = new float[t * b * m];
        var visible = new float[t * b * m];
        var labels = new long[b * m];
        var ids = new long[b * m];
        for (int i = 0; i < b; i++)
        {
            var s = seqs[i];
            int start = starts?[i] ?? 0;
            if (start < 0 || start + t > c.SeqLen)
                throw new ArgumentOutOfRangeException(nameof(starts),
                                                      $"frames {start}..{start + t - 1} outside 0..{c.SeqLen - 1}");
            for (int f = 0; f < t; f++)
            {
                int g = start + f;
                var src = s.Frames.AsSpan(g * hw, hw);
                var dst = frames.AsSpan((f * b + i) * hw, hw);
                for (int p = 0; p < hw; p++) dst[p] = src[p] / 255f;
                s.Boxes.AsSpan(g * m * 4, m * 4).CopyTo(boxes.AsSpan((f * b + i) * m * 4));
                for (int k = 0; k < m; k++)
                {
                    present[(f * b + i) * m + k] = s.Present[g * m + k];
                    visible[(f * b + i) * m + k] = s.Visible[g * m + k];
                }
            }
            for (int k = 0; k < m; k++) { labels[i * m + k] = s.Labels[k]; ids[i * m + k] = s.Ids[k]; }
        }
        var target = device ?? CPU;
        return new SequenceBatch(
            OnDevice(tensor(frames, [t, b, ch, side, side]), target),
            OnDevice(tensor(boxes, [t, b, m, 4]), target),
            OnDevice(tensor(present, [t, b, m]), target),
            OnDevice(tensor(visible, [t, b, m]), target),
            OnDevice(tensor(labels, [b, m]), target),
            OnDevice(tensor(ids, [b, m]), target));
    }

    /// <summary>
    /// <paramref name="host"/> moved to <paramref name="device"/>, the host kept alive until libtorch has read it.
    /// A batch is often built outside any dispose scope (an evaluation's enumerator), where nothing roots the
    /// temporary: a collection started by another thread could run its finalizer, which frees the native tensor,
    /// while <c>to</c> still reads it ("tensor does not have a device", seen in 2 of 16 runs of an evaluation).
    /// </summary>
    static Tensor OnDevice(Tensor host, Device device)
    {
        var moved = host.to(device);
        GC.KeepAlive(host);
        return moved;
    }

    /// <summary>
    /// The batch cut along its sequences into consecutive parts of <paramref name="sizes"/> (views of its tensors;
    /// dispose each).
    /// </summary>
    internal SequenceBatch[] Split(IReadOnlyList<int> sizes)
    {
        var parts = new SequenceBatch[sizes.Count];
        long start = 0;
        for (int i = 0; i < parts.Length; i++)
        {
            parts[i] = new SequenceBatch(Frames.narrow(1, start, sizes[i]), Boxes.narrow(1, start, sizes[i]),
                                         Present.narrow(1, start, sizes[i]), Visible.narrow(1, start, sizes[i]),
                                         Labels.narrow(0, start, sizes[i]), Ids.narrow(0, start, sizes[i]));
            start += sizes[i];
        }
        return parts;
    }

    /// <summary>The sequences at <paramref name="indices"/> of a source, as one batch.</summary>
    public static SequenceBatch Of(ISequenceSource source, IEnumerable<long> indices, int? seqLen = null,
                                   Device? device = null) =>
        From([.. indices.Select(source.Get)], source.Config, seqLen ?? source.Config.SeqLen, device);

    /// <summary>
    /// Indices of the first <paramref name="count"/> sequences from <paramref name="first"/> on that
    /// hold at least one object, for figures: a fifth of moving-MNIST sequences hold none, and a
    /// figure of empty frames shows nothing. Searches at most <paramref name="scan"/> sequences,
    /// then takes what follows; without ground truth, simply the sequences from <paramref name="first"/>.
    /// </summary>
    public static IReadOnlyList<long> Showing(ISequenceSource source, int count, long first = 0, long scan = 1000)
    {
        long end = Math.Min(source.Count ?? long.MaxValue, first + scan);
        var picked = source.HasTruth
            ? Enumerable.Range(0, (int)(end - first)).Select(i => first + i)
                .Where(i => source.Get(i).Present.Any(p => p != 0)).Take(count).ToList()
            : [];
        for (long i = first; picked.Count < count && i < (source.Count ?? long.MaxValue); i++)
            if (!picked.Contains(i)) picked.Add(i);
        return picked.Order().ToList();
    }

    /// <summary>
    /// Sequences <paramref name="start"/> .. <paramref name="start"/> + <paramref name="count"/> − 1 as a batch of
    /// views (no copy); disposing it frees the views, not this batch's tensors.
    /// </summary>
    public SequenceBatch Slice(int start, int count) =>
        new(Frames.narrow(1, start, count), Boxes.narrow(1, start, count), Present.narrow(1, start, count),
            Visible.narrow(1, start, count), Labels.narrow(0, start, count), Ids.narrow(0, start, count));

    /// <summary>Frees the batch's tensors.</summary>
    public void Dispose()
    {
        Frames.Dispose(); Boxes.Dispose(); Present.Dispose(); Visible.Dispose(); Labels.Dispose(); Ids.Dispose();
    }
}

/// <summary>
/// Cuts a sequence source into batches. Batch b is a pure function of (seed, b): element j = b·B + i
/// of the stream is sequence perm_e[j mod N] with e = j div N and perm_e a seeded permutation per
/// epoch (identity without shuffling, and plain j for an unbounded source). Resuming training
/// therefore needs only the iteration number. With <see cref="RandomWindows"/>, a batch shorter than
/// the sequences takes from each one a window that starts at a frame drawn from (seed, j), so that
/// training under the curriculum also sees the later frames, where digits leave, return and cross.
/// </summary>
public sealed class BatchLoader(ISequenceSource source, int batchSize, bool shuffle, ulong seed, Device? device = null)
{
    /// <summary>Salt of the window-start streams, apart from the permutations' (seed, epoch) streams.</summary>
    const ulong WindowSalt = 0x5EC0_0D57_A7E5_0001UL;

    /// <summary>Whether <see cref="Get"/> cuts windows at random starting frames instead of from frame 0.</summary>
    public bool RandomWindows { get; init; }

    /// <summary>The sequences batched.</summary>
    public ISequenceSource Source { get; } = source;
    /// <summary>Sequences per batch.</summary>
    public int BatchSize { get; } =
        batchSize > 0 ? batchSize : throw new ArgumentOutOfRangeException(nameof(batchSize));
    readonly object _lock = new();
    long _permEpoch = -1;
    int[]? _perm;

    /// <summary>The sequence at position <paramref name="j"/> of the (shuffled) stream.</summary>
    internal long SequenceIndex(long j)
    {
        if (Source.Count is not long n) return j;
        long epoch = j / n, pos = j % n;
        if (!shuffle) return pos;
        lock (_lock)
        {
            if (_permEpoch != epoch)
            {
                _perm = new Rng(seed, (ulong)epoch).Permutation((int)n);
                _permEpoch = epoch;
            }
            return _perm![pos];
        }
    }

    /// <summary>
    /// Batch number <paramref name="b"/>, truncated to <paramref name="seqLen"/> frames (the curriculum).
    /// </summary>
    public SequenceBatch Get(long b, int? seqLen = null)
    {
        var indices = Enumerable.Range(0, BatchSize).Select(i => SequenceIndex(b * BatchSize + i)).ToArray();
        var seqs = new Sequence[indices.Length];
        Parallel.For(0, indices.Length, i => seqs[i] = Source.Get(indices[i]));
        int t = seqLen ?? Source.Config.SeqLen;
        int[]? starts = RandomWindows && t < Source.Config.SeqLen
            ? [.. Enumerable.Range(0, BatchSize).Select(i =>
                    new Rng(seed ^ WindowSalt, (ulong)(b * BatchSize + i)).NextInt(0, Source.Config.SeqLen - t))]
            : null;
        return SequenceBatch.From(seqs, Source.Config, t, device, starts);
    }

    /// <summary>One ordered pass over a finite source (the last batch may be smaller), for evaluation.</summary>
    public IEnumerable<SequenceBatch> Ordered(long? limit = null, int? seqLen = null)
    {
        long n = Math.Min(
            Source.Count ?? limit ?? throw new InvalidOperationException("an unbounded source needs a limit"),
            limit ?? long.MaxValue);
        for (long start = 0; start < n; start += BatchSize)
        {
            int len = (int)Math.Min(BatchSize, n - start);
            var seqs = new Sequence[len];
            long s0 = start;
            Parallel.For(0, len, i => seqs[i] = Source.Get(s0 + i));
            yield return SequenceBatch.From(seqs, Source.Config, seqLen ?? Source.Config.SeqLen, device);
        }
    }
}
