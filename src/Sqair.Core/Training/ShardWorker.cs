using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Sqair.Data;
using Sqair.Model;
using Sqair.Native;
using Sqair.Objective;
using TorchSharp;
using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Training;

/// <summary>
/// A training shard in a process of its own (<c>sqair train --shard-processes</c>): the main process keeps the
/// first shard of every batch and sends the others, one to each worker process, which runs exactly what a thread
/// shard runs (<see cref="GradientStep"/>: its part of the batch, its generator seeded from (seed, iteration,
/// shard)) and returns its gradients. Why processes: a thread shard shares the process's per-op dispatch and
/// allocator with the other shards; a process does not, and two one-thread processes on half batches ran 5–25 %
/// faster than one process on two threads (docs/performance.md). The bulk data (parameters, gradients, the
/// batch part) travels through a <see cref="SharedRegion"/>; a line of JSON each way on the worker's standard
/// input and output says "step" and "done", so a worker that dies is an end of file, an error, never a hang.
/// A program that wants its training to use worker processes routes the arguments it gives
/// <see cref="ThisProgram"/> to <see cref="Serve"/>.
/// </summary>
public static class ShardWorker
{
    /// <summary>
    /// Starts this program again with <paramref name="arguments"/> (under <c>dotnet</c> when it runs as
    /// <c>dotnet program.dll</c>): how <c>sqair</c> starts its own worker processes.
    /// </summary>
    public static ProcessStartInfo ThisProgram(params string[] arguments)
    {
        var exe = Environment.ProcessPath ?? throw new InvalidOperationException("this program's path is unknown");
        var info = new ProcessStartInfo(exe);
        bool muxer = Path.GetFileNameWithoutExtension(exe).Equals("dotnet", StringComparison.OrdinalIgnoreCase);
        if (muxer) info.ArgumentList.Add(System.Reflection.Assembly.GetEntryAssembly()!.Location);
        foreach (var a in arguments) info.ArgumentList.Add(a);
        return info;
    }

    /// <summary>
    /// Serves one training run's shard: reads the run's setup and then one step per line from
    /// <paramref name="input"/>, answers on <paramref name="output"/>, until <paramref name="input"/> ends.
    /// Returns the process's exit code (0: the main process closed the connection).
    /// </summary>
    public static int Serve(TextReader input, TextWriter output)
    {
        var hello = ShardProtocol.Read<ShardHello>(input.ReadLine())
                    ?? throw new InvalidDataException("shard worker: no setup line on standard input");
        set_num_threads(hello.Threads);
        var config = new SqairConfig().With(JsonNode.Parse(hello.Config)!.AsObject(), "shard worker setup");
        using var model = new SqairModel(config);
        model.to(new Device(hello.Device));
        model.train();
        var step = new GradientStep(model, originalVimco: config.VimcoSignal == VimcoSignal.Original);
        var parameters = model.parameters().ToList();
        ShardProtocol.Write(output, new ShardReady(ShardReady.Describe(model)));
        SharedRegion? region = null;
        try
        {
            while (input.ReadLine() is { } line)
            {
                var message = ShardProtocol.Read<ShardStep>(line)
                              ?? throw new InvalidDataException($"shard worker: not a step: {line}");
                if (message.Region is { } r)
                {
                    region?.Dispose();
                    region = SharedRegion.Open(r.Path, r.Length);
                }
                if (region is null) throw new InvalidDataException("shard worker: a step before any shared region");
                ShardProtocol.Write(output, Step(model, step, parameters, region, message));
            }
        }
        finally
        {
            region?.Dispose();
        }
        return 0;
    }

    /// <summary>One step: parameters in, the shard's loss and gradients out.</summary>
    static ShardDone Step(SqairModel model, GradientStep step, List<TorchSharp.Modules.Parameter> parameters,
                          SharedRegion region, ShardStep m)
    {
        using var scope = NewDisposeScope();
        ShardLayout.ReadInto(region, parameters, offset: 0);
        using var batch = ShardLayout.ReadBatch(region, m.Batch, model.parameters().First().device);
        model.PresenceTemperature = m.Temperature;
        model.zero_grad();
        try
        {
            var (loss, output) = step.Shard(batch.Frames, m.K, batch.T, m.Weight, m.Seed);
            var metrics = m.Measure ? BatchMetrics.Of(output, batch) : null;
            ShardLayout.WriteGradients(region, parameters, offset: m.GradientOffset);
            return new ShardDone(loss, metrics, null, [.. parameters.Select(p => p.grad is not null)]);
        }
        catch (ExternalException e)
        {
            // As in the trainer's own step: a libtorch failure loses the step, not the run.
            return new ShardDone(double.NaN, null, e.Message.Split('\n')[0].Trim());
        }
    }
}

/// <summary>
/// A libtorch failure in a shard worker process, raised in the main process as its own libtorch failure would be
/// (the trainer skips the step and logs the worker's words).
/// </summary>
internal sealed class ShardWorkerException(string message) : ExternalException(message);

/// <summary>The first line to a worker: the run's config, its device and libtorch threads.</summary>
internal sealed record ShardHello(string Config, string Device, int Threads);

/// <summary>
/// A worker's answer to <see cref="ShardHello"/>: its model's parameters, each as its name, shape and element type,
/// in order, so that the main process can check that the bytes it sends land in the same tensors.
/// </summary>
internal sealed record ShardReady(string[] Parameters)
{
    /// <summary>Each of <paramref name="model"/>'s parameters as "name [shape] type", in the model's order.</summary>
    public static string[] Describe(SqairModel model) =>
        [.. model.named_parameters()
            .Select(p => $"{p.name} [{string.Join(", ", p.parameter.shape)}] {p.parameter.dtype}")];
}

/// <summary>A newly created shared region for a worker to map (the old one is dropped).</summary>
internal sealed record ShardRegion(string Path, long Length);

/// <summary>A tensor in the shared region: its shape, element type and byte offset.</summary>
internal sealed record ShardTensor(long[] Shape, ScalarType Type, long Offset);

/// <summary>
/// One step for a worker: K particles, the shard's weight in the batch loss (its share of the sequences), its
/// generator seed, the presence temperature, where its gradients go, its part of the batch (frames, boxes,
/// presence, visibility, labels, ids), a new region when the batch outgrew the old one, and whether to measure
/// its part (the bench does not).
/// </summary>
internal sealed record ShardStep(int K, double Weight, ulong Seed, double Temperature, long GradientOffset,
                                 ShardTensor[] Batch, ShardRegion? Region, bool Measure = true);

/// <summary>
/// A worker's answer to a step: its weighted loss, the measures of its part, or what failed (libtorch's first
/// line); <see cref="HasGradient"/>: per parameter whether the shard's pass gave it a gradient (the optimiser leaves
/// a parameter without one alone, so zeros would not do).
/// </summary>
internal sealed record ShardDone(double Loss, BatchMetrics? Metrics, string? Failure, bool[]? HasGradient = null);

/// <summary>The lines of the worker protocol: JSON (NaN allowed) after a fixed prefix.</summary>
internal static class ShardProtocol
{
    /// <summary>
    /// Marks the protocol's lines on a worker's standard output, so that anything else a library prints there is
    /// passed over, not misread.
    /// </summary>
    public const string Prefix = "sqair-shard ";

    static readonly JsonSerializerOptions Json = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void Write<T>(TextWriter to, T message)
    {
        to.WriteLine(Prefix + JsonSerializer.Serialize(message, Json));
        to.Flush();
    }

    /// <summary>The message on <paramref name="line"/>, or null when it is not a protocol line.</summary>
    public static T? Read<T>(string? line) where T : class =>
        line is not null && line.StartsWith(Prefix, StringComparison.Ordinal)
            ? JsonSerializer.Deserialize<T>(line.AsSpan(Prefix.Length), Json)
            : null;
}

/// <summary>
/// Where things sit in a worker's shared region: the parameters from byte 0, the gradients after them, the batch
/// part after those; each parameter as its elements in the model's parameter order.
/// </summary>
internal static class ShardLayout
{
    /// <summary>
    /// Writes every parameter's elements from <paramref name="offset"/>; returns the byte after them.
    /// </summary>
    public static long WriteParameters(SharedRegion region, IEnumerable<Tensor> parameters, long offset)
    {
        foreach (var p in parameters) offset += region.Write(p, offset);
        return offset;
    }

    /// <summary>Copies the elements at <paramref name="offset"/> into <paramref name="parameters"/>.</summary>
    public static void ReadInto(SharedRegion region, IEnumerable<Tensor> parameters, long offset)
    {
        using var _ = no_grad();
        foreach (var p in parameters)
        {
            using var value = region.Read(p.shape, p.dtype, offset);
            p.copy_(value);
            offset += value.ElementSize * value.numel();
        }
    }

    /// <summary>Writes every parameter's gradient (zeros where it has none) from <paramref name="offset"/>.</summary>
    public static void WriteGradients(SharedRegion region, IEnumerable<Tensor> parameters, long offset)
    {
        foreach (var p in parameters)
        {
            if (p.grad is { } g) offset += region.Write(g, offset);
            else
                using (var none = zeros_like(p))
                    offset += region.Write(none, offset);
        }
    }

    /// <summary>
    /// Adds the gradients at <paramref name="offset"/> into <paramref name="parameters"/>' own, for the parameters
    /// <paramref name="has"/> marks (all when null).
    /// </summary>
    public static void AddGradients(SharedRegion region, IReadOnlyList<Tensor> parameters, long offset, bool[]? has)
    {
        using var _ = no_grad();
        for (int i = 0; i < parameters.Count; i++)
        {
            var p = parameters[i];
            var g = region.Read(p.shape, p.dtype, offset).to(p.device);
            offset += g.ElementSize * g.numel();
            if (has is not null && !has[i]) continue;
            if (p.grad is { } own) own.add_(g, Kept(1L));
            else if (p.requires_grad) p.grad = g.clone().DetachFromDisposeScope();
        }
    }

    /// <summary>The batch part's six tensors, in <see cref="SequenceBatch"/>'s order.</summary>
    public static Tensor[] Parts(SequenceBatch b) => [b.Frames, b.Boxes, b.Present, b.Visible, b.Labels, b.Ids];

    /// <summary>Bytes the batch part needs.</summary>
    public static long Bytes(SequenceBatch b) => Parts(b).Sum(t => t.ElementSize * t.numel());

    /// <summary>Writes the batch part from <paramref name="offset"/>; returns where each tensor went.</summary>
    public static ShardTensor[] WriteBatch(SharedRegion region, SequenceBatch b, long offset) =>
        [.. Parts(b).Select(t =>
        {
            var at = new ShardTensor(t.shape, t.dtype, offset);
            offset += region.Write(t, offset);
            return at;
        })];

    /// <summary>The batch part written by <see cref="WriteBatch"/>, on <paramref name="device"/>.</summary>
    public static SequenceBatch ReadBatch(SharedRegion region, ShardTensor[] tensors, Device device)
    {
        var t = tensors.Select(s => region.Read(s.Shape, s.Type, s.Offset).to(device)).ToArray();
        return new SequenceBatch(t[0], t[1], t[2], t[3], t[4], t[5]);
    }
}
