using Sqair.Model;
using Sqair.Native;
using Sqair.Objective;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Tests.Model;

public class SqairModelTests
{
    internal static SqairConfig Tiny(ModelKind model = ModelKind.Mlp, double discBias = 1.0, int channels = 1) => new()
    {
        Model = model, ImgSize = 24, GlimpseSize = 8, NWhat = 4, NUnits = 1, MaxObjects = 3, Channels = channels,
        DiscStepBias = discBias, KParticles = 2, BatchSize = 2, TrainSize = 2,
    };

    internal static Tensor Frames(int t, int b, int channels = 1, int side = 24, int seed = 0)
    {
        var g = new Generator((ulong)seed);
        return rand([t, b, channels, side, side], generator: g);
    }

    [Theory]
    [InlineData(ModelKind.Mlp, 1)]
    [InlineData(ModelKind.Conv, 1)]
    [InlineData(ModelKind.Air, 1)]
    [InlineData(ModelKind.Mlp, 3)]
    public void Every_trainable_parameter_gets_a_gradient(ModelKind model, int channels)
    {
        manual_seed(1);
        // A mix of rows with and without room for discovery after t = 0, so every path is used.
        var m = new SqairModel(Tiny(model, discBias: 0.5, channels: channels));
        var output = m.Forward(Frames(3, 8, channels), k: 2);
        var (loss, _) = Vimco.Surrogate(output.LogWeights, output.LogQDiscrete, 3);
        loss.backward();
        var missing = m.named_parameters()
            .Where(p => p.parameter.requires_grad &&
                        (p.parameter.grad is null || p.parameter.grad.abs().sum().item<float>() == 0))
            .Select(p => p.name).ToList();
        Assert.Empty(missing);
        Assert.True(float.IsFinite(loss.item<float>()));
        if (model == ModelKind.Air)
            Assert.All(m.named_parameters().Where(p => p.name.StartsWith("propagation", StringComparison.Ordinal)),
                       p => Assert.False(p.parameter.requires_grad));
    }

    [Fact]
    public void A_frame_of_the_model_flushes_denormals_to_zero_on_its_thread()
    {
        float before = -1, after = -1;
        var thread = new Thread(() =>
        {
            Denormals.SetFlushDenormal(false);   // threads inherit the flags: start from libtorch's default
            using var tiny = tensor(new[] { 1e-39f });   // a denormal
            before = tiny.add(tiny).item<float>();
            new SqairModel(Tiny()).Forward(Frames(1, 1), k: 1);
            after = tiny.add(tiny).item<float>();
        });
        thread.Start();
        thread.Join();
        Assert.Equal(2e-39f, before);
        Assert.Equal(0f, after);
    }

    [Fact]
    public void Outputs_have_the_documented_shapes()
    {
        manual_seed(2);
        var c = Tiny();
        var m = new SqairModel(c);
        var o = m.Forward(Frames(4, 3), k: 2, keepFrames: true);
        Assert.Equal(new long[] { 3, 2 }, o.LogWeights.shape);
        Assert.Equal(new long[] { 4, 3, 2 }, o.Counts.shape);
        Assert.Equal(4, o.Frames!.Count);
        var f = o.Frames[1];
        Assert.Equal(new long[] { 6, 1, 24, 24 }, f.Canvas.shape);
        Assert.Equal(new long[] { 6, 3, 1, 8, 8 }, f.Glimpses.shape);
        Assert.Equal(new long[] { 6, 3, 4 }, f.Where.shape);
        Assert.Equal(new long[] { 6, 3 }, f.Ids.shape);
    }

    [Fact]
    public void The_cap_is_never_exceeded_even_when_every_step_wants_an_object()
    {
        manual_seed(3);
        var c = Tiny(discBias: 30.0) with { PropStepBias = 30.0 };
        var m = new SqairModel(c);
        using var _ = no_grad();
        var o = m.Forward(Frames(6, 8), k: 2, keepFrames: true);
        Assert.True(o.Counts.max().item<float>() <= c.MaxObjects);
        Assert.Equal(c.MaxObjects, o.Counts[0].min().item<float>());
        var total = o.Propagated + o.Discovered;
        Assert.True(total.max().item<float>() <= c.MaxObjects);
        // everything found at t = 0 is propagated, leaving no room for discovery
        Assert.Equal(0f, o.Discovered[1..].max().item<float>());
    }

    [Fact]
    public void Ids_follow_objects_are_unique_and_new_ones_are_larger_than_any_before()
    {
        manual_seed(4);
        var m = new SqairModel(Tiny(discBias: 2.0));
        using var _ = no_grad();
        var o = m.Forward(Frames(8, 6), k: 2, keepFrames: true);
        int rows = 12;
        for (int r = 0; r < rows; r++)
        {
            var seen = new HashSet<long>();
            long maxId = -1;
            for (int t = 0; t < o.Frames!.Count; t++)
            {
                var ids = o.Frames[t].Ids[r].data<long>().ToArray();
                var pres = o.Frames[t].Presence[r].data<float>().ToArray();
                var present = ids.Where((id, i) => pres[i] > 0.5).ToArray();
                Assert.All(ids.Where((id, i) => pres[i] < 0.5), id => Assert.Equal(-1, id));
                Assert.Equal(present.Length, present.Distinct().Count());
                // present slots come first
                Assert.Equal(pres.OrderByDescending(p => p), pres);
                var old = present.Where(id => id <= maxId).ToArray();
                Assert.All(old, id => Assert.Contains(id, seen));
                var fresh = present.Where(id => id > maxId).ToArray();
                Assert.Equal(Enumerable.Range(0, fresh.Length).Select(i => maxId + 1 + i), fresh.Order());
                Assert.Equal((float)fresh.Length, o.Discovered[t].flatten()[r].item<float>());
                if (fresh.Length > 0) maxId = fresh.Max();
                seen.Clear();
                foreach (var id in present) seen.Add(id);
            }
        }
    }

    [Fact]
    public void Merging_is_a_stable_partition_and_moves_everything_with_its_object()
    {
        var presence = tensor(new float[] { 0, 1, 0, 1, 1, 0 }).view(1, 6);
        var ids = tensor(new long[] { -1, 7, -1, 3, 9, -1 }).view(1, 6);
        var what = arange(6, dtype: ScalarType.Float32).view(1, 6, 1).expand(1, 6, 2).contiguous();
        var where = arange(6, dtype: ScalarType.Float32).view(1, 6, 1).mul(10).expand(1, 6, 4).contiguous();
        var state = arange(6, dtype: ScalarType.Float32).view(1, 6, 1).mul(100).expand(1, 6, 5).contiguous();
        ObjectSlots Part(int from) => new(what[.., from..(from + 3)], where[.., from..(from + 3)],
                                          presence[.., from..(from + 3)], presence[.., from..(from + 3)].mul(0.5),
                                          ids[.., from..(from + 3)], state[.., from..(from + 3)],
                                          state[.., from..(from + 3)].neg());
        var merged = ObjectSlots.Merge(Part(0), Part(3), 3);
        Assert.Equal(new long[] { 7, 3, 9 }, merged.Ids.data<long>().ToArray());
        Assert.Equal(new float[] { 1, 1, 3, 3, 4, 4 }, merged.What.data<float>().ToArray());
        Assert.Equal(new float[] { 10, 30, 40 }, merged.Where.select(2, 3).data<float>().ToArray());
        Assert.Equal(new float[] { 1, 1, 1 }, merged.Presence.data<float>().ToArray());
        Assert.Equal(new float[] { 0.5f, 0.5f, 0.5f }, merged.PresenceProb.data<float>().ToArray());
        Assert.Equal(new float[] { 100, 300, 400 }, merged.Temporal.select(2, 4).data<float>().ToArray());
        Assert.Equal(new float[] { -100, -300, -400 }, merged.Prior.select(2, 0).data<float>().ToArray());
        Assert.Equal(new long[] { 1, 3, 5 }, merged.Prior.shape);
    }

    [Fact]
    public void Same_seed_gives_the_same_output()
    {
        Tensor Run()
        {
            manual_seed(9);
            var m = new SqairModel(Tiny());
            return m.Forward(Frames(3, 2), k: 2).LogWeights.detach();
        }
        var a = Run();
        var b = Run();
        Assert.True(a.allclose(b, rtol: 0, atol: 0));
        Assert.True(a.isfinite().all().item<bool>());
    }

    [Fact]
    public void Log_weight_is_likelihood_plus_prior_minus_posterior_summed_over_time()
    {
        manual_seed(5);
        var m = new SqairModel(Tiny());
        using var _ = no_grad();
        var o = m.Forward(Frames(3, 2), k: 2, keepFrames: true);
        var sum = o.Frames!.Select(f => f.LogLikelihood + f.LogP - f.LogQ).Aggregate((x, y) => x + y).view(2, 2);
        Assert.True(sum.allclose(o.LogWeights, rtol: 1e-4, atol: 1e-2));
        var kl = o.Frames!.Select(f => f.LogQ - f.LogP).Aggregate((x, y) => x + y).view(2, 2);
        Assert.True(kl.allclose(o.Kl, rtol: 1e-4, atol: 1e-2));
    }

    [Fact]
    public void Resampling_picks_one_row_of_each_sequence()
    {
        manual_seed(6);
        var m = new SqairModel(Tiny());
        using var _ = no_grad();
        var o = m.Forward(Frames(2, 5), k: 2);
        var rows = o.ResampleRows().data<long>().ToArray();
        for (int b = 0; b < 5; b++) Assert.InRange(rows[b], 2 * b, 2 * b + 1);
    }
}

public class GenerationTests
{
    [Theory]
    [InlineData(ModelKind.Mlp)]
    [InlineData(ModelKind.Air)]
    public void Prior_samples_respect_the_cap_and_keep_ids_of_propagated_objects(ModelKind model)
    {
        manual_seed(7);
        var c = SqairModelTests.Tiny(model, discBias: 1.0);
        var m = new SqairModel(c);
        var steps = m.Generate(length: 12, sequences: 16, stop: TestContext.Current.CancellationToken);
        Assert.Equal(12, steps.Count);
        Assert.Equal(new long[] { 16, 1, 24, 24 }, steps[0].Canvas.shape);
        foreach (var s in steps)
        {
            Assert.True(s.Presence.sum(1).max().item<float>() <= c.MaxObjects);
            var pres = s.Presence.data<float>().ToArray();
            var ids = s.Ids.data<long>().ToArray();
            for (int i = 0; i < pres.Length; i++) Assert.Equal(pres[i] > 0.5f, ids[i] >= 0);
        }
        // objects kept from one frame to the next keep their id; new ones get larger ids
        for (int t = 1; t < steps.Count; t++)
            for (int r = 0; r < 16; r++)
            {
                var before = steps[t - 1].Ids[r].data<long>().Where(i => i >= 0).ToHashSet();
                var maxBefore = before.Count == 0 ? -1 : before.Max();
                foreach (var id in steps[t].Ids[r].data<long>().Where(i => i >= 0))
                    Assert.True(before.Contains(id) || id > maxBefore);
                if (model == ModelKind.Air) Assert.True(steps[t].Propagated[r].item<float>() == 0);
            }
    }

    [Fact]
    public void Conditional_generation_infers_the_observed_frames_then_continues()
    {
        manual_seed(8);
        var m = new SqairModel(SqairModelTests.Tiny());
        var observed = SqairModelTests.Frames(3, 2);
        var steps = m.Generate(length: 6, observed: observed, k: 3, stop: TestContext.Current.CancellationToken);
        Assert.Equal(6, steps.Count);
        Assert.All(steps, s => Assert.Equal(new long[] { 2, 1, 24, 24 }, s.Canvas.shape));
        // the observed part carries the inference's log-likelihood, the continuation none
        Assert.True(steps[0].LogLikelihood.abs().sum().item<float>() > 0);
        Assert.Equal(0f, steps[5].LogLikelihood.abs().sum().item<float>());
    }
}

/// <summary>
/// A stop request (SIGINT, SIGTERM) ends inference and generation within a frame, not after the whole sequence:
/// render and generate infer one long batch, which took minutes to notice a Ctrl-C.
/// </summary>
public class StopTests
{
    /// <summary>Shared noise that cancels <see cref="Stop"/> when frame <c>cancelAt</c> begins.</summary>
    sealed class CancellingNoise(int cancelAt) : Noise
    {
        readonly SharedNoise inner = new(null);
        public CancellationTokenSource Stop { get; } = new();
        public int FramesBegun { get; private set; }

        public override void BeginFrame(long sequences, int k, Device device)
        {
            if (++FramesBegun == cancelAt) Stop.Cancel();
        }

        public override Tensor Normal(Tensor like, Site site, int slot) => inner.Normal(like, site, slot);
        public override Tensor Bernoulli(Tensor probs, Site site, int slot) => inner.Bernoulli(probs, site, slot);
        public override Tensor Uniform(Tensor like, Site site, int slot) => inner.Uniform(like, site, slot);
        public override Tensor Uniform(long sequences, Device device) => inner.Uniform(sequences, device);
        public override Tensor Choose(Tensor weights) => inner.Choose(weights);
    }

    [Fact]
    public void Inference_stops_before_the_frame_after_the_request()
    {
        manual_seed(3);
        var m = new SqairModel(SqairModelTests.Tiny());
        var noise = new CancellingNoise(cancelAt: 2);
        using var _ = no_grad();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            m.Infer(SqairModelTests.Frames(10, 2), 2, keepFrames: true, noise, stop: noise.Stop.Token));
        Assert.Equal(2, noise.FramesBegun);
    }

    [Fact]
    public void Infer_run_and_generation_hear_a_stop_request()
    {
        manual_seed(4);
        var m = new SqairModel(SqairModelTests.Tiny());
        using var stop = new CancellationTokenSource();
        stop.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            Sqair.Inference.Infer.Run(m, SqairModelTests.Frames(4, 2), new(2), stop: stop.Token));
        Assert.ThrowsAny<OperationCanceledException>(() => m.Generate(length: 50, sequences: 2, stop: stop.Token));
        Assert.ThrowsAny<OperationCanceledException>(() =>
            m.Generate(length: 50, observed: SqairModelTests.Frames(3, 2), k: 2, stop: stop.Token));
    }
}
