using Sqair.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Tests.Model;

public class ParticleFilterTests
{
    static double[] Doubles(Tensor t) => [.. t.reshape(-1).data<float>().ToArray().Select(x => (double)x)];

    [Fact]
    public void Systematic_resampling_copies_each_particle_floor_or_ceil_of_K_times_its_weight()
    {
        var weights = tensor(new float[,]
        {
            { 0.5f, 0.3f, 0.15f, 0.05f },
            { 0f, 1f, 0f, 0f },
            { 0.25f, 0.25f, 0.25f, 0.25f }
        });
        for (ulong seed = 0; seed < 20; seed++)
        {
            var uniform = rand(3, 1, generator: new Generator(seed));
            var idx = ParticleFilter.Systematic(weights, uniform).data<long>().ToArray();
            for (int b = 0; b < 3; b++)
            {
                var row = idx[(b * 4)..(b * 4 + 4)];
                Assert.True(row.SequenceEqual(row.Order()), "ancestors come in order");
                for (int k = 0; k < 4; k++)
                {
                    double expected = 4 * weights[b, k].item<float>();
                    int copies = row.Count(i => i == k);
                    Assert.InRange(copies, Math.Floor(expected - 1e-6), Math.Ceiling(expected + 1e-6));
                }
            }
            Assert.Equal([1L, 1, 1, 1], idx[4..8]);   // all weight on one particle
            Assert.Equal([0L, 1, 2, 3], idx[8..12]);  // equal weights: every particle kept once
        }
    }

    [Fact]
    public void Resampling_keeps_the_estimate_of_the_likelihood_and_equalises_only_the_resampled_sequences()
    {
        // sequence 0 has degenerate weights (ESS ≈ 1 < K/2), sequence 1 equal ones (ESS = K)
        var logW = tensor(new float[] { 0f, -30f, -30f, 5f, 5f, 5f }).view(2, 3);
        var resample = ParticleFilter.Ancestors(logW, Resampling.Ess, new SharedNoise(new Generator(3)));
        Assert.NotNull(resample);
        Assert.Equal([true, false], resample.Sequences.data<bool>().ToArray());
        Assert.Equal([0L, 0, 0, 3, 4, 5], resample.Rows.data<long>().ToArray());
        var sums = new ParticleSums(logW.view(-1), arange(6).to(ScalarType.Float32),
                                    arange(6).to(ScalarType.Float32).mul(10), zeros(6));
        var after = ParticleFilter.Resampled(sums, resample, 2, 3);
        var lw = after.LogWeight.view(2, 3);
        // log-mean-exp per sequence (the filter's running estimate of log p(x)) is unchanged
        var before = logW.logsumexp(1) - Math.Log(3);
        Assert.Equal(Doubles(before), Doubles(lw.logsumexp(1) - Math.Log(3)), new ToleranceComparer(1e-5));
        Assert.Equal(0f, (lw[0] - lw[0, 0]).abs().max().item<float>(), 6);                // resampled: equal weights
        Assert.Equal(new float[] { 5, 5, 5 }, lw[1].data<float>().ToArray());             // untouched
        // sums move with their rows
        Assert.Equal(new float[] { 0, 0, 0, 30, 40, 50 }, after.LogLikelihood.data<float>().ToArray());
    }

    [Fact]
    public void No_resampling_draws_nothing()
    {
        var g = new Generator(5);
        var before = g.get_state().data<byte>().ToArray();
        Assert.Null(ParticleFilter.Ancestors(zeros(2, 3), Resampling.None, new SharedNoise(g)));
        Assert.Equal(before, g.get_state().data<byte>().ToArray());
        // equal weights: ESS = K
        Assert.Null(ParticleFilter.Ancestors(zeros(2, 3), Resampling.Ess, new SharedNoise(g)));
    }

    [Fact]
    public void Lineages_follow_ancestors_back_from_the_last_frame()
    {
        // 3 rows, 3 frames: after frame 0 rows continue 0,0,2; after frame 1: 2,1,1
        var a0 = new Resample(tensor(new long[] { 0, 0, 2 }), tensor(new[] { true }));
        var a1 = new Resample(tensor(new long[] { 2, 1, 1 }), tensor(new[] { true }));
        var lineage = ParticleFilter.Lineages([a0, a1]);
        Assert.Null(lineage[2]);
        Assert.Equal([2L, 1, 1], lineage[1]!.data<long>().ToArray());
        Assert.Equal([2L, 0, 0], lineage[0]!.data<long>().ToArray());
    }

    [Theory]
    [InlineData(Resampling.Always)]
    [InlineData(Resampling.Ess)]
    public void A_resampled_particle_keeps_its_frames_sums_objects_and_ids_together(Resampling resampling)
    {
        manual_seed(4);
        var m = new SqairModel(SqairModelTests.Tiny(discBias: 0.5));
        using var _ = no_grad();
        var o = m.Forward(SqairModelTests.Frames(6, 3), k: 4, keepFrames: true, generator: new Generator(9),
                          resampling: resampling);
        var frames = o.Frames!;
        // each final particle's log p(x|z) is the sum over the frames of its own history
        var traced = stack(frames.Select(f => f.LogLikelihood).ToArray()).sum([0L]).view(3, 4);
        Assert.Equal(Doubles(o.LogLikelihood), Doubles(traced), new ToleranceComparer(1e-2));
        // its object counts are those of its kept frames
        for (int t = 0; t < 6; t++)
            Assert.Equal(frames[t].Presence.sum(1).data<float>().ToArray(),
                         o.Counts[t].reshape(-1).data<float>().ToArray());
        // a propagated object keeps its id: every id present at t + 1 was present at t or is newer than all ids so far
        for (int t = 0; t + 1 < 6; t++)
        {
            var now = frames[t].Ids.data<long>().ToArray();
            var next = frames[t + 1].Ids.data<long>().ToArray();
            var seen = Enumerable.Range(0, 12)
                .Select(r => frames.Take(t + 1).SelectMany(f => f.Ids[r].data<long>().ToArray()).Max()).ToArray();
            for (int r = 0; r < 12; r++)
                foreach (var id in next[(r * 3)..(r * 3 + 3)].Where(id => id >= 0))
                    Assert.True(now.AsSpan(r * 3, 3).Contains(id) || id > seen[r], $"row {r}, frame {t + 1}: id {id}");
        }
    }
}

public class DiscoveryRejectionTests
{
    [Fact]
    public void Window_IoU_of_identical_disjoint_and_half_shifted_windows()
    {
        var a = tensor(new float[] { 0.2f, 0.2f, 0f, 0f });
        Assert.Equal(1f, Boxes.WindowIoU(a, a).item<float>(), 5);
        Assert.Equal(0f, Boxes.WindowIoU(a, tensor(new float[] { 0.2f, 0.2f, 0.9f, 0f })).item<float>(), 5);
        // shifted by half its width on x: overlap 1/2 of each, IoU = 1/3
        Assert.Equal(1f / 3, Boxes.WindowIoU(a, tensor(new float[] { 0.2f, 0.2f, 0.2f, 0f })).item<float>(), 5);
    }

    /// <summary>
    /// A discovery that always proposes the same window (where = <paramref name="where"/>, tiny noise) with
    /// presence ≈ 1, beside a propagated object at that window: the number of new objects it finds.
    /// </summary>
    static (float Found, float LogQ) DiscoverBesideFollowed(float[] where, double rejectIoU)
    {
        manual_seed(6);
        var c = SqairModelTests.Tiny();
        var discovery = new Discovery(c);
        var propagation = new Propagation(c);
        using var _ = no_grad();
        int set = 0;
        foreach (var (name, p) in discovery.named_parameters())
        {
            if (!name.Contains(".output.")) continue;
            if (name.StartsWith("transform.", StringComparison.Ordinal))
                p.copy_(name.EndsWith("bias", StringComparison.Ordinal)
                    ? tensor(where.Concat(Enumerable.Repeat(-30f, 4)).ToArray())
                    : zeros_like(p));
            else if (name.StartsWith("presence.", StringComparison.Ordinal))
                p.copy_(name.EndsWith("bias", StringComparison.Ordinal) ? full_like(p, 30f) : zeros_like(p));
            else continue;
            set++;
        }
        Assert.Equal(4, set);
        var x = SqairModelTests.Frames(1, 1)[0];
        var n = c.MaxObjects;
        var followed = new ObjectSlots(zeros(1, n, c.NWhat), tensor(where).expand(1, n, 4).clone(),
                                       tensor(new float[] { 1, 0, 0 }).view(1, n), ones(1, n),
                                       tensor(new long[] { 0, -1, -1 }).view(1, n),
                                       propagation.InitialStates(1, n).Temporal.clone(),
                                       propagation.InitialStates(1, n).Prior.clone());
        var (slots, terms) = discovery.Forward(x, discovery.EncodeFrames(x, 1), followed, zeros(1, n), later: true,
                                               Networks.Glimpse(c), propagation.InitialStates(1, n),
                                               tensor(new long[] { 0 }), rejectIoU, new SharedNoise(new Generator(1)));
        return (slots.Presence.sum().item<float>(), terms.LogQ.item<float>());
    }

    [Fact]
    public void Rejection_removes_a_proposal_that_duplicates_a_followed_object_and_keeps_q_a_proposal()
    {
        var where = new float[] { -1.5f, -1.5f, 0.3f, -0.2f };
        var (without, _) = DiscoverBesideFollowed(where, rejectIoU: 0);
        // presence ≈ 1 and room for two beside the followed object: the digit is found twice
        Assert.Equal(2f, without);
        var (with, logq) = DiscoverBesideFollowed(where, rejectIoU: 0.8);
        Assert.Equal(0f, with);
        Assert.True(float.IsFinite(logq) && logq > -1,
                    $"the forced stop is certain under q, not a 1 − p ≈ e^−30 event: log q = {logq}");
    }
}
