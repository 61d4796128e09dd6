using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using Sqair.Files;
using Sqair.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Sqair.Runs;

/// <summary>
/// A checkpoint is one safetensors file: every model parameter under "model/&lt;name&gt;", the
/// optimiser state under "optimizer/…", the torch RNG state under "rng/torch", and in the
/// metadata the format, the full config (JSON), the iteration, the optimiser's step count and each
/// tensor's checksum (<see cref="Checksums"/>). A model file (<see cref="SaveModel"/>) is a checkpoint with the
/// parameters only, plus a <c>provenance</c> entry: what eval, track, render, generate and <c>init</c> need, a
/// third of the size. Reading verifies the checksums; a file written before checksums existed (such as
/// models/mnist-mlp.safetensors) has none and loads with its names, shapes, dtypes and finite values checked, but
/// its bytes unverified.
/// </summary>
public static class Checkpoint
{
    /// <summary>The <c>format</c> metadata value of checkpoints and model files.</summary>
    public const string Format = "sqair.checkpoint.v1";

    /// <summary>A checkpoint or model file as read: its config, iteration, tensors and metadata.</summary>
    /// <param name="Config">The config the model was trained with.</param>
    /// <param name="Iteration">The training iteration it was saved at.</param>
    /// <param name="OptimizerSteps">Optimiser steps taken (skipped steps not counted).</param>
    /// <param name="Tensors">Every tensor by name ("model/…", "optimizer/…", "rng/torch").</param>
    /// <param name="Path">The file.</param>
    /// <param name="Metadata">The header's metadata (format, config, iteration, provenance…).</param>
    public sealed record Contents(SqairConfig Config, long Iteration, long OptimizerSteps,
                                  Dictionary<string, Tensor> Tensors, string Path,
                                  IReadOnlyDictionary<string, string> Metadata);

    internal static void Save(string path, SqairModel model, IOptimizerState? optimizer, long iteration)
    {
        var tensors = Parameters(model);
        if (optimizer is not null)
            foreach (var (key, value) in optimizer.State()) tensors[key] = value;
        tensors[RngKey] = get_rng_state();
        Safetensors.Save(path, tensors, Metadata(model, iteration, optimizer?.Steps ?? 0));
    }

    /// <summary>
    /// Writes the parameters of a trained model and where they came from (<paramref name="provenance"/>, JSON), for
    /// sharing.
    /// </summary>
    public static void SaveModel(string path, SqairModel model, long iteration, long optimizerSteps, string provenance)
    {
        var metadata = Metadata(model, iteration, optimizerSteps);
        metadata["provenance"] = provenance;
        Safetensors.Save(path, Parameters(model), metadata);
    }

    /// <summary>
    /// Writes a checkpoint's model parameters (no optimiser state) to <paramref name="path"/> with their provenance:
    /// the source, its iteration, this build, the machine, <paramref name="note"/>, and the source's own provenance
    /// when it was a model file already (a re-export keeps where the parameters came from).
    /// </summary>
    public static void Export(Contents contents, string path, string note)
    {
        var model = new SqairModel(contents.Config);
        LoadInto(contents, model);
        var provenance = System.Text.Json.JsonSerializer.Serialize(new
        {
            source = Path.GetFullPath(contents.Path),
            iteration = contents.Iteration,
            optimizer_steps = contents.OptimizerSteps,
            exported_by = $"sqair {BuildVersion}",
            exported_at = DateTime.UtcNow.ToString("o"),
            machine = $"{Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, " +
                      $"{RuntimeInformation.ProcessArchitecture}",
            note,
            source_provenance = contents.Metadata.TryGetValue("provenance", out var earlier)
                ? System.Text.Json.JsonDocument.Parse(earlier).RootElement
                : (System.Text.Json.JsonElement?)null,
        });
        SaveModel(path, model, contents.Iteration, contents.OptimizerSteps, provenance);
    }

    /// <summary>
    /// This build's version with the commit it was built from (the SDK appends "+commit" in a git clone).
    /// </summary>
    public static string BuildVersion =>
        typeof(Checkpoint).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? "unknown";

    static Dictionary<string, Tensor> Parameters(SqairModel model) =>
        model.named_parameters().ToDictionary(p => $"model/{p.name}", p => (Tensor)p.parameter);

    static Dictionary<string, string> Metadata(SqairModel model, long iteration, long optimizerSteps) => new()
    {
        ["format"] = Format,
        ["config"] = model.Config.ToJson(),
        ["iteration"] = iteration.ToString(CultureInfo.InvariantCulture),
        ["optimizer_steps"] = optimizerSteps.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>
    /// The checkpoint a command or a run loads, read once: the file itself, or the newest readable checkpoint of a
    /// run folder (a corrupt newer one is skipped, named to <paramref name="warn"/>).
    /// </summary>
    public static Contents ReadFileOrRun(string path, Action<string>? warn = null)
    {
        if (File.Exists(path)) return Read(path);
        if (!Directory.Exists(path)) throw new FileNotFoundException($"checkpoint {path} does not exist", path);
        return CheckpointStore.NewestReadable(path, warn)
               ?? throw new FileNotFoundException($"{path} has no readable checkpoint", path);
    }

    /// <summary>Reads and checks a checkpoint file; every problem names the file and the key.</summary>
    public static Contents Read(string path)
    {
        var (tensors, meta) = Safetensors.Load(path);
        var config = ConfigOf(meta, path);
        if (!long.TryParse(meta.GetValueOrDefault("iteration"), out var iteration) ||
            !long.TryParse(meta.GetValueOrDefault("optimizer_steps"), out var steps))
            throw new InvalidDataException($"{path}: no iteration number in the metadata");
        foreach (var (key, t) in tensors)
        {
            // The scope roots isfinite's temporaries, which another thread's collection could otherwise finalize
            // while libtorch reads them (commands read checkpoints outside any scope).
            using var scope = NewDisposeScope();
            if (t.is_floating_point() && !t.isfinite().all().item<bool>())
                throw new InvalidDataException($"{path}: tensor '{key}' holds NaN or infinite values");
        }
        return new Contents(config, iteration, steps, tensors, path, meta);
    }

    /// <summary>
    /// The config a checkpoint or model file was trained with, from its header alone (no tensor is read).
    /// </summary>
    public static SqairConfig ReadConfig(string path) => ConfigOf(Safetensors.ReadHeader(path).Metadata, path);

    static SqairConfig ConfigOf(IReadOnlyDictionary<string, string> meta, string path)
    {
        if (meta.GetValueOrDefault("format") != Format)
            throw new InvalidDataException(
                $"{path}: format '{meta.GetValueOrDefault("format")}' is not {Format}; not a SQAIR checkpoint");
        try
        {
            return new SqairConfig().With(System.Text.Json.Nodes.JsonNode.Parse(meta["config"])!.AsObject(),
                                          $"{path} (config)");
        }
        catch (Exception e)
            when (e is System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: unreadable config in the metadata ({e.Message})", e);
        }
    }

    /// <summary>
    /// The first of the checkpoint's parameters that <paramref name="model"/> cannot take (missing,
    /// another shape or type), or null: a damaged file when the model was built from the checkpoint's
    /// own config, another architecture when it was not (<c>--init</c>).
    /// </summary>
    internal static string? Misfit(Contents c, SqairModel model)
    {
        foreach (var (name, p) in model.named_parameters())
        {
            if (!c.Tensors.TryGetValue($"model/{name}", out var saved)) return $"{c.Path}: no parameter 'model/{name}'";
            if (!saved.shape.SequenceEqual(p.shape))
                return $"{c.Path}: parameter 'model/{name}' has shape [{string.Join(", ", saved.shape)}], " +
                       $"the model expects [{string.Join(", ", p.shape)}]";
            if (saved.dtype != p.dtype)
                return $"{c.Path}: parameter 'model/{name}' is {saved.dtype}, the model expects {p.dtype}";
        }
        return null;
    }

    const string RngKey = "rng/torch", OptimizerPrefix = "optimizer/";

    /// <summary>
    /// Why a run cannot resume from this file, or null: a model file (<c>sqair export</c>) holds the parameters alone.
    /// </summary>
    internal static string? NotResumable(Contents c) =>
        c.Tensors.ContainsKey(RngKey)
        && c.Tensors.Keys.Any(k => k.StartsWith(OptimizerPrefix, StringComparison.Ordinal))
            ? null
            : "it holds the model's parameters only (a model file?), without the optimiser's and " +
              "random generator's state";

    /// <summary>Copies the checkpoint's parameters into <paramref name="model"/> (same architecture).</summary>
    internal static void LoadInto(Contents c, SqairModel model, IOptimizerState? optimizer = null,
                                  bool restoreRng = false)
    {
        if (Misfit(c, model) is { } misfit) throw new InvalidDataException(misfit);
        using (no_grad())
            foreach (var (name, p) in model.named_parameters()) p.copy_(c.Tensors[$"model/{name}"]);
        if (optimizer is not null)
        {
            try { optimizer.Load(c.Tensors, c.OptimizerSteps); }
            catch (InvalidDataException e) { throw new InvalidDataException($"{c.Path}: {e.Message}", e); }
        }
        if (restoreRng)
        {
            if (!c.Tensors.TryGetValue(RngKey, out var rng))
                throw new InvalidDataException($"{c.Path}: no '{RngKey}' state");
            set_rng_state(rng);
        }
    }

    /// <summary>Builds the model a checkpoint describes, loads its parameters and puts it in evaluation mode.</summary>
    public static (SqairModel Model, long Iteration) LoadModel(string path, Device? device = null) =>
        LoadModel(Read(path), device);

    /// <summary>
    /// Builds the model a checkpoint already read describes, loads its parameters and puts it in evaluation mode.
    /// </summary>
    public static (SqairModel Model, long Iteration) LoadModel(Contents c, Device? device = null)
    {
        var model = new SqairModel(c.Config);
        LoadInto(c, model);
        if (device is not null) model.to(device);
        model.eval();
        return (model, c.Iteration);
    }

    /// <summary>Checkpoints of a run folder, newest first.</summary>
    public static IEnumerable<string> InRun(string runDir)
    {
        var dir = Path.Combine(runDir, RunFolder.CheckpointsDir);
        return Directory.Exists(dir)
            ? Directory.GetFiles(dir, "step-*.safetensors").OrderByDescending(f => f, StringComparer.Ordinal)
            : [];
    }

    /// <summary>The file of the checkpoint at <paramref name="iteration"/> in a run folder.</summary>
    public static string PathFor(string runDir, long iteration) =>
        Path.Combine(runDir, RunFolder.CheckpointsDir, $"step-{iteration:D9}.safetensors");

    /// <summary>The iteration in a checkpoint's file name (step-000001000.safetensors → 1000).</summary>
    public static long StepOf(string path) =>
        long.TryParse(Path.GetFileNameWithoutExtension(path).AsSpan("step-".Length), out var step)
            ? step : throw new ArgumentException($"{path} is not named step-N.safetensors");
}

